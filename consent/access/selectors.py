"""Reads of the access log: the DPO's view of their organisation's events, alerts and a client's history.

The log names clients only by pseudonym, but it still says who looked at whom: every queryset here is
scoped to one provider's chain before anyone sees a row, and the access history of a referral is reached
only through the firewall.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db.models import BooleanField, Case, Count, Max, Min, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import TruncDate
from django.utils import timezone

from colocation.models import OrganisationKind, Role
from colocation.selectors import staff_profile_of
from consent.access.models import AccessEvent, AlertDisposition, ChainHead, Disposition, VerifiedCheckpoint
from consent.models import Referral


class NotADataProtectionOfficer(PermissionDenied):
    """The access log is read by the data-protection officer of a therapy provider, and nobody else."""

    def __init__(self):
        super().__init__("Only a data-protection officer of a therapy provider can read the access log.")


# An actor named by id: ASCII digits that fit a 64-bit id (anything else is looked up as a username).
_ACTOR_ID = re.compile(r"^[0-9]{1,18}$")

# A disposition that leaves an alert in the queue: the DPO is still looking into it.
OPEN_DISPOSITIONS = (Disposition.INVESTIGATING,)


def dpo_organisation_id(user) -> int:
    """The id of the provider whose log this user reads as its DPO; refused for anyone else."""
    profile = staff_profile_of(user)
    if profile is None or profile.role != Role.DPO or profile.organisation.kind != OrganisationKind.THERAPY_PROVIDER:
        raise NotADataProtectionOfficer()
    return profile.organisation_id


@dataclass(frozen=True)
class EventFilters:
    """The filters of the DPO's log, already parsed by the caller."""

    actor: str | None = None
    referral: object = None
    action: str | None = None
    outcome: str | None = None
    organisation_kind: str | None = None
    occurred_after: datetime | None = None
    occurred_before: datetime | None = None


def _filtered(queryset: QuerySet, filters: EventFilters) -> QuerySet:
    if filters.actor:
        # An actor is named by id or by username (the name the event recorded at the time).
        actor = filters.actor
        by_id = _ACTOR_ID.match(actor)
        queryset = queryset.filter(actor_id=int(actor)) if by_id else queryset.filter(actor_name=actor)
    if filters.referral:
        # Through the referral's client: the events are indexed by client on each chain, not by referral
        # (an index of random referral ids cost every access event an entry; see access_history).
        client = Referral.objects.filter(pk=filters.referral).order_by().values("client_id")[:1]
        queryset = queryset.filter(client_pseudonym=Subquery(client), referral_id=filters.referral)
    if filters.action:
        queryset = queryset.filter(action=filters.action)
    if filters.outcome:
        queryset = queryset.filter(outcome=filters.outcome)
    if filters.organisation_kind:
        queryset = queryset.filter(actor_organisation_kind=filters.organisation_kind)
    if filters.occurred_after:
        queryset = queryset.filter(occurred_at__gte=filters.occurred_after)
    if filters.occurred_before:
        queryset = queryset.filter(occurred_at__lte=filters.occurred_before)
    return queryset


def events_for_dpo(user, filters: EventFilters | None = None) -> QuerySet[AccessEvent]:
    """The DPO's own organisation's events, newest first, filtered in SQL."""
    chain_id = dpo_organisation_id(user)
    queryset = AccessEvent.objects.filter(chain_id=chain_id)
    return _filtered(queryset, filters or EventFilters()).order_by("-seq")


def events_for_export(user, filters: EventFilters | None = None) -> tuple[int, QuerySet[AccessEvent]]:
    """The DPO's chain id and its filtered events in chain order, for exports that read them in batches."""
    chain_id = dpo_organisation_id(user)
    return chain_id, _filtered(AccessEvent.objects.filter(chain_id=chain_id), filters or EventFilters()).order_by("seq")


def _latest_disposition(field: str) -> Subquery:
    latest = AlertDisposition.objects.filter(event=OuterRef("pk")).order_by("-decided_at", "-pk")
    return Subquery(latest.values(field)[:1])


def alerts_for_dpo(user, *, state: str | None = None) -> QuerySet[AccessEvent]:
    """The alert queue of the DPO's organisation: open alerts first, newest first within each.

    An alert is open until a DPO decides it is of no concern or a confirmed breach; `investigating` keeps
    it in the queue. The latest decision on each alert is read in the same query (no query per row).
    """
    chain_id = dpo_organisation_id(user)
    queryset = (
        AccessEvent.objects.filter(chain_id=chain_id)
        .exclude(alert_reasons="")
        .annotate(
            disposition=_latest_disposition("disposition"),
            disposition_note=_latest_disposition("note"),
            disposition_by=_latest_disposition("decided_by__username"),
            disposition_at=_latest_disposition("decided_at"),
        )
        .annotate(
            is_open=Case(
                When(Q(disposition__isnull=True) | Q(disposition__in=OPEN_DISPOSITIONS), then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            )
        )
    )
    if state == "open":
        queryset = queryset.filter(is_open=True)
    elif state == "closed":
        queryset = queryset.filter(is_open=False)
    return queryset.order_by("-is_open", "-seq")


@dataclass(frozen=True)
class AlertGroup:
    """The open alerts one actor raised on one day: what a DPO looks at, and disposes of, together."""

    actor_id: int | None
    actor_name: str
    actor_organisation_kind: str
    day: object  # a date, in the service's time zone
    alerts: int
    first_seq: int
    last_seq: int
    denied: int

    @property
    def actor_organisation_label(self) -> str:
        return (
            OrganisationKind(self.actor_organisation_kind).label
            if self.actor_organisation_kind in OrganisationKind.values
            else ""
        )

    @property
    def key(self) -> str:
        """How a form names the group: the actor's id (or name, for an unknown actor) and the day."""
        return f"{self.actor_id if self.actor_id is not None else 'name:' + self.actor_name}/{self.day.isoformat()}"


def alert_groups_for_dpo(user, *, limit: int = 200) -> list[AlertGroup]:
    """The open alerts of the DPO's organisation grouped by actor and day, newest first, counted in SQL (one query).

    Thirteen refused requests from one work-coach session are one line here, and one decision.
    """
    rows = (
        alerts_for_dpo(user, state="open")
        .order_by()
        .annotate(day=TruncDate("occurred_at", tzinfo=timezone.get_current_timezone()))
        .values("actor_id", "actor_name", "actor_organisation_kind", "day")
        .annotate(
            alerts=Count("pk"),
            first_seq=Min("seq"),
            last_seq=Max("seq"),
            denied=Count("pk", filter=Q(outcome="denied")),
        )
        .order_by("-last_seq")[:limit]
    )
    return [AlertGroup(**row) for row in rows]


def open_alerts_in_group(user, *, actor_id: int | None, actor_name: str, day, up_to_seq: int) -> QuerySet[AccessEvent]:
    """The open alerts of one actor on one day of the DPO's organisation, up to the last one the DPO was shown."""
    start = timezone.make_aware(datetime.combine(day, datetime.min.time()))
    end = timezone.make_aware(datetime.combine(day, datetime.max.time()))
    alerts = alerts_for_dpo(user, state="open").filter(occurred_at__gte=start, occurred_at__lte=end, seq__lte=up_to_seq)
    if actor_id is not None:
        return alerts.filter(actor_id=actor_id)
    return alerts.filter(actor_id__isnull=True, actor_name=actor_name)


def alert_for_dpo(user, event_id) -> AccessEvent | None:
    """One alert of the DPO's organisation, or None (another organisation's alert is not found either)."""
    return alerts_for_dpo(user).filter(pk=event_id).first()


def no_events() -> QuerySet[AccessEvent]:
    """No event: what the browsable API's filter form is given (the views read through the selectors above)."""
    return AccessEvent.objects.none()


def access_history(referral) -> QuerySet[AccessEvent]:
    """Every event about this referral on its provider's chain, newest first.

    This referral's only, not its client's: whoever may read it (its assigned team) must not see who opened
    the client's other referrals, which may be a colleague's. The client's whole history is the subject-access
    export's, for the DPO. The caller must have opened the referral through the firewall (Purpose.ACCESS_HISTORY).

    Read from the client's events on the chain (the index every client's history is read from), narrowed to this
    referral: every event about a referral also names its client (consent.access.firewall._referral_draft and
    the authorisation changes of its grants), and the events keep no index by referral, which every access event
    written would pay an entry for.
    """
    return AccessEvent.objects.filter(
        chain_id=referral.provider_id, client_pseudonym=referral.client_id, referral_id=referral.pk
    ).order_by("-seq")


@dataclass(frozen=True)
class ChainStatus:
    """The DPO's chain as it stands: its head, and the last point a full verification reached."""

    organisation_id: int
    head: ChainHead | None
    last_verified: VerifiedCheckpoint | None


def chain_status_for_dpo(user) -> ChainStatus:
    chain_id = dpo_organisation_id(user)
    return ChainStatus(
        organisation_id=chain_id,
        head=ChainHead.objects.filter(organisation_id=chain_id).first(),
        last_verified=VerifiedCheckpoint.objects.filter(organisation_id=chain_id).order_by("-seq", "-pk").first(),
    )
