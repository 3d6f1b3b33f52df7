"""Compliance-report requests as accesses: every read, export and snapshot is logged, and bursts raise an alert.

A report holds no row about a client, but a reader who asks for many reports can difference them, so each
request is an access event on the chain of every provider in the pilot (who, which pilot, which period, which
format), written in the request's own transaction like every other event (it fails closed). When one reader
makes REPORT_BURST_REQUESTS or more such requests within REPORT_BURST_MINUTES, the request that reaches the
threshold raises one `report_burst` alert on each of those chains, for their DPOs' queues; no second alert is
raised on a chain while that reader already has one there within the window, so a burst is one alert.
"""

from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from colocation.models import Organisation, Pilot
from consent.access.log import AccessContext, AlertReason, EventDraft, record_access
from consent.access.models import AccessEvent, Action, Outcome


class ReportRequest:
    """What was asked for: the kinds of report request that are logged."""

    READ = "compliance_report"
    SNAPSHOT_FREEZE = "compliance_report_snapshot"
    SNAPSHOT_READ = "compliance_report_snapshot_read"
    SNAPSHOT_VERIFY = "compliance_report_snapshot_verify"


def _bursting_chains(actor_id: int | None, chain_ids: list[int]) -> set[int]:
    """The chains on which this request completes a burst by the reader that has no alert yet (one query)."""
    if actor_id is None or not chain_ids:
        return set()
    since = timezone.now() - timedelta(minutes=settings.REPORT_BURST_MINUTES)
    rows = (
        AccessEvent.objects.filter(actor_id=actor_id, action=Action.REPORT, chain_id__in=chain_ids, occurred_at__gte=since)
        .values("chain_id")
        .annotate(requests=Count("id"), alerts=Count("id", filter=Q(alert_reasons__contains=AlertReason.REPORT_BURST)))
        .order_by()
    )
    seen = {row["chain_id"]: row for row in rows}
    bursting = set()
    for chain_id in chain_ids:
        row = seen.get(chain_id, {"requests": 0, "alerts": 0})
        # This request is the (requests + 1)th within the window.
        if row["requests"] + 1 >= settings.REPORT_BURST_REQUESTS and not row["alerts"]:
            bursting.add(chain_id)
    return bursting


def record_report_request(
    *, context: AccessContext, pilot: Pilot, request: str, period_label: str, format: str, object_id: str = ""
) -> list[AccessEvent]:
    """Log one report request (read, export, snapshot) on the chain of each provider in the pilot; fails closed.

    Must run in the transaction of the request it records (as record_access requires).
    """
    providers = list(Organisation.objects.filter(provided_sites__pilots=pilot).distinct().order_by("pk"))
    bursting = _bursting_chains(getattr(context.user, "pk", None), [p.pk for p in providers])
    drafts = [
        EventDraft(
            chain=provider, action=Action.REPORT, outcome=Outcome.ALLOWED, status=200,
            object_type=request, object_id=object_id or str(pilot.pk),
            purpose=f"pilot {pilot.pk}, period {period_label}, format {format}",
            extra_alerts=[AlertReason.REPORT_BURST] if provider.pk in bursting else [],
        )
        for provider in providers
    ]  # fmt: skip
    return record_access(context, drafts)
