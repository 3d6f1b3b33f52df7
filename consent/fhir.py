"""A consent record as an HL7 FHIR R4 `Consent` resource (R4B's Consent is the same resource).

Built as a plain dict so the exporter needs no FHIR library at run time; the test suite validates the
output against `fhir.resources.R4B.consent.Consent`. The client appears only by pseudonym: never an NHS
number, a local reference or anything else that identifies them outside this service.
"""

from datetime import date, datetime

from colocation.models import Organisation
from consent import selectors
from consent.models import ConsentRecord, ConsentScope, ReferralStatus

SYSTEM_BASE = "urn:co-location-consent-tracker"
PSEUDONYM_SYSTEM = f"{SYSTEM_BASE}:client-pseudonym"
CONSENT_RECORD_SYSTEM = f"{SYSTEM_BASE}:consent-record"
ORGANISATION_SYSTEM = f"{SYSTEM_BASE}:organisation"
SCOPE_SYSTEM = f"{SYSTEM_BASE}:consent-scope"
# NHS England's Organisation Data Service codes, as the UK Core profiles identify organisations.
ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"

CONSENT_SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
LOINC = "http://loinc.org"
CONSENT_ACTION_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentaction"
PARTICIPATION_TYPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"

# Everything a benefits agency could do with client data, all of it denied.
DENIED_ACTIONS = (
    ("access", "Access"),
    ("collect", "Collect"),
    ("use", "Use"),
    ("disclose", "Disclose"),
    ("correct", "Access and Correct"),
)


def _instant(value: datetime | date) -> str:
    return value.isoformat()


def organisation_reference(organisation: Organisation) -> dict:
    """A logical reference to an organisation: its ODS code when it has one, else our own identifier."""
    if organisation.ods_code:
        identifier = {"system": ODS_SYSTEM, "value": organisation.ods_code}
    else:
        identifier = {"system": ORGANISATION_SYSTEM, "value": str(organisation.pk)}
    return {"type": "Organization", "identifier": identifier, "display": organisation.name}


def _scope_coding(scope: str) -> dict:
    return {"system": SCOPE_SYSTEM, "code": scope, "display": ConsentScope(scope).label}


def _deny_benefits_agencies(agencies: list[Organisation]) -> dict:
    if agencies:
        actors = [organisation_reference(agency) for agency in agencies]
    else:
        # No benefits agency is linked to this provider's sites; the denial still stands for any of them.
        actors = [{"type": "Organization", "identifier": {"system": f"{SYSTEM_BASE}:organisation-kind", "value": "benefits_agency"},
                   "display": "Any benefits agency (e.g. Jobcentre Plus, Department for Work and Pensions)"}]  # fmt: skip
    return {
        "type": "deny",
        "actor": [
            {
                "role": {
                    "coding": [{"system": PARTICIPATION_TYPE_SYSTEM, "code": "IRCP", "display": "information recipient"}],
                    "text": "benefits agency: nothing about the client is shared with it",
                },
                "reference": actor,
            }
            for actor in actors
        ],
        "action": [
            {"coding": [{"system": CONSENT_ACTION_SYSTEM, "code": code, "display": display}]} for code, display in DENIED_ACTIONS
        ],
    }


def fhir_consent(consent: ConsentRecord) -> dict:
    """The consent record as a FHIR R4 Consent resource (a JSON-ready dict).

    - status `active` while the referral is active; `inactive` once the client has withdrawn or the
      episode has been discharged (the period then ends on that day);
    - scope `patient-privacy`, category LOINC 59284-0 (patient consent);
    - patient and performer: the client, by pseudonym only;
    - organization: the provider, identified by its ODS code when it has one;
    - policy: the template's code, version and SHA-256 of its text;
    - provision: `permit` for the scopes given (as purposes and codes), with a nested `deny` naming the
      benefits agencies as actors for every action.
    """
    referral = consent.referral
    template = consent.template
    end = selectors.consent_end(referral)
    status = "inactive" if referral.status in (ReferralStatus.WITHDRAWN, ReferralStatus.DISCHARGED) else "active"
    patient = {
        "type": "Patient",
        "identifier": {"system": PSEUDONYM_SYSTEM, "value": str(referral.client_id)},
        "display": "Client (pseudonymous)",
    }
    period = {"start": _instant(consent.given_at)}
    if end is not None:
        period["end"] = _instant(end.on)
    scopes = [scope for scope in consent.scopes if scope in ConsentScope.values]
    return {
        "resourceType": "Consent",
        "id": f"consent-{consent.pk}",
        "meta": {"lastUpdated": _instant(consent.recorded_at)},
        "language": template.language,
        "identifier": [{"system": CONSENT_RECORD_SYSTEM, "value": str(consent.pk)}],
        "status": status,
        "scope": {
            "coding": [{"system": CONSENT_SCOPE_SYSTEM, "code": "patient-privacy", "display": "Privacy Consent"}],
            "text": "Consent to talking therapy at a co-located clinic, and to how the service handles the client's data",
        },
        "category": [{"coding": [{"system": LOINC, "code": "59284-0", "display": "Patient Consent"}]}],
        "patient": patient,
        "dateTime": _instant(consent.given_at),
        "performer": [patient],
        "organization": [organisation_reference(referral.provider)],
        "policy": [{"uri": template.policy_uri}],
        "provision": {
            "type": "permit",
            "period": period,
            "actor": [
                {
                    "role": {"coding": [{"system": PARTICIPATION_TYPE_SYSTEM, "code": "CST", "display": "custodian"}]},
                    "reference": organisation_reference(referral.provider),
                }
            ],
            "purpose": [_scope_coding(scope) for scope in scopes],
            "code": [{"coding": [_scope_coding(scope)], "text": ConsentScope(scope).label} for scope in scopes],
            "provision": [_deny_benefits_agencies(selectors.benefits_agencies_concerned(referral))],
        },
    }
