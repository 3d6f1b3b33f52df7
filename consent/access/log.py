"""The tamper-evident access log: writing events onto per-organisation hash chains, and verifying them."""

import hashlib
import json
import logging
import multiprocessing
import operator
import os
import re
import uuid
from collections import defaultdict
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache, partial
from types import SimpleNamespace
from urllib.parse import parse_qsl, urlsplit

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.models import Exists, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from colocation import models as colocation_models
from colocation.models import Organisation, OrganisationKind
from colocation.selectors import organisation_of
from consent import models as consent_models
from consent.access import chain_walk, heads
from consent.access import models as access_models
from consent.access.models import AccessEvent, Action, ChainHead, Outcome, VerifiedCheckpoint
from consent.models import Client
from consent.source_of_referral import SOURCE_OF_REFERRAL

logger = logging.getLogger(__name__)

GENESIS_HASH = "0" * 64

# The fields covered by an event's hash, in the order they are encoded.
HASHED_FIELDS = (
    "chain_id", "seq", "occurred_at", "actor_id", "actor_name", "actor_organisation_id",
    "actor_organisation_kind", "action", "object_type", "object_id", "client_pseudonym", "referral_id",
    "outcome", "purpose", "request_id", "method", "path", "status", "alert_reasons", "prev_hash",
    "client_request_id",
)  # fmt: skip

# Fields added to events after chains already existed. Each is encoded only when it holds a value, so an event
# written before the field existed (where it reads back empty) keeps exactly the bytes it was hashed over, and
# old chains still verify. client_request_id: the X-Request-ID a client sent, kept as untrusted beside the
# server's own request_id (which everything counts by).
OPTIONAL_HASHED_FIELDS = frozenset({"client_request_id"})

# How many events a verification reads at a time: memory stays flat however long the chain is.
VERIFY_BATCH = 5000

# A chain is split between worker processes (settings.ACCESS_LOG_VERIFY_WORKERS) only from this many events to
# walk: forking two workers and connecting them took about 0.1 s on a busy 2-core machine, what walking 3,000-4,000
# events took there, so a split pays only well beyond that; a shorter walk stays in this process, where it costs
# no process and no connection.
SPLIT_FROM_EVENTS = 100_000

# What an event shows instead of something that might identify a client.
WITHHELD = "[withheld]"


class AlertReason:
    DENIED = "denied"
    BENEFITS_AGENCY = "benefits_agency"
    BREAK_GLASS = "break_glass"
    OUTSIDE_ASSIGNMENT = "outside_assignment"
    UNUSUAL_VOLUME = "unusual_volume"
    # Many compliance-report requests by one reader in a short time: the pattern of differencing reports.
    REPORT_BURST = "report_burst"
    # A change to who may see what: an account's organisation, role, flags, groups or permissions, an object
    # permission on a referral made outside the firewall's own operations, an organisation's kind, a template.
    AUTHORISATION_CHANGE = "authorisation_change"
    # A referral recorded for a client the provider already held, by someone who could not see that client.
    KNOWN_CLIENT = "known_client"
    ALL = (
        DENIED,
        BENEFITS_AGENCY,
        BREAK_GLASS,
        OUTSIDE_ASSIGNMENT,
        UNUSUAL_VOLUME,
        REPORT_BURST,
        AUTHORISATION_CHANGE,
        KNOWN_CLIENT,
    )
    # What each reason means, in the words the DPO's queue and the API's schema use.
    LABELS = {
        DENIED: "A refused attempt",
        BENEFITS_AGENCY: "Any attempt by a benefits-agency account",
        BREAK_GLASS: "A clinical lead opened a referral by break-glass",
        OUTSIDE_ASSIGNMENT: "Access to a referral outside the user's assignment",
        UNUSUAL_VOLUME: "More distinct clients in an hour than the configured threshold",
        REPORT_BURST: "Many compliance-report requests by one reader in a short time",
        AUTHORISATION_CHANGE: "A change to who may see what (organisation, role, flags, groups, permissions, templates)",
        KNOWN_CLIENT: "A referral recorded for a client the provider already held, by someone who could not see them",
    }


class AccessLogUnavailable(Exception):
    """The events of an access could not be written, so the access must not happen (fail closed)."""

    def __init__(self):
        super().__init__("The access log is unavailable, so no client data can be given out. Try again later.")


@dataclass(frozen=True)
class AccessContext:
    """Who is asking, and the request they ask in; built by the HTTP layer or a command."""

    user: object
    request_id: str = ""
    method: str = ""
    path: str = ""
    purpose: str = ""
    # The X-Request-ID the client sent, if any: kept for correlation, never trusted or counted by.
    client_request_id: str = ""

    @classmethod
    def for_command(cls, user, name: str) -> "AccessContext":
        return cls(user=user, request_id=uuid.uuid4().hex, method="CLI", path=name, purpose=name)

    @classmethod
    def for_request(cls, request, purpose: str = "", user=None) -> "AccessContext":
        """Who is asking and in which request (a Django or DRF request); ids from the request-id middleware."""
        user = user if user is not None else getattr(request, "user", None)
        return cls(
            user=user,
            request_id=getattr(request, "request_id", "") or uuid.uuid4().hex,
            client_request_id=getattr(request, "client_request_id", ""),
            method=request.method or "",
            path=request.get_full_path()[:500],
            purpose=purpose,
        )


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


# One prebuilt C encoder, the one verification reads with (chain_walk._encoder says why it is prebuilt).
_ENCODE = chain_walk.encoded
_PLAIN = frozenset({str, int, type(None)})


def _canonical(value):
    if type(value) in _PLAIN:  # most fields: encoded as they are
        return value
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def canonical_encoding(values: dict) -> bytes:
    """The bytes an event's hash covers: its fields, in a fixed order, as compact JSON."""
    encoded = []
    for name in HASHED_FIELDS:
        value = values.get(name, "") if name in OPTIONAL_HASHED_FIELDS else values[name]
        if name in OPTIONAL_HASHED_FIELDS and value in ("", None):
            continue
        encoded.append(_canonical(value))
    return _ENCODE(encoded).encode("utf-8")


class SharedEncoding:
    """canonical_encoding's bytes for the events of one write, the fields they all share put in canonical form once.

    A page of a list writes 50 events that differ in a handful of fields (sequence, object, client, link): those
    alone are converted per event. The optional fields come last in HASHED_FIELDS (asserted below), so they are
    appended, each only when it holds a value, as canonical_encoding does. Tests hold the bytes equal.
    """

    def __init__(self, shared: dict):
        self.template, self.varying = [], []
        for name in HASHED_FIELDS:
            if name in OPTIONAL_HASHED_FIELDS:
                continue
            if name not in shared:
                self.varying.append((len(self.template), name))
            self.template.append(_canonical(shared[name]) if name in shared else None)
        # The optional fields, in order: decided once here when the write shares them all (a request's
        # client_request_id), otherwise per event, every one of them read from the event's values.
        self.optional = [name for name in HASHED_FIELDS if name in OPTIONAL_HASHED_FIELDS]
        if all(name in shared for name in self.optional):
            self.template += [_canonical(shared[name]) for name in self.optional if shared[name] not in ("", None)]
            self.optional = []

    def of(self, values: dict) -> bytes:
        fields = self.template.copy()
        for position, name in self.varying:
            value = values[name]
            fields[position] = value if type(value) in _PLAIN else _canonical(value)
        for name in self.optional:
            value = values.get(name, "")
            if value not in ("", None):
                fields.append(_canonical(value))
        return _ENCODE(fields).encode("utf-8")


def event_hash(values: dict) -> str:
    return hashlib.sha256(canonical_encoding(values)).hexdigest()


# ---- keeping identifiers out of the log -------------------------------------------------------------------
#
# Events name clients only by pseudonym. Paths, ids and stated purposes come from people and their requests, so
# anything in them that could be an identifier (an NHS number typed where an id goes, a local reference in a
# query string or a break-glass reason) is withheld before the event is hashed.

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")
_SMALL_INT = re.compile(r"^\d{1,9}$")  # our own row ids; an NHS number has ten digits
# Route words such as access-history or v1: lower-case letters, and digits only in an API version. A word with
# any other digit may be a reference someone typed (ktt-12a), so it is withheld.
_WORD = re.compile(r"^(?:[a-z][a-z_.-]{0,63}|v\d{1,2})$")
_DIGIT_RUN = re.compile(r"\d{5,}")
# Query values the log keeps: a date or date and time, a standard period label, a UUID; a number only under
# the names of parameters that take an id or a page; a word only if it is one of the project's enumerations.
# Anything else may be free text someone typed (?search=Smith) and is withheld, by name: search=[withheld].
_QUERY_DATE = re.compile(r"^(?:\d{4}-\d{2}-\d{2}(?:[T ][0-9:.+-Z]{0,20})?|\d{4}-(?:Q[1-4]|0[1-9]|1[0-2]))$")
_QUERY_NUMBER = re.compile(r"^\d{1,9}$")
_NUMBER_PARAMETERS = frozenset({"page", "page_size", "site", "pilot", "actor", "template", "period"})
# Ten digits, perhaps grouped 3-3-4 with spaces or dashes, as NHS numbers are written.
_NHS_NUMBER_LIKE = re.compile(r"(?<!\d)\d{3}[\s-]?\d{3}[\s-]?\d{4}(?!\d)")


def _safe_segment(segment: str) -> bool:
    if not segment or _UUID.match(segment) or _SMALL_INT.match(segment):
        return True
    return bool(_WORD.match(segment))


def _safe_query_name(name: str) -> bool:
    return bool(_WORD.match(name))


@lru_cache(maxsize=1)
def _known_values() -> frozenset[str]:
    """Every value of the project's enumerations (roles, statuses, pathways, actions, formats...)."""

    enumerations = [
        colocation_models.OrganisationKind, colocation_models.Role, colocation_models.VenueKind, colocation_models.Cadence,
        consent_models.HowHeard, consent_models.Pathway, consent_models.ReferralStatus, consent_models.ConsentMethod,
        consent_models.ConsentScope, consent_models.WithdrawalReason, consent_models.CheckStage,
        consent_models.GoalRaisedBy, consent_models.DischargeReason,
        access_models.Action, access_models.Outcome, access_models.Disposition,
    ]  # fmt: skip
    values = {str(value) for enumeration in enumerations for value in enumeration.values}
    values |= set(SOURCE_OF_REFERRAL)
    values |= {"json", "csv", "fhir", "html", "api", "open", "closed", "true", "false", "True", "False"}
    values |= {"voluntary", "concern", "not_voluntary", "unknown"}
    return frozenset(values)


def _safe_query_value(name: str, value: str) -> bool:
    if value == "" or _QUERY_DATE.match(value) or _UUID.match(value) or value in _known_values():
        return True
    return name in _NUMBER_PARAMETERS and bool(_QUERY_NUMBER.match(value))


def safe_path(path: str) -> str:
    """The request path with any segment or query value that could be an identifier or free text withheld."""
    parts = urlsplit(path)
    segments = [s if _safe_segment(s) else WITHHELD for s in parts.path.split("/")]
    query = [
        f"{name}={value if _safe_query_value(name, value) else WITHHELD}" if _safe_query_name(name) else WITHHELD
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    ]
    return "/".join(segments) + (f"?{'&'.join(query)}" if query else "")


def safe_object_id(object_id: str) -> str:
    """An object id as logged: one of our ids, or withheld (it may be an identifier typed in its place)."""
    object_id = str(object_id or "")
    return object_id if not object_id or _UUID.match(object_id) or _SMALL_INT.match(object_id) else WITHHELD


def _without_identifiers(text: str, identifiers: Iterable[str] = ()) -> str:
    text = _NHS_NUMBER_LIKE.sub(WITHHELD, text)
    for identifier in identifiers:
        if identifier:
            # As a whole word only: a short reference must not cut into a UUID or a longer word.
            pattern = rf"(?<![A-Za-z0-9]){re.escape(identifier)}(?![A-Za-z0-9])"
            text = re.sub(pattern, WITHHELD, text, flags=re.IGNORECASE)
    return text


_TOKEN_SPLIT = re.compile(r"[\s,;:()\[\]{}<>\"'!?]+")
_HEX_ID = re.compile(r"^[0-9a-f]{32}$")


def _tokens(texts: Iterable[str]) -> set[str]:
    """Words of free text that could be a local reference, in the spellings people type them."""
    words = set()
    for text in texts:
        for word in _TOKEN_SPLIT.split(text or ""):
            word = word.strip(".")
            if 3 <= len(word) <= 64:
                words.update((word, word.upper(), word.lower(), word.capitalize()))
    return words


def _client_identifiers(drafts: list[EventDraft], context: AccessContext, path: str) -> set[str]:
    """Identifiers that free text in these events might carry, to withhold them.

    The local reference and NHS number of every client an event with free text is about, and any local
    reference of the providers concerned that appears as a word of the purposes, the request id or the
    query string (a break-glass reason may name another client). One query, through the unique index on
    (provider, local_reference), and none at all for an event with no free text.
    """
    texts = [d.purpose or context.purpose for d in drafts]
    query_values = [value for _, value in parse_qsl(urlsplit(path).query)]
    request_ids = [
        value
        for value in (context.request_id, context.client_request_id)
        if value and not (_UUID.match(value) or _HEX_ID.match(value))
    ]
    words = _tokens([*texts, *request_ids, *query_values])
    pseudonyms = {d.client_pseudonym for d in drafts if d.client_pseudonym and (d.purpose or context.purpose)}
    if not words and not pseudonyms:
        return set()
    chains = {d.chain.pk for d in drafts}
    rows = Client.objects.filter(Q(pk__in=pseudonyms) | Q(provider_id__in=chains, local_reference__in=words))
    found = set()
    for local_reference, nhs_number in rows.values_list("local_reference", "nhs_number"):
        found.update(value for value in (local_reference, nhs_number) if value)
    return found


def _typed_ids(drafts: list[EventDraft]) -> set[str]:
    """Ids that are not ours (an event withholds them): whatever was typed there must not stay in the path either."""
    return {str(d.object_id) for d in drafts if d.object_id and safe_object_id(d.object_id) == WITHHELD}


def safe_request_id(request_id: str, identifiers: Iterable[str] = ()) -> str:
    """The request id as logged: a UUID or hex id as is; anything with a run of digits or an identifier withheld."""
    request_id = (request_id or "")[:64]
    if not request_id or _UUID.match(request_id) or _HEX_ID.match(request_id):
        return request_id
    if _DIGIT_RUN.search(request_id) or _without_identifiers(request_id, identifiers) != request_id:
        return WITHHELD
    return request_id


# ---- writing ----------------------------------------------------------------------------------------------


# The actor of a change made outside any request (a shell, a command, a migration): nobody signed in made it.
SYSTEM_ACTOR = "system"


def _actor_fields(user) -> dict:
    organisation = organisation_of(user)
    authenticated = getattr(user, "is_authenticated", False)
    return {
        "actor_id": user.pk if authenticated else None,
        "actor_name": user.get_username() if authenticated else ("anonymous" if user is not None else SYSTEM_ACTOR),
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


# Actions that expose a client's record to the actor: a detail read, a row of a list, an export (FHIR, receipt,
# subject access), break-glass. Bulk reads are reads: each distinct client shown counts towards the limit.
EXPOSING_ACTIONS = (Action.READ, Action.LIST, Action.EXPORT, Action.BREAK_GLASS)


def _exposes_client(draft: EventDraft) -> bool:
    return draft.action in EXPOSING_ACTIONS and draft.outcome == Outcome.ALLOWED and draft.client_pseudonym is not None


class _VolumeCheck:
    """Whether this write passes the unusual-volume limit: known at once, or by one count the head's lock carries.

    More distinct clients exposed to one user in the last hour, by any read, list or export, than the limit. When
    the write alone decides it (no client exposed, no actor, or more clients than the limit in this request), no
    count is needed; otherwise `sql` is a scalar subquery, counting earlier clients only as far as the answer
    needs, that rides in the statement locking the first chain head. Either way the write costs the same
    statements, so a page costs the same queries whatever its user did earlier and whatever its size.
    """

    def __init__(self, actor_id: int | None, drafts: list[EventDraft]):
        self.opened = {d.client_pseudonym for d in drafts if _exposes_client(d)}
        self.limit = settings.ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR
        # True or False when the write alone decides; None when the earlier events must be counted.
        self.known = None
        if actor_id is None or not self.opened:
            self.known = False  # nobody signed in to count against (a command, the system), or no client exposed
        elif len(self.opened) > self.limit:
            self.known = True
        self.sql, self.params = "NULL", []
        if self.known is None:
            # Counted in the database and cut off as soon as the answer is known, so a busy user costs a bounded
            # count. (A page alone past the limit asks nothing: the same clients shown again never count twice,
            # so counting would read every event its user wrote in the hour and change nothing.)
            since = timezone.now() - timedelta(hours=1)
            earlier = (
                AccessEvent.objects.filter(
                    actor_id=actor_id, action__in=EXPOSING_ACTIONS, outcome=Outcome.ALLOWED, occurred_at__gte=since
                )
                .exclude(client_pseudonym__in=self.opened)
                .exclude(client_pseudonym=None)
                # Without the model's ordering (chain, seq): its columns would join the DISTINCT, which would then
                # count events rather than clients, and the chain's ordering joined the organisation table.
                .order_by()
                .values("client_pseudonym")
                .distinct()[: self.limit + 1 - len(self.opened)]
            )
            sql, params = earlier.query.sql_with_params()
            self.sql, self.params = f"(SELECT COUNT(*) FROM ({sql}) AS earlier)", list(params)  # noqa: S608

    def unusual(self, earlier: int | None) -> bool:
        return self.known if self.known is not None else earlier + len(self.opened) > self.limit


def _flag_unusual_volume(drafts: list[EventDraft]) -> None:
    """One alert per request and chain, on its first event that exposed a client: a page of 200 rows is one thing
    for the DPO to look at, not 200."""
    flagged = set()
    for draft in drafts:
        if _exposes_client(draft) and draft.chain.pk not in flagged:
            flagged.add(draft.chain.pk)
            draft.extra_alerts.append(AlertReason.UNUSUAL_VOLUME)


def _lock_head(chain_id: int, volume: _VolumeCheck | None = None) -> tuple[int, str, int | None]:
    """Lock one organisation's chain head, creating it for the chain's first event: (seq, hash, the volume count).

    The row lock (SELECT ... FOR UPDATE on PostgreSQL) serialises the writers of this organisation only:
    each reads the head, links its events to it and moves it on before the next may read it. Writers of
    other organisations lock other rows and never wait here. The volume check's count, if any, is read in the
    same statement: one round trip for both.
    """
    table = connection.ops.quote_name(ChainHead._meta.db_table)
    # FOR UPDATE locks the head's row only: the count's subquery is a query level of its own.
    lock = " FOR UPDATE" if connection.features.has_select_for_update else ""
    count_sql, params = (volume.sql, volume.params) if volume is not None else ("NULL", [])
    sql = f"SELECT seq, head_hash, {count_sql} FROM {table} WHERE organisation_id = %s{lock}"  # noqa: S608
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, chain_id])
        row = cursor.fetchone()
        if row is None:
            # Two first writers may race: ON CONFLICT DO NOTHING makes the second wait for the first's row and
            # then use it, where get_or_create would fail it with an IntegrityError.
            ChainHead.objects.bulk_create(
                [ChainHead(organisation_id=chain_id, seq=0, head_hash=GENESIS_HASH)], ignore_conflicts=True
            )
            cursor.execute(sql, [*params, chain_id])
            row = cursor.fetchone()
    return row


def record_access(context: AccessContext, drafts: list[EventDraft]) -> list[SimpleNamespace]:
    """Write events onto their organisations' chains, in the caller's transaction.

    Fails closed: if the events cannot be written, AccessLogUnavailable is raised and the caller's
    transaction is marked for rollback, so the access they describe cannot go ahead without them.
    """
    if not drafts:
        return []
    if not transaction.get_connection().in_atomic_block:
        # The events must commit with the answer they describe, never on their own.
        raise RuntimeError("record_access must run inside the transaction of the access it records.")
    try:
        return _write(context, drafts)
    except DatabaseError as error:
        # Never carry on without the events: whatever else this transaction did must not commit either.
        transaction.set_rollback(True)
        raise AccessLogUnavailable() from error


def _write(context: AccessContext, drafts: list[EventDraft]) -> list[SimpleNamespace]:
    """Lock the heads, decide the alerts, hash and chain the events, sign each head, and store it all.

    Statements, whatever the number of events: one lock per chain (the first carrying the volume count), then
    on PostgreSQL one statement moving every head and inserting every event; on SQLite an UPDATE per chain and
    as few multi-row INSERTs as its parameter limit allows (in-process: a statement there costs no round trip).
    """
    actor = _actor_fields(context.user)
    identifiers = _client_identifiers(drafts, context, context.path) | _typed_ids(drafts)
    request = {
        # The server's own id (api.middleware.RequestIdMiddleware); the client's, if it sent one, beside it.
        "request_id": safe_request_id(context.request_id, identifiers),
        "client_request_id": safe_request_id(context.client_request_id, identifiers),
        "method": context.method[:10],
        "path": _without_identifiers(safe_path(context.path), identifiers)[:500],
    }
    by_chain: dict[int, list[EventDraft]] = defaultdict(list)
    for draft in drafts:
        by_chain[draft.chain.pk].append(draft)
    # Lock heads in a fixed order so two requests touching the same chains cannot deadlock.
    chain_ids = sorted(by_chain)
    volume = _VolumeCheck(actor["actor_id"], drafts)
    seq, head_hash, earlier = _lock_head(chain_ids[0], volume)
    heads = {chain_ids[0]: (seq, head_hash)}
    heads.update({chain_id: _lock_head(chain_id)[:2] for chain_id in chain_ids[1:]})
    if volume.unusual(earlier):
        _flag_unusual_volume(drafts)
    # Taken once every lock is held, so times never go backwards along a chain.
    now = timezone.now()
    purposes = _Purposes(context.purpose, identifiers)
    events, newest = [], []
    for chain_id in chain_ids:
        shared = {"chain_id": chain_id, "occurred_at": now, **actor, **request}
        chain_events = _chained(shared, by_chain[chain_id], heads[chain_id], purposes)
        _sign(chain_events[-1])
        events.extend(chain_events)
        newest.append(chain_events[-1])
    _store(newest, events)
    return events


class _Purposes:
    """The purpose each event states, identifiers withheld: worked out once per distinct text in a write."""

    def __init__(self, default: str, identifiers: set[str]):
        self.default, self.identifiers, self.known = default, identifiers, {}

    def of(self, draft: EventDraft) -> str:
        text = draft.purpose or self.default
        if text not in self.known:
            self.known[text] = _without_identifiers(text, self.identifiers)[:500]
        return self.known[text]


def _chained(shared: dict, drafts: list[EventDraft], head: tuple[int, str], purposes: _Purposes) -> list[SimpleNamespace]:
    """One chain's events of this write, each linked to the one before it and hashed (the head's row is locked).

    The fields every event of the write shares are put in their canonical form once, not once per event.
    """
    seq, prev_hash = head
    encoding = SharedEncoding(shared)
    events = []
    for draft in drafts:
        seq += 1
        values = {
            **shared,
            "seq": seq,
            "action": draft.action,
            "object_type": draft.object_type[:64],
            "object_id": safe_object_id(draft.object_id)[:64],
            "client_pseudonym": draft.client_pseudonym,
            "referral_id": draft.referral_id,
            "outcome": draft.outcome,
            "purpose": purposes.of(draft),
            "status": draft.status,
            "alert_reasons": ",".join(_alert_reasons(draft, shared)),
            "prev_hash": prev_hash,
        }
        prev_hash = hashlib.sha256(encoding.of(values)).hexdigest()
        events.append(SimpleNamespace(**values, hash=prev_hash, head_signature="", head_key_id=""))
    return events


def _sign(newest: SimpleNamespace) -> None:
    """Sign the head this write makes, once per chain and write (not once per event), with the log key.

    The signature goes on the head row and on that event, so a head that later fails can be traced back to the
    first event no valid signature covers (consent.access.heads).
    """
    newest.head_signature, newest.head_key_id = heads.sign(newest.chain_id, newest.seq, newest.hash, newest.occurred_at)


def _store(newest: list[SimpleNamespace], events: list[SimpleNamespace]) -> None:
    """Move each chain's head to the newest event of this write, and insert the events.

    PostgreSQL: one statement, each head's UPDATE a data-modifying WITH query of the events' INSERT (executed
    once and to completion whether or not the INSERT reads it), so the write is one round trip after the locks.
    SQLite, in-process, has no round trip to save and no data-modifying WITH: an UPDATE per head, then one INSERT
    compiled once and run for every event (executemany).
    """
    moves = [_head_update(event) for event in newest]
    with connection.cursor() as cursor:
        if connection.vendor != "postgresql":
            for sql, params in moves:
                cursor.execute(sql, params)
            cursor.executemany(*_sqlite_insert(events))
            return
        insert_sql, insert_params = _postgresql_insert(events)
        with_queries = ", ".join(f"head_{number} AS ({sql})" for number, (sql, _) in enumerate(moves))
        cursor.execute(f"WITH {with_queries} {insert_sql}", [*(p for _, params in moves for p in params), *insert_params])


def _head_update(newest: SimpleNamespace) -> tuple[str, list]:
    """The UPDATE moving a chain's head to this write's newest event, with its signature (SQL and parameters)."""
    table = connection.ops.quote_name(ChainHead._meta.db_table)
    signed_at = ChainHead._meta.get_field("signed_at").get_db_prep_value(newest.occurred_at, connection)
    sql = f"UPDATE {table} SET seq = %s, head_hash = %s, signed_at = %s, signature = %s, key_id = %s WHERE organisation_id = %s"  # noqa: S608
    return sql, [newest.seq, newest.hash, signed_at, newest.head_signature, newest.head_key_id, newest.chain_id]


_INSERTED_FIELDS = (*HASHED_FIELDS, "hash", "head_signature", "head_key_id")
_inserted_values = operator.attrgetter(*_INSERTED_FIELDS)


def _columns_of(events: list[SimpleNamespace]) -> list[tuple]:
    """The events' inserted values column by column, in _INSERTED_FIELDS order (read and transposed in C)."""
    return list(zip(*map(_inserted_values, events), strict=True))


def _one_value(column: tuple) -> bool:
    """Whether a column holds one value for every event (of one type: 1 and True are not the same value here)."""
    return column.count(column[0]) == len(column) and len(set(map(type, column))) == 1


def _plain(column: tuple) -> bool:
    """Whether every value of a column goes to the database as it is (text, whole numbers, NULL)."""
    return _TAKEN_AS_IS.issuperset(map(type, column))


@lru_cache(maxsize=4)
def _insert_head(vendor: str) -> tuple[tuple, str]:
    """The inserted fields and the start of the events' INSERT (our own quoted table and column names)."""
    fields = tuple(AccessEvent._meta.get_field(name) for name in _INSERTED_FIELDS)
    table = connection.ops.quote_name(AccessEvent._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    return fields, f"INSERT INTO {table} ({columns})"


def _postgresql_insert(events: list[SimpleNamespace]) -> tuple[str, list]:
    """The events' INSERT on PostgreSQL (SQL and parameters), without model instances: one statement for any number.

    A column holding one value for every event of the write (the chain, the time, the actor, the request: most
    of them) is sent once, as a single parameter; only the others are sent per event, as the rows of one JSON
    array (psycopg spelled a page's nine arrays of 50 values in 3.6 ms of CPU, one regular expression a value;
    json.dumps spells the same rows in 0.5 ms, and the database reads each value back as text cast to its
    column's type, exactly).
    """
    _, head = _insert_head(connection.vendor)
    types = _column_types(connection.vendor)
    columns = _columns_of(events)
    # A single event: every column is its one value, sent as a row like any other.
    shared = [len(events) > 1 and _one_value(column) for column in columns]
    once = [column[0] for column, one in zip(columns, shared, strict=True) if one]
    # Times and UUIDs as text (_canonical), each distinct value converted once.
    varying = [
        column if _plain(column) else _converted(column, _canonical)
        for column, one in zip(columns, shared, strict=True)
        if not one
    ]
    selected, n = [], 0
    for number, one in enumerate(shared):
        if one:
            selected.append(f"%s::{types[number]}")
        else:
            selected.append(f"(u.e->>{n})::{types[number]}")
            n += 1
    # jsonb, parsed once: each ->> on a json value parses its text again, a row's ten varying columns ten times
    # (0.4 of 1.1 ms of a page's insert at 100k referrals; 0.6 ms in all with jsonb). Every value read back is
    # the text written: strings unescaped as json's would be, and the only numbers are whole ones.
    text = _JSON_ROWS(list(zip(*varying, strict=True)))
    # Every value is a parameter.
    return f"{head} SELECT {', '.join(selected)} FROM jsonb_array_elements(%s::jsonb) AS u(e)", [*once, text]  # noqa: S608


def _sqlite_insert(events: list[SimpleNamespace]) -> tuple[str, list[tuple]]:
    """The events' INSERT on SQLite (SQL and each event's parameters), without model instances, for executemany.

    SQLite runs in this process, so a statement per row costs no round trip: one INSERT compiled once and stepped
    for every event took 0.45 ms for a page's 50 events at 100,000 referrals, where one INSERT of 50 rows (or
    INSERT ... SELECT over their VALUES) took 0.8 ms, most of it compiling a statement of several hundred
    parameters. Times and UUIDs as SQLite takes them, by the fields' own conversion, each distinct value once.
    """
    fields, head = _insert_head(connection.vendor)
    columns = [
        column if _plain(column) else _converted(column, partial(_sqlite_value, field))
        for field, column in zip(fields, _columns_of(events), strict=True)
    ]
    return f"{head} VALUES ({', '.join(['%s'] * len(fields))})", list(zip(*columns, strict=True))


def _sqlite_value(field, value):
    """A value as SQLite takes it: the field's own conversion (a UUID as its 32 hex digits), text and numbers as they are."""
    if type(value) in _TAKEN_AS_IS:
        return value
    return value.hex if type(value) is uuid.UUID else field.get_db_prep_value(value, connection)


def _converted(column: tuple, convert) -> tuple:
    """A column with each distinct value converted once (a write's events share their time, and often a client).

    Keyed by type and value: 1 and True are equal keys to a dict but not the same value to encode.
    """
    done = {}
    return tuple(done[key] if (key := (type(value), value)) in done else done.setdefault(key, convert(value)) for value in column)


# Times as ISO 8601 in UTC with microseconds and UUIDs as text (_canonical), which PostgreSQL casts back exactly.
_JSON_ROWS = json.JSONEncoder(separators=(",", ":")).encode


@lru_cache(maxsize=4)
def _column_types(vendor: str) -> tuple[str, ...]:
    """The database types the PostgreSQL statement casts its parameters to: the inserted columns' own, but text for
    character columns. An explicit cast to varchar(n) cuts a longer value short without a word, which would store
    other text than was hashed; text assigned to the column is refused instead, and the write rolls back."""
    types = (AccessEvent._meta.get_field(name).db_type(connection) for name in _INSERTED_FIELDS)
    return tuple("text" if kind.startswith("varchar") else kind for kind in types)


# Values every field here converts to themselves (text, whole numbers, NULL); times and UUIDs are converted.
_TAKEN_AS_IS = frozenset({str, int, type(None)})


# ---- verifying --------------------------------------------------------------------------------------------


@dataclass
class Verification:
    verified: bool
    events_checked: int
    first_mismatch: dict | None
    heads: dict[int, dict]
    against_found: bool | None = None
    # The Python memory each worker process of the largest split held at its peak, when they trace memory (the
    # benchmark's check that memory stays flat: tracing in this process cannot see theirs). Not part of the answer.
    workers_peak_bytes: tuple[int, ...] | None = None

    def as_dict(self) -> dict:
        return {
            "verified": self.verified,
            "events_checked": self.events_checked,
            "first_mismatch": self.first_mismatch,
            "heads": {str(k): v for k, v in self.heads.items()},
            **({"against_found": self.against_found} if self.against_found is not None else {}),
        }


# Verification reads the hashed fields as the canonical encoding spells them, formatted by the database: times
# as ISO 8601 in UTC with microseconds, UUIDs as hyphenated text. Python then only joins, encodes and hashes.
_TEXT_COLUMNS = {
    "postgresql": {
        "occurred_at": """to_char(occurred_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')""",
        "client_pseudonym": "client_pseudonym::text",
        "referral_id": "referral_id::text",
    },
    "sqlite": {
        # Django keeps naive UTC text here, without the fraction when it is zero.
        "occurred_at": "replace(CASE WHEN length(occurred_at) = 19 THEN occurred_at || '.000000' ELSE occurred_at END,"
        " ' ', 'T') || '+00:00'",
        **{
            name: f"lower(substr({name}, 1, 8) || '-' || substr({name}, 9, 4) || '-' || substr({name}, 13, 4) || '-' ||"
            f" substr({name}, 17, 4) || '-' || substr({name}, 21, 12))"
            for name in ("client_pseudonym", "referral_id")
        },
    },
}
# The one optional field comes last in HASHED_FIELDS, so an event without it is encoded from a shorter slice of
# its row (consent.access.chain_walk.content_hash).
assert HASHED_FIELDS[-1:] == tuple(OPTIONAL_HASHED_FIELDS)


def _chain_sql(connection, where: str = "seq > %s AND seq <= %s ORDER BY seq LIMIT %s") -> str:
    text = _TEXT_COLUMNS.get(connection.vendor, {})
    columns = ", ".join(text.get(name, connection.ops.quote_name(name)) for name in HASHED_FIELDS)
    table = connection.ops.quote_name(AccessEvent._meta.db_table)
    # Fixed column names and expressions of our own; the chain, position and batch size are parameters.
    return f"SELECT id, {columns}, hash FROM {table} WHERE chain_id = %s AND {where}"  # noqa: S608


def _rendered_sql(connection) -> str:
    """PostgreSQL writes each event's encoding itself, strings quoted as they are (chain_walk._content_hashes says
    when that text is trusted), with the number of quotes it holds if no string holds one.

    Numbers as their text or null, strings, times and UUIDs in quotes or null; the optional field, when empty, is
    left out with its comma, as canonical_encoding leaves it out.
    """
    text = _TEXT_COLUMNS["postgresql"]
    # Literal text and SQL values in order; neighbouring literals are merged below, as each || costs the database.
    pieces, quoted, always, optional = [], [], 0, ""
    for i, name in enumerate(HASHED_FIELDS):
        field = AccessEvent._meta.get_field(name)
        value = text.get(name, connection.ops.quote_name(field.column))
        internal = field.target_field.get_internal_type() if field.is_relation else field.get_internal_type()
        comma = [] if i == 0 else [(True, ",")]
        if name in OPTIONAL_HASHED_FIELDS:
            optional = f"""CASE WHEN coalesce({value}, '') = '' THEN '' ELSE ',"' || {value} || '"' END"""
            quoted.append(f"(coalesce({value}, '') <> '')::int")
        elif internal.endswith(("IntegerField", "AutoField")):
            number = f"coalesce(({value})::text, 'null')" if field.null else f"({value})::text"
            pieces += [*comma, (False, number)]
        elif field.null:
            pieces += [*comma, (False, f"""coalesce('"' || {value} || '"', 'null')""")]
            quoted.append(f"({value} IS NOT NULL)::int")
        else:
            pieces += [*comma, (True, '"'), (False, value), (True, '"')]
            always += 1
    pieces = [(True, "["), *pieces, *([(False, optional)] if optional else []), (True, "]")]
    merged = []
    for literal, sql in pieces:
        if literal and merged and merged[-1][0]:
            merged[-1] = (True, merged[-1][1] + sql)
        else:
            merged.append((literal, sql))
    encoding = " || ".join("'" + sql.replace("'", "''") + "'" if literal else sql for literal, sql in merged)
    quotes = f"2 * ({' + '.join([str(always), *quoted])})"
    table = connection.ops.quote_name(AccessEvent._meta.db_table)
    return (
        f"SELECT id, seq, prev_hash, hash, {encoding}, {quotes} FROM {table}"  # noqa: S608
        " WHERE chain_id = %s AND seq > %s AND seq <= %s ORDER BY seq LIMIT %s"
    )


def _chain_queries(connection) -> chain_walk.Queries:
    """How verification reads a chain on this database (consent.access.chain_walk)."""
    if connection.vendor != "postgresql":
        return chain_walk.Queries(fields=_chain_sql(connection))
    return chain_walk.Queries(
        fields=_chain_sql(connection),
        rendered=_rendered_sql(connection),
        fields_of=_chain_sql(connection, "seq = ANY(%s) ORDER BY seq"),
    )


def _mismatch(event_id, chain_id, seq, problem) -> dict:
    return {"event_id": event_id, "chain": chain_id, "seq": seq, "problem": problem}


def _resume_point(chain_id: int, columns: tuple[str, ...]) -> tuple[int, str, str | None]:
    """(sequence, hash) to resume a chain's walk from, after re-checking the latest checkpoint's event.

    Returns (0, genesis, None) to walk from the start, or a problem if the checkpoint event has changed.
    """
    checkpoint = VerifiedCheckpoint.objects.filter(organisation_id=chain_id).order_by("-seq").first()
    if checkpoint is None:
        return 0, GENESIS_HASH, None
    row = AccessEvent.objects.filter(chain_id=chain_id, seq=checkpoint.seq).values_list(*columns).first()
    values = dict(zip(columns, row, strict=True)) if row else None
    if values is None or values["hash"] != checkpoint.event_hash or event_hash(values) != values["hash"]:
        return checkpoint.seq, checkpoint.event_hash, "the event of the last verified checkpoint has changed or gone"
    return checkpoint.seq, checkpoint.event_hash, None


def _event_beyond_head(chain_ids: list[int]) -> dict | None:
    """The first event lying past its chain's head (or on a chain with no head row), asked in one statement.

    One statement is one snapshot even under READ COMMITTED: a writer commits its events and the head it
    moves together, so only an event written around the log, never a concurrent writer, shows up here. The
    question is asked per chain (an EXISTS on the (chain, seq) index past the head's sequence), so it costs
    one index probe a chain, not a read of the chain's events.
    """
    head = ChainHead.objects.filter(organisation_id=OuterRef("pk"))
    beyond = AccessEvent.objects.filter(chain_id=OuterRef("pk"), seq__gt=OuterRef("head_seq"))
    chain = (
        Organisation.objects.filter(pk__in=chain_ids)
        .annotate(head_seq=Coalesce(Subquery(head.values("seq")[:1]), Value(0)), has_head=Exists(head))
        .filter(Exists(beyond))
        .order_by("pk")
        .values("pk", "head_seq", "has_head")
        .first()
    )
    if chain is None:
        return None
    event = (
        AccessEvent.objects.filter(chain_id=chain["pk"], seq__gt=chain["head_seq"]).order_by("seq").values("id", "seq").first()
    )
    problem = "lies beyond its chain's head" if chain["has_head"] else "the chain's head row is missing"
    return _mismatch(event["id"] if event else None, chain["pk"], event["seq"] if event else chain["head_seq"] + 1, problem)


def _walk(chain_id: int, start: int, prev_hash: str, head: dict, against) -> tuple[int, str, dict | None, bool, tuple | None]:
    """Check one chain's events after `start` up to its head.

    Returns (events checked, last hash, mismatch, against seen, each worker's peak memory if they traced it).
    """
    stretches = _walk_stretches(chain_id, start, head["seq"], against)
    checked, expected_seq, prev_hash, mismatch, found = _join(chain_id, start, prev_hash, stretches, against)
    peaks = [s.peak_bytes for s in stretches if s.peak_bytes is not None]
    peak = tuple(peaks) if peaks else None
    if mismatch:
        return checked, prev_hash, mismatch, found, peak
    if expected_seq - 1 != head["seq"] or prev_hash != head["head_hash"]:
        problem = f"chain head (sequence {head['seq']}) does not match its last event (sequence {expected_seq - 1})"
        return checked, prev_hash, _mismatch(None, chain_id, head["seq"], problem), found, peak
    return checked, prev_hash, None, found, peak


def _join(chain_id: int, start: int, prev_hash: str, stretches: list[chain_walk.Stretch], against) -> tuple:
    """Join a chain's stretches in order, as one walk from `start` would see them.

    Each stretch's first event must carry the next sequence number after the last event before it and link to
    that event's hash; the problems of an event are checked in the same order as within a stretch
    (chain_walk.problem_of), so the first bad event named, and the count of events checked up to it, are those of
    a walk in one piece. Returns (events checked, next sequence number expected, last hash, mismatch, against seen).
    """
    checked, expected_seq, found = 0, start + 1, False
    for stretch in stretches:
        if stretch.first is None:
            continue  # No event in this stretch: the next one's first event must follow the last event seen.
        event_id, seq, link, hash_, content = stretch.first
        checked += 1
        problem = chain_walk.problem_of(seq, expected_seq, link, prev_hash, content, hash_)
        if problem:
            return checked, expected_seq, prev_hash, _mismatch(event_id, chain_id, seq, problem), found
        checked, found = checked + stretch.checked, found or hash_ == against or stretch.found
        if stretch.problem:
            event_id, seq, problem = stretch.problem
            return checked, expected_seq, prev_hash, _mismatch(event_id, chain_id, seq, problem), found
        expected_seq, prev_hash = stretch.last_seq + 1, stretch.last_hash
    return checked, expected_seq, prev_hash, None, found


def _workers_for(events: int) -> int:
    """How many worker processes walk this many events of a chain: 1 means this process, on this connection.

    Workers read over connections of their own, so they are used only where those see exactly what this one
    would: on PostgreSQL outside a transaction. Inside one (a request), this connection may see events and a
    head its own transaction wrote and has not committed, which no other connection can. SQLite keeps the walk
    here: its database is one file (in memory in the tests) and a SQLite site's chains are short. A daemonic
    process (a worker of some pool) may not start processes of its own.
    """
    workers = _worker_count()
    if workers < 2 or events < SPLIT_FROM_EVENTS or connection.vendor != "postgresql" or connection.in_atomic_block:
        return 1
    return 1 if multiprocessing.current_process().daemon else workers


def _worker_count() -> int:
    """ACCESS_LOG_VERIFY_WORKERS, where 0 means one per CPU this process may run on, and never more than that.

    A worker and its database backend together keep about one CPU busy (chain_walk.batches reads the next batch
    while this one is hashed): at 100,000 referrals on 2 CPUs, 3 or 4 workers were no faster than 2.
    """
    cpus = _usable_cpus()
    return min(settings.ACCESS_LOG_VERIFY_WORKERS or cpus, cpus)


def _usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system says), at least 1."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # no affinity on this system (macOS)
        return os.cpu_count() or 1


def _walk_stretches(chain_id: int, start: int, upto: int, against) -> list[chain_walk.Stretch]:
    """A chain's events after `start` up to `upto` walked as one stretch here, or split between worker processes.

    Why several connections read one consistent chain: every stretch is bounded by the head read at the start
    (`upto`), and a writer commits its events together with the head it moves, so every event up to that head was
    committed before the walk began and is seen alike by every later snapshot of every connection. Events are
    append-only (the triggers refuse UPDATE and DELETE), so none of them changes while the workers read; events
    appended meanwhile lie beyond `upto` and are read by nobody. This is the same reasoning that already lets one
    connection read a chain in batches, each batch its own snapshot: a worker's stretch is a run of batches.
    Only a change made around the log during the walk could be seen by one reader and not another, as it could
    between two batches; the next verification sees it.
    """
    workers = _workers_for(upto - start)
    if workers > 1:
        step = -(-(upto - start) // workers)  # ceiling: contiguous stretches of about equal length
        bounds = [(after, min(after + step, upto)) for after in range(start, upto, step)]
        try:
            return _in_workers(chain_id, bounds, against)
        except (BrokenProcessPool, OSError, psycopg.Error):
            # A worker could not start or connect (no process allowed, no connection left): walk it here instead.
            logger.warning("Verifying chain %s in one process: its workers could not run.", chain_id, exc_info=True)
    return _here(chain_id, [(start, upto)], against)


def _here(chain_id: int, bounds: list[tuple[int, int]], against) -> list[chain_walk.Stretch]:
    """Walk each stretch (after, upto] in turn in this process, on this connection."""
    queries, stretches = _chain_queries(connection), []
    with connection.cursor() as cursor:
        for after, upto in bounds:
            with closing(chain_walk.batches(cursor, queries, chain_id, after, upto, VERIFY_BATCH)) as read:
                stretches.append(chain_walk.walk(read, against))
    return stretches


def _in_workers(chain_id: int, bounds: list[tuple[int, int]], against) -> list[chain_walk.Stretch]:
    """Walk each stretch (after, upto] in a worker process of its own, each on its own database connection.

    Forked rather than spawned: a forked worker starts in milliseconds and imports nothing, where a spawned one
    would start a new interpreter and run the caller's main module again. A worker never touches the connection
    it inherits (it opens its own and leaves by os._exit, which closes nothing of the parent's).
    """
    queries = _chain_queries(connection)
    # This connection's libpq parameters (database, user, host, options such as a search_path), without Django's
    # Python objects (cursor factory, adapters), which a worker does not use.
    conninfo = {k: v for k, v in connection.get_connection_params().items() if v is None or isinstance(v, str | int)}
    with ProcessPoolExecutor(len(bounds), mp_context=multiprocessing.get_context("fork")) as pool:
        futures = [
            pool.submit(chain_walk.walk_stretch, conninfo, queries, chain_id, after, upto, VERIFY_BATCH, against)
            for after, upto in bounds
        ]
        return [future.result() for future in futures]


def _every_chain() -> list[int]:
    """Every organisation's chain, and any chain with a head row: deleting a head does not hide its chain."""
    return sorted(
        set(Organisation.objects.values_list("pk", flat=True)) | set(ChainHead.objects.values_list("organisation_id", flat=True))
    )


def _heads_of(chains) -> dict[int, dict]:
    """The chains' head rows with their signatures, read after their checkpoints (so never behind one)."""
    rows = ChainHead.objects.filter(organisation_id__in=chains).values(
        "organisation_id", "seq", "head_hash", "signed_at", "signature", "key_id"
    )
    return {row["organisation_id"]: row for row in rows}


def verify_chain(*, organisation_ids: list[int] | None = None, against: str | None = None, resume: bool = False) -> Verification:
    """Walk the chains in constant memory; name the first event whose hash or link does not match.

    Without `organisation_ids`, every organisation's chain is walked (not only those with a head row, so
    deleting a head does not hide its chain). With `against`, also check that an earlier published head
    hash is still in a chain, which catches a chain rewritten consistently from some point on.

    Each chain is walked up to the head read at the start: events appended during the walk are not yet
    verified, never a mismatch (heads are read after the checkpoints, so a head is never behind one). A last
    statement then checks, in one snapshot, that no event lies beyond its chain's head.

    A full walk that verifies records a checkpoint per chain. With `resume` (the compliance report), the
    walk starts at the latest checkpoint instead, so its cost is the events written since, not the whole
    log; the command and the DPO's verify always walk in full.
    """
    chains = organisation_ids if organisation_ids is not None else _every_chain()
    columns = ("id", *HASHED_FIELDS, "hash")
    starts = {chain_id: _resume_point(chain_id, columns) if resume else (0, GENESIS_HASH, None) for chain_id in chains}
    heads_by_chain = _heads_of(chains)
    checked, heads, checkpoints, against_found = 0, {}, [], (False if against else None)
    workers_peak = None
    for chain_id in chains:
        start, prev_hash, problem = starts[chain_id]
        if problem:
            return Verification(False, checked, _mismatch(None, chain_id, start, problem), heads, against_found)
        head = heads_by_chain.get(chain_id)
        if head is None:
            continue  # No head row: no event may exist either, which the last check below asks.
        walked, prev_hash, mismatch, found, peak = _walk(chain_id, start, prev_hash, head, against)
        checked += walked
        against_found = True if found else against_found
        workers_peak = max(workers_peak or (), peak, key=sum) if peak is not None else workers_peak
        # A head that matches its chain must also carry the log key's signature (consent.access.heads).
        mismatch = mismatch or _head_signature_mismatch(chain_id, head)
        if mismatch:
            return Verification(False, checked, mismatch, heads, against_found)
        heads[chain_id] = {"seq": head["seq"], "head_hash": prev_hash}
        if head["seq"] > start:
            checkpoints.append(VerifiedCheckpoint(organisation_id=chain_id, seq=head["seq"], event_hash=prev_hash))
    beyond = _event_beyond_head(list(chains))
    if beyond:
        return Verification(False, checked, beyond, heads, against_found)
    verified = against_found is not False
    if verified:
        VerifiedCheckpoint.objects.bulk_create(checkpoints)
    mismatch = None
    if not verified:
        mismatch = _mismatch(
            None, None, None,
            f"published head {against} is not in the chain: either the chain has been rewritten since it was published, "
            "or the hash was mistyped (a published head file, checked with verify_access_log --against FILE, tells which)",
        )  # fmt: skip
    return Verification(verified, checked, mismatch, heads, against_found, workers_peak_bytes=workers_peak)


def _head_signature_mismatch(chain_id: int, head: dict) -> dict | None:
    """A head that matches its chain but is not signed by the log key: a rewrite made with database access alone."""
    if not head["seq"]:
        return None
    problem = heads.signature_problem(
        chain_id, head["seq"], head["head_hash"], head["signed_at"], head["signature"], head["key_id"]
    )
    if problem is None:
        return None
    return _first_unsigned_event(chain_id, f"the chain head {problem}")


def _first_unsigned_event(chain_id: int, head_problem: str) -> dict:
    """Trace a head that fails its signature to the first event no valid signed head covers.

    Walks the signed heads kept on the newest event of each write, in order: everything up to the last one that
    verifies is as the service wrote it; the rewrite begins after it. Runs only once verification has failed.
    """
    good_seq, broken = 0, False
    signed = AccessEvent.objects.filter(chain_id=chain_id).exclude(head_signature="").order_by("seq")
    while not broken:
        batch = list(
            signed.filter(seq__gt=good_seq).values_list("seq", "hash", "occurred_at", "head_signature", "head_key_id")[
                :VERIFY_BATCH
            ]
        )
        for seq, hash_, occurred_at, signature, key_id in batch:
            if heads.signature_problem(chain_id, seq, hash_, occurred_at, signature, key_id):
                broken = True
                break
            good_seq = seq
        broken = broken or len(batch) < VERIFY_BATCH
    first = AccessEvent.objects.filter(chain_id=chain_id, seq=good_seq + 1).values_list("id", flat=True).first()
    if first is None:
        return _mismatch(None, chain_id, good_seq, head_problem)
    problem = (
        f"{head_problem}; no valid signed head covers this event or any after it "
        f"(the last verified signed head is at sequence {good_seq}): the chain has been rewritten from here on"
    )
    return _mismatch(first, chain_id, good_seq + 1, problem)


def chain_heads(organisation_ids) -> dict[str, dict]:
    """The current head of each named chain, for publishing outside the database."""
    heads = ChainHead.objects.filter(organisation_id__in=list(organisation_ids)).order_by("organisation_id")
    return {str(h.organisation_id): {"seq": h.seq, "head_hash": h.head_hash} for h in heads}


# ---- published heads ----------------------------------------------------------------------------------------


def published_heads(organisation_ids=None) -> list[str]:
    """Each chain's signed head as one JSON line (consent.access.heads), for the DPO to archive elsewhere."""
    rows = ChainHead.objects.filter(seq__gt=0).order_by("organisation_id")
    if organisation_ids is not None:
        rows = rows.filter(organisation_id__in=list(organisation_ids))
    return [heads.published_line(h.organisation_id, h.seq, h.head_hash, h.signed_at, h.signature, h.key_id) for h in rows]


@dataclass
class HeadCheck:
    """What one line of a published head file says about the log now."""

    line: int
    verdict: str  # found, malformed, untrusted, rewritten
    detail: str
    chain: int | None = None

    @property
    def rewritten(self) -> bool:
        return self.verdict == "rewritten"


def check_published_heads(lines: Iterable[str]) -> list[HeadCheck]:
    """Check every line of a published head file against the chains as they are now.

    A line that is not a published head (malformed), or whose signature is not the log key's over its own chain,
    sequence, hash and time (mistyped, changed, or from another service), says nothing about the chain and is
    reported as such. A head the service did sign must still be in its chain: at its sequence number, with its
    hash. If not, the chain has been rewritten (or cut short) since it was published.
    """
    checks = []
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            head = heads.parse_line(text)
        except heads.MalformedHead as malformed:
            checks.append(HeadCheck(number, "malformed", str(malformed)))
            continue
        problem = heads.signature_problem(head.chain, head.seq, head.hash, head.time, head.signature, head.key_id)
        if problem:
            detail = f"the head {problem}; mistyped, changed or from another service, it says nothing about the chain"
            checks.append(HeadCheck(number, "untrusted", detail, head.chain))
            continue
        now = AccessEvent.objects.filter(chain_id=head.chain, seq=head.seq).values_list("hash", flat=True).first()
        if now == head.hash:
            checks.append(HeadCheck(number, "found", f"still in chain {head.chain} at sequence {head.seq}", head.chain))
        elif now is None:
            detail = (
                f"chain {head.chain} no longer reaches sequence {head.seq}, which this service signed: events have been removed"
            )
            checks.append(HeadCheck(number, "rewritten", detail, head.chain))
        else:
            detail = (
                f"chain {head.chain} at sequence {head.seq} has hash {now}, not the published {head.hash}: it has been rewritten"
            )
            checks.append(HeadCheck(number, "rewritten", detail, head.chain))
    return checks
