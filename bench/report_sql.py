"""Bare aggregate SQL for the figures of a pilot's compliance report (the report's baseline)."""


def figures(pilot_id: int, period: str) -> list:
    return []
