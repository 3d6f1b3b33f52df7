"""The tamper-evident access log: writing events onto per-organisation hash chains, and verifying them."""

import hashlib
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from colocation.models import Organisation, OrganisationKind
from colocation.selectors import organisation_of
from consent.access.models import AccessEvent, Action, ChainHead, Outcome

GENESIS_HASH = "0" * 64

# The fields covered by an event's hash, in the order they are encoded.
HASHED_FIELDS = (
    "chain_id", "seq", "occurred_at", "actor_id", "actor_name", "actor_organisation_id",
    "actor_organisation_kind", "action", "object_type", "object_id", "client_pseudonym", "referral_id",
    "outcome", "purpose", "request_id", "method", "path", "status", "alert_reasons", "prev_hash",
)  # fmt: skip


class AlertReason:
    DENIED = "denied"
    BENEFITS_AGENCY = "benefits_agency"
    BREAK_GLASS = "break_glass"
    OUTSIDE_ASSIGNMENT = "outside_assignment"
    UNUSUAL_VOLUME = "unusual_volume"


@dataclass(frozen=True)
class AccessContext:
    """Who is asking, and the request they ask in; built by the HTTP layer or a command."""

    user: object
    request_id: str = ""
    method: str = ""
    path: str = ""
    purpose: str = ""

    @classmethod
    def for_command(cls, user, name: str) -> "AccessContext":
        return cls(user=user, request_id=uuid.uuid4().hex, method="CLI", path=name, purpose=name)


@dataclass
class EventDraft:
    """An access event before it is placed on a chain."""

    chain: Organisation
    action: str
    outcome: str
    status: int | None
    object_type: str = ""
    object_id: str = ""
    client_pseudonym: uuid.UUID | None = None
    referral_id: uuid.UUID | None = None
    purpose: str = ""
    extra_alerts: list[str] = field(default_factory=list)


def canonical_encoding(values: dict) -> bytes:
    """The bytes an event's hash covers: its fields, in a fixed order, as compact JSON."""
    encoded = []
    for name in HASHED_FIELDS:
        value = values[name]
        if isinstance(value, datetime):
            value = value.astimezone(UTC).isoformat(timespec="microseconds")
        elif isinstance(value, uuid.UUID):
            value = str(value)
        encoded.append(value)
    return json.dumps(encoded, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def event_hash(values: dict) -> str:
    return hashlib.sha256(canonical_encoding(values)).hexdigest()


def _actor_fields(user) -> dict:
    organisation = organisation_of(user)
    authenticated = getattr(user, "is_authenticated", False)
    return {
        "actor_id": user.pk if authenticated else None,
        "actor_name": user.get_username() if authenticated else "anonymous",
        "actor_organisation_id": organisation.pk if organisation else None,
        "actor_organisation_kind": organisation.kind if organisation else "",
    }


def _alert_reasons(draft: EventDraft, actor: dict) -> list[str]:
    reasons = []
    if draft.outcome == Outcome.DENIED:
        reasons.append(AlertReason.DENIED)
    if actor["actor_organisation_kind"] == OrganisationKind.BENEFITS_AGENCY:
        reasons.append(AlertReason.BENEFITS_AGENCY)
    if draft.action == Action.BREAK_GLASS:
        reasons.append(AlertReason.BREAK_GLASS)
    reasons.extend(r for r in draft.extra_alerts if r not in reasons)
    return reasons


def _unusual_volume(actor_id: int | None, drafts: list[EventDraft]) -> bool:
    """More distinct clients opened by one user in the last hour than the configured limit."""
    opened = {d.client_pseudonym for d in drafts if d.action == Action.READ and d.outcome == Outcome.ALLOWED}
    if actor_id is None or not opened - {None}:
        return False
    since = timezone.now() - timedelta(hours=1)
    earlier = set(
        AccessEvent.objects.filter(
            actor_id=actor_id, action=Action.READ, outcome=Outcome.ALLOWED, occurred_at__gte=since
        )
        .values_list("client_pseudonym", flat=True)
        .distinct()
    )
    return len(earlier | opened) > settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR


def record_access(context: AccessContext, drafts: list[EventDraft]) -> list[AccessEvent]:
    """Write events onto their organisations' chains, in the caller's transaction.

    Fails closed: any error propagates, so the request that wanted the data fails with it.
    """
    if not drafts:
        return []
    if not transaction.get_connection().in_atomic_block:
        # The events must commit with the answer they describe, never on their own.
        raise RuntimeError("record_access must run inside the transaction of the access it records.")
    actor = _actor_fields(context.user)
    if _unusual_volume(actor["actor_id"], drafts):
        for draft in drafts:
            if draft.action == Action.READ:
                draft.extra_alerts.append(AlertReason.UNUSUAL_VOLUME)
    by_chain: dict[int, list[EventDraft]] = defaultdict(list)
    for draft in drafts:
        by_chain[draft.chain.pk].append(draft)
    now = timezone.now()
    events = []
    # Lock heads in a fixed order so two requests touching the same chains cannot deadlock.
    for chain_id in sorted(by_chain):
        ChainHead.objects.get_or_create(organisation_id=chain_id, defaults={"head_hash": GENESIS_HASH})
        head = ChainHead.objects.select_for_update().get(organisation_id=chain_id)
        seq, prev_hash = head.seq, head.head_hash
        for draft in by_chain[chain_id]:
            seq += 1
            values = {
                "chain_id": chain_id,
                "seq": seq,
                "occurred_at": now,
                **actor,
                "action": draft.action,
                "object_type": draft.object_type,
                "object_id": draft.object_id,
                "client_pseudonym": draft.client_pseudonym,
                "referral_id": draft.referral_id,
                "outcome": draft.outcome,
                "purpose": (draft.purpose or context.purpose)[:500],
                "request_id": context.request_id[:64],
                "method": context.method[:10],
                "path": context.path[:500],
                "status": draft.status,
                "alert_reasons": ",".join(_alert_reasons(draft, actor)),
                "prev_hash": prev_hash,
            }
            prev_hash = event_hash(values)
            events.append(AccessEvent(**values, hash=prev_hash))
        ChainHead.objects.filter(organisation_id=chain_id).update(seq=seq, head_hash=prev_hash)
    AccessEvent.objects.bulk_create(events, batch_size=500)
    return events


@dataclass
class Verification:
    verified: bool
    events_checked: int
    first_mismatch: dict | None
    heads: dict[int, dict]
    against_found: bool | None = None

    def as_dict(self) -> dict:
        return {
            "verified": self.verified,
            "events_checked": self.events_checked,
            "first_mismatch": self.first_mismatch,
            "heads": {str(k): v for k, v in self.heads.items()},
            **({"against_found": self.against_found} if self.against_found is not None else {}),
        }


def verify_chain(*, organisation_ids: list[int] | None = None, against: str | None = None) -> Verification:
    """Walk the chains in constant memory; name the first event whose hash or link does not match.

    With `against`, also check that an earlier published head hash is still in a chain, which catches a
    chain rewritten consistently from some point on.
    """
    chains = organisation_ids
    if chains is None:
        chains = list(ChainHead.objects.order_by("organisation_id").values_list("organisation_id", flat=True))
    checked = 0
    heads: dict[int, dict] = {}
    against_found = False if against else None
    columns = ("id", *HASHED_FIELDS, "hash")
    for chain_id in chains:
        prev_hash, expected_seq = GENESIS_HASH, 1
        rows = (
            AccessEvent.objects.filter(chain_id=chain_id).order_by("seq").values_list(*columns).iterator(chunk_size=5000)
        )
        for row in rows:
            values = dict(zip(columns, row, strict=True))
            checked += 1
            problem = None
            if values["seq"] != expected_seq:
                problem = f"expected sequence number {expected_seq}, found {values['seq']} (an event is missing)"
            elif values["prev_hash"] != prev_hash:
                problem = "does not link to the event before it"
            elif event_hash(values) != values["hash"]:
                problem = "its content does not match its hash"
            if problem:
                mismatch = {"event_id": values["id"], "chain": chain_id, "seq": values["seq"], "problem": problem}
                return Verification(False, checked, mismatch, heads, against_found)
            if against and values["hash"] == against:
                against_found = True
            prev_hash, expected_seq = values["hash"], expected_seq + 1
        head = ChainHead.objects.filter(organisation_id=chain_id).values("seq", "head_hash").first()
        if head and (head["seq"] != expected_seq - 1 or head["head_hash"] != prev_hash):
            mismatch = {"event_id": None, "chain": chain_id, "seq": head["seq"], "problem": "chain head does not match its last event"}
            return Verification(False, checked, mismatch, heads, against_found)
        heads[chain_id] = {"seq": expected_seq - 1, "head_hash": prev_hash}
    verified = against_found is not False
    mismatch = None
    if not verified:
        mismatch = {"event_id": None, "chain": None, "seq": None, "problem": f"published head {against} is not in the chain"}
    return Verification(verified, checked, mismatch, heads, against_found)


def chain_heads(organisation_ids) -> dict[str, dict]:
    """The current head of each named chain, for publishing outside the database."""
    heads = ChainHead.objects.filter(organisation_id__in=list(organisation_ids)).order_by("organisation_id")
    return {str(h.organisation_id): {"seq": h.seq, "head_hash": h.head_hash} for h in heads}


def events_visible_to_dpo(user) -> QuerySet[AccessEvent]:
    """The log of the DPO's own organisation; nothing for anyone else."""
    from colocation.models import Role
    from colocation.selectors import staff_profile_of

    profile = staff_profile_of(user)
    if profile is None or profile.role != Role.DPO or profile.organisation.kind != OrganisationKind.THERAPY_PROVIDER:
        return AccessEvent.objects.none()
    return AccessEvent.objects.filter(chain_id=profile.organisation_id)
