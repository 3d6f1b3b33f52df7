"""Writes about the access log itself: a DPO's decision on an alert."""

from django.core.exceptions import ValidationError
from django.db import transaction

from colocation.models import Organisation
from consent.access import selectors
from consent.access.log import AccessContext, EventDraft, record_access
from consent.access.models import Action, AlertDisposition, Disposition, Outcome


class AlertNotFound(Exception):
    """No alert with that id in the DPO's own organisation's log (another organisation's is not found either)."""


@transaction.atomic
def record_disposition(*, user, event_id: int, disposition: str, note: str) -> AlertDisposition:
    """Record a DPO's decision on one alert of their organisation, as a new append-only row.

    A later decision does not replace an earlier one: both stay, and the newest is the alert's state.
    """
    alert = selectors.alert_for_dpo(user, event_id)
    if alert is None:
        raise AlertNotFound()
    if disposition not in Disposition.values:
        raise ValidationError({"disposition": f"Give one of: {', '.join(Disposition.values)}."})
    note = (note or "").strip()
    if not note:
        raise ValidationError({"note": "Say briefly why you decided this; the note is kept with the decision."})
    record = AlertDisposition(event_id=alert.pk, disposition=disposition, note=note, decided_by=user)
    record.full_clean()
    record.save()
    return record


@transaction.atomic
def record_group_disposition(
    *, user, actor_id: int | None, actor_name: str = "", day, up_to_seq: int, disposition: str, note: str
) -> list[AlertDisposition]:
    """One decision on a whole group of alerts (one actor, one day): one append-only row per alert, together.

    Only the open alerts the DPO was shown (up to `up_to_seq`) are decided, so an alert raised while they read
    the queue is never closed unseen. All rows or none: one transaction.
    """
    errors = {}
    if disposition not in Disposition.values:
        errors["disposition"] = f"Give one of: {', '.join(Disposition.values)}."
    note = (note or "").strip()
    if not note:
        errors["note"] = "Say briefly why you decided this; the note is kept with each alert's decision."
    if errors:
        raise ValidationError(errors)
    alerts = list(
        selectors.open_alerts_in_group(user, actor_id=actor_id, actor_name=actor_name, day=day, up_to_seq=up_to_seq).values_list(
            "pk", flat=True
        )
    )
    if not alerts:
        raise AlertNotFound()
    records = [AlertDisposition(event_id=pk, disposition=disposition, note=note, decided_by=user) for pk in alerts]
    for record in records:
        record.full_clean(exclude=["event"])
    return AlertDisposition.objects.bulk_create(records)


def record_log_export(*, context: AccessContext, organisation_id: int) -> None:
    """Log that the DPO exported their organisation's log, on that organisation's chain (fails closed)."""
    draft = EventDraft(
        chain=Organisation.objects.get(pk=organisation_id), action=Action.EXPORT, outcome=Outcome.ALLOWED, status=200,
        object_type="access_log", object_id=str(organisation_id),
    )  # fmt: skip
    record_access(context, [draft])
