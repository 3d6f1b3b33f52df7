"""Exports of client data and of its access log: the log as CSV rows and HL7 FHIR R4 AuditEvents, and a client's
subject-access export (beside the FHIR Consent export, consent.fhir, and the consent receipts, consent.receipts).

Built as plain values so nothing here needs a FHIR library at run time; the test suite validates the
AuditEvents against `fhir.resources.R4B`. Clients appear only by pseudonym in the log documents.
"""

from collections.abc import Iterator
from datetime import UTC, datetime

from django.db.models import QuerySet
from django.utils import timezone

from consent import selectors as consent_selectors
from consent.access import firewall
from consent.access.log import AccessContext
from consent.access.models import AccessEvent, Action, Outcome
from consent.fhir import PSEUDONYM_SYSTEM, SYSTEM_BASE
from consent.models import ACKNOWLEDGEMENTS, ConsentRecord, Referral

# Read a batch at a time by sequence number, so an export of any size holds one batch in memory.
EXPORT_BATCH = 2000

CSV_COLUMNS = (
    "id", "chain", "seq", "occurred_at", "actor_id", "actor_name", "actor_organisation_id", "actor_organisation_kind",
    "action", "object_type", "object_id", "client_pseudonym", "referral_id", "outcome", "purpose", "request_id",
    "method", "path", "status", "alert_reasons", "prev_hash", "hash",
)  # fmt: skip

# A spreadsheet runs a cell starting with one of these as a formula (OWASP: CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def event_as_dict(event: AccessEvent) -> dict:
    """One event as the API shows it."""
    return {
        "id": event.pk,
        "chain": event.chain_id,
        "seq": event.seq,
        "occurred_at": event.occurred_at,
        "actor": {
            "id": event.actor_id,
            "name": event.actor_name,
            "organisation_id": event.actor_organisation_id,
            "organisation_kind": event.actor_organisation_kind,
        },
        "action": event.action,
        "object_type": event.object_type,
        "object_id": event.object_id,
        "client_pseudonym": event.client_pseudonym,
        "referral": event.referral_id,
        "outcome": event.outcome,
        "purpose": event.purpose,
        "request": {"id": event.request_id, "method": event.method, "path": event.path, "status": event.status},
        "alert_reasons": event.alert_reasons.split(",") if event.alert_reasons else [],
        "prev_hash": event.prev_hash,
        "hash": event.hash,
    }


def _in_batches(queryset: QuerySet[AccessEvent]) -> Iterator[AccessEvent]:
    """The events of one chain in sequence order, read a batch at a time (keyset pagination)."""
    after = 0
    while True:
        batch = list(queryset.filter(seq__gt=after).order_by("seq")[:EXPORT_BATCH])
        yield from batch
        if len(batch) < EXPORT_BATCH:
            return
        after = batch[-1].seq


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def csv_rows(queryset: QuerySet[AccessEvent]) -> Iterator[list[str]]:
    """The header, then one row per event, in chain order, in constant memory."""
    yield list(CSV_COLUMNS)
    for event in _in_batches(queryset):
        values = {"id": event.pk, "chain": event.chain_id, **{c: getattr(event, c) for c in CSV_COLUMNS[2:]}}
        yield [_csv_cell(values[column]) for column in CSV_COLUMNS]


# ---- FHIR R4 AuditEvent ------------------------------------------------------------------------------------

AUDIT_EVENT_TYPE = "http://terminology.hl7.org/CodeSystem/audit-event-type"
DICOM = "http://dicom.nema.org/resources/ontology/DCM"
RESTFUL_INTERACTION = "http://hl7.org/fhir/restful-interaction"
ENTITY_TYPE = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
OBJECT_ROLE = "http://terminology.hl7.org/CodeSystem/object-role"
ACT_REASON = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
ACTION_SYSTEM = f"{SYSTEM_BASE}:access-action"
ORGANISATION_KIND_SYSTEM = f"{SYSTEM_BASE}:organisation-kind"
USER_SYSTEM = f"{SYSTEM_BASE}:user"
REFERRAL_SYSTEM = f"{SYSTEM_BASE}:referral"
EVENT_SYSTEM = f"{SYSTEM_BASE}:access-event"

# Our actions as FHIR's C/R/U/D/E and, where one fits, a RESTful interaction.
FHIR_ACTION = {
    Action.READ: ("R", "read"),
    Action.LIST: ("R", "search-type"),
    Action.CREATE: ("C", "create"),
    Action.RECORD: ("C", "create"),
    Action.WITHDRAWAL: ("C", "create"),
    Action.EXPORT: ("R", "read"),
    Action.BREAK_GLASS: ("R", "read"),
    Action.GRANT: ("U", None),
    Action.REVOKE: ("U", None),
    Action.SIGN_IN: ("E", None),
    Action.SIGN_IN_FAILED: ("E", None),
    Action.RETENTION: ("D", None),
}

_SIGN_IN_ACTIONS = (Action.SIGN_IN, Action.SIGN_IN_FAILED)


def _instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def _audit_types(event: AccessEvent, interaction: str | None) -> tuple[dict, list[dict]]:
    """The AuditEvent's type and subtypes: our action, and FHIR's RESTful interaction where there is one."""
    if event.action in _SIGN_IN_ACTIONS:
        event_type = {"system": DICOM, "code": "110114", "display": "User Authentication"}
    else:
        event_type = {"system": AUDIT_EVENT_TYPE, "code": "rest", "display": "RESTful Operation"}
    subtype = [{"system": ACTION_SYSTEM, "code": event.action, "display": Action(event.action).label}]
    if interaction:
        subtype.append({"system": RESTFUL_INTERACTION, "code": interaction})
    return event_type, subtype


def _audit_agent(event: AccessEvent) -> dict:
    agent = {
        "who": {"identifier": {"system": USER_SYSTEM, "value": str(event.actor_id or "anonymous")}, "display": event.actor_name},
        "requestor": True,
    }
    if event.actor_organisation_kind:
        agent["role"] = [{"coding": [{"system": ORGANISATION_KIND_SYSTEM, "code": event.actor_organisation_kind}]}]
    if event.actor_organisation_id:
        agent["altId"] = f"organisation {event.actor_organisation_id}"
    return agent


def _audit_entities(event: AccessEvent) -> list[dict]:
    """The event itself (with the log's own fields), and the client (by pseudonym) and referral it is about."""
    details = [
        {"type": name, "valueString": str(value)}
        for name, value in (
            ("request_id", event.request_id), ("method", event.method), ("path", event.path), ("status", event.status),
            ("alert_reasons", event.alert_reasons), ("seq", event.seq), ("prev_hash", event.prev_hash),
            ("hash", event.hash),
        )
        if value not in ("", None)
    ]  # fmt: skip
    entities = [
        {
            "what": {"identifier": {"system": EVENT_SYSTEM, "value": f"{event.chain_id}:{event.seq}"}},
            "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
            "detail": details,
        }
    ]
    if event.client_pseudonym:
        entities.append(
            {
                "what": {"identifier": {"system": PSEUDONYM_SYSTEM, "value": str(event.client_pseudonym)}},
                "type": {"system": ENTITY_TYPE, "code": "1", "display": "Person"},
                "role": {"system": OBJECT_ROLE, "code": "1", "display": "Patient"},
            }
        )
    if event.referral_id:
        entities.append(
            {
                "what": {"identifier": {"system": REFERRAL_SYSTEM, "value": str(event.referral_id)}},
                "type": {"system": ENTITY_TYPE, "code": "2", "display": "System Object"},
                "name": event.object_type or "referral",
            }
        )
    return entities


def _audit_purpose(event: AccessEvent) -> list[dict] | None:
    if event.action == Action.BREAK_GLASS:
        return [
            {
                "coding": [{"system": ACT_REASON, "code": "BTG", "display": "break the glass"}],
                "text": event.purpose or "break-glass",
            }
        ]
    return [{"text": event.purpose}] if event.purpose else None


def audit_event(event: AccessEvent) -> dict:
    """One access event as a FHIR R4 AuditEvent (a JSON-ready dict)."""
    code, interaction = FHIR_ACTION.get(event.action, ("E", None))
    event_type, subtype = _audit_types(event, interaction)
    resource = {
        "resourceType": "AuditEvent",
        "id": f"access-event-{event.pk}",
        "type": event_type,
        "subtype": subtype,
        "action": code,
        "recorded": _instant(event.occurred_at),
        # 0 success; 4 minor failure, which is how a refused access is reported.
        "outcome": "0" if event.outcome == Outcome.ALLOWED else "4",
        "outcomeDesc": event.outcome,
        "agent": [_audit_agent(event)],
        "source": {
            "site": f"organisation {event.chain_id}",
            "observer": {"display": "Co-location consent tracker access log"},
            "type": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/security-source-type",
                    "code": "4",
                    "display": "Application Server",
                }
            ],
        },
        "entity": _audit_entities(event),
    }
    purpose = _audit_purpose(event)
    if purpose is not None:
        resource["purposeOfEvent"] = purpose
    return resource


def audit_event_bundle(events, *, total: int, links: dict[str, str]) -> dict:
    """A FHIR R4 searchset Bundle of AuditEvents: one page of the log, with links to its neighbours."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "timestamp": _instant(timezone.now()),
        "total": total,
        "link": [{"relation": relation, "url": url} for relation, url in links.items() if url],
        "entry": [
            {
                "fullUrl": f"{EVENT_SYSTEM}:{event.chain_id}:{event.seq}",
                "resource": audit_event(event),
                "search": {"mode": "match"},
            }
            for event in events
        ],
    }


# ---- subject-access export ---------------------------------------------------------------------------------


def _consent(record: ConsentRecord) -> dict:
    template = record.template
    return {
        "id": record.pk,
        "template": {"code": template.code, "version": template.version, "title": template.title, "language": template.language,
                     "body": template.body, "body_sha256": template.body_sha256},
        "given_at": record.given_at,
        "method": record.method,
        "scopes": record.scopes,
        "acknowledgements": {name: getattr(record, name) for name in ACKNOWLEDGEMENTS},
        "supersedes": record.supersedes_id,
        "recorded_at": record.recorded_at,
    }  # fmt: skip


def _referral(referral: Referral) -> dict:
    discharge = getattr(referral, "discharge", None) if hasattr(referral, "discharge") else None
    decline = getattr(referral, "decline", None) if hasattr(referral, "decline") else None
    return {
        "id": referral.pk,
        "site": {"id": referral.site_id, "name": referral.site.name},
        "referred_on": referral.referred_on,
        "source_of_referral": referral.source_of_referral,
        "how_heard": referral.how_heard,
        "pathway": referral.pathway,
        "status": referral.status,
        "voluntariness": consent_selectors.voluntariness_of(referral).as_dict(),
        "created_at": referral.created_at,
        "updated_at": referral.updated_at,
        "consents": [_consent(record) for record in referral.consents.all()],
        "withdrawals": [
            {
                "id": w.pk,
                "withdrawn_at": w.withdrawn_at,
                "reason": w.reason,
                "supersedes": w.supersedes_id,
                "recorded_at": w.recorded_at,
            }
            for w in referral.withdrawals.all()
        ],
        "voluntariness_checks": [
            {
                "id": c.pk,
                "checked_at": c.checked_at,
                "stage": c.stage,
                "told_attendance_required": c.told_attendance_required,
                "sanction_mentioned": c.sanction_mentioned,
                "feels_free_to_stop": c.feels_free_to_stop,
                "goals_set_by_client": c.goals_set_by_client,
                "employment_goal_raised_by": c.employment_goal_raised_by,
                "supersedes": c.supersedes_id,
                "recorded_at": c.recorded_at,
            }
            for c in referral.voluntariness_checks.all()
        ],  # fmt: skip
        "discharge": {"discharged_on": discharge.discharged_on, "reason": discharge.reason, "recorded_at": discharge.recorded_at}
        if discharge
        else None,
        "decline": {"declined_on": decline.declined_on, "recorded_at": decline.recorded_at} if decline else None,
        # For the DPO: a referral recorded for a client already held, by someone who could not see them, with
        # the identifiers as given at that intake (they may differ from those held).
        "recorded_for_a_client_already_held": referral.client_known_at_intake,
        **(
            {
                "identifiers_given_at_intake": {
                    "nhs_number": referral.intake_nhs_number,
                    "year_of_birth": referral.intake_year_of_birth,
                }
            }
            if referral.client_known_at_intake
            else {}
        ),  # fmt: skip
    }


def _history_entry(values: dict) -> dict:
    return {
        "occurred_at": values["occurred_at"],
        "actor": {"name": values["actor_name"], "organisation_kind": values["actor_organisation_kind"]},
        "action": values["action"],
        "outcome": values["outcome"],
        "referral": values["referral_id"],
        "purpose": values["purpose"],
        "seq": values["seq"],
        "hash": values["hash"],
    }


def subject_access_export(context: AccessContext, referral_id=None, *, referral: Referral | None = None) -> dict:
    """Everything held about the client of a referral, with the access history, for the provider's DPO.

    The firewall opens the referral for Purpose.SUBJECT_ACCESS (logged as an export, or a logged 404), here or
    before (`referral`, as the API's base view does); the client's other referrals with the same provider come
    through the firewall's selector too, each logged.
    """
    if referral is None:
        referral = firewall.open_referral(context, referral_id, purpose=firewall.Purpose.SUBJECT_ACCESS, action=Action.EXPORT)
    opened = firewall.require_opened(context, referral, firewall.Purpose.SUBJECT_ACCESS)
    base = consent_selectors.referral_detail().select_related("client")
    referrals = list(
        firewall.referrals_visible_to(context.user, firewall.Purpose.SUBJECT_ACCESS, base=base)
        .filter(client_id=opened.client_id)
        .order_by("referred_on", "created_at")
    )
    for referral in referrals:
        if referral.pk != opened.pk:
            firewall.record_allowed(context, referral, action=Action.EXPORT)
    client = referrals[0].client
    history = (
        AccessEvent.objects.filter(chain_id=opened.provider_id, client_pseudonym=client.pk)
        .order_by("seq")
        .values(
            "occurred_at", "actor_name", "actor_organisation_kind", "action", "outcome", "referral_id", "purpose", "seq", "hash"
        )
    )
    return {
        "generated_at": timezone.now(),
        "controller": {"id": opened.provider_id, "name": opened.provider.name},
        "client": {
            "pseudonym": client.pk,
            "local_reference": client.local_reference,
            "nhs_number": client.nhs_number,
            "year_of_birth": client.year_of_birth,
            "created_at": client.created_at,
            "identifiers_erased_at": client.identifiers_erased_at,
        },
        "referrals": [_referral(referral) for referral in referrals],
        "access_history": [_history_entry(values) for values in history.iterator(chunk_size=EXPORT_BATCH)],
    }
