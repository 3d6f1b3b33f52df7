"""Consent receipts: the latest consent in the fields of the Kantara Consent Receipt v1.1, signed with Ed25519.

The client (or anyone they show it to) can check that the receipt is what this service issued and that
not one field has changed since.

What is signed
    The `receipt` object, without the signature, encoded canonically: JSON with keys sorted at every
    level, no whitespace (separators "," and ":"), non-ASCII characters written as UTF-8 (not \\u
    escapes), the whole encoded as UTF-8 bytes. In Python:
    ``json.dumps(receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")``.
    The receipt holds only strings, integers, booleans, lists and objects (no floats), so every JSON
    library encodes it the same way.

The document returned by GET /api/v1/referrals/{id}/consent-receipt/
    ``{"receipt": {...}, "signature": {"alg": "Ed25519", "value": <base64 signature>,
    "public_key": <PEM of the service's public key>, "key_id": <SHA-256 of the public key, hex>,
    "canonicalisation": CANONICALISATION}}``. The receipt's own `publicKey` field holds the same PEM.

How to verify
    1. With the service's own command (checks against the service's configured key):
       ``python manage.py verify_consent_receipt receipt.json`` prints "verified" and exits 0, or names
       the problem and exits 1. Give ``--public-key service-public.pem`` to check against a public key
       published by the service instead (e.g. on another machine).
    2. Anywhere else, with OpenSSL 3: take the public key the service publishes (never trust only the
       one inside the document: a forger would put their own there), then
       ``python -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.stdout.buffer.write(json.dumps(d["receipt"],
       sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())' receipt.json > receipt.canonical``,
       ``python -c 'import json,base64,sys; d=json.load(open(sys.argv[1])); sys.stdout.buffer.write(base64.b64decode(d["signature"]["value"]))'
       receipt.json > receipt.sig`` and
       ``openssl pkeyutl -verify -pubin -inkey service-public.pem -rawin -in receipt.canonical -sigfile receipt.sig``
       which prints "Signature Verified Successfully".
    3. In code: ``consent.receipts.verify_receipt(document)`` returns True or False.

The signing key
    settings.CONSENT_RECEIPT_SIGNING_KEY: an Ed25519 private key in PEM (PKCS#8), e.g.
    ``openssl genpkey -algorithm ed25519``. Required in production. Elsewhere, if it is unset, a key is
    generated once for development and kept in settings.CONSENT_RECEIPT_KEY_FILE (git-ignored), so
    receipts issued on a developer's machine keep verifying after a restart.
"""

import base64
import json
import uuid
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import timezone

from consent import keys, selectors, wording
from consent.models import ACKNOWLEDGEMENTS, ConsentRecord, ConsentScope, ReferralStatus

RECEIPT_VERSION = "KI-CR-v1.1.0"
ALGORITHM = "Ed25519"
CANONICALISATION = (
    "JSON of the receipt object, keys sorted at every level, separators ',' and ':' with no whitespace, "
    "non-ASCII characters unescaped, encoded as UTF-8"
)
# Receipt ids are derived from the consent record, so the same consent always gets the same receipt id.
RECEIPT_NAMESPACE = uuid.UUID("6f1f3c2e-8a0b-5c8e-9a57-3b3f4e1d2c10")
JURISDICTION = "GB"

NOTHING_DISCLOSED = (
    "Nothing about the client, including whether they attend, is disclosed to this organisation: the therapy "
    "service and the benefits agency are separate services."
)

# Per scope: the purpose as the client would say it, its category, what data it concerns, and who else
# receives data for it. Truthful about the two scopes that do send data outside the provider.
PURPOSES = {
    ConsentScope.TREATMENT: ("Psychological therapy (NHS Talking Therapies) at the clinic", "Healthcare: direct care", ["health"], None),
    ConsentScope.DATA_SET_SUBMISSION: (
        "Submitting the NHS Talking Therapies data set, as every NHS provider does", "Healthcare: statutory reporting",
        ["health", "demographic"], "NHS England (NHS Talking Therapies data set)",
    ),
    ConsentScope.CONTACT_BY_PHONE: ("Contacting the client by phone about their therapy", "Healthcare: direct care", ["contact"], None),
    ConsentScope.CONTACT_BY_SMS: ("Contacting the client by text message about their therapy", "Healthcare: direct care", ["contact"], None),
    ConsentScope.CONTACT_BY_LETTER: ("Contacting the client by letter about their therapy", "Healthcare: direct care", ["contact"], None),
    ConsentScope.SHARE_WITH_GP: ("Sharing therapy outcomes with the client's GP", "Healthcare: direct care", ["health"], "The client's GP practice"),
}  # fmt: skip


def canonical_bytes(receipt: dict) -> bytes:
    """The exact bytes that are signed: see the module docstring."""
    return json.dumps(receipt, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


# ---- the key -------------------------------------------------------------------------------------------


RECEIPT_KEY_SETTING = "CONSENT_RECEIPT_SIGNING_KEY"


def in_production() -> bool:
    return keys.in_production()


def signing_key() -> Ed25519PrivateKey:
    """The service's receipt-signing key, from settings (see the module docstring and consent.keys)."""
    return keys.configured_key(
        settings.CONSENT_RECEIPT_SIGNING_KEY or "", str(settings.CONSENT_RECEIPT_KEY_FILE), in_production(), RECEIPT_KEY_SETTING
    )


def public_key_pem(key: Ed25519PublicKey | None = None) -> str:
    """The public half of the signing key (or of `key`), as PEM: what the service publishes."""
    return keys.public_key_pem(key or signing_key().public_key())


def key_id(pem: str) -> str:
    return keys.key_id(pem)


# ---- the receipt ---------------------------------------------------------------------------------------


def _purposes(scopes: list[str]) -> list[dict]:
    purposes = []
    for scope in scopes:
        if scope not in PURPOSES:
            continue
        text, category, pii, third_party = PURPOSES[scope]
        purpose = {
            "purpose": text,
            "purposeCategory": [category],
            "consentType": "EXPLICIT",
            "piiCategory": pii,
            "primaryPurpose": scope == ConsentScope.TREATMENT,
            "termination": "When the client withdraws (free to do so at any time, with no consequence) or the episode ends",
            "thirdPartyDisclosure": third_party is not None,
            "scope": scope,
        }
        if third_party is not None:
            purpose["thirdPartyName"] = third_party
        purposes.append(purpose)
    return purposes


def _epoch(moment) -> int:
    return int(moment.timestamp())


def _status(state: selectors.ConsentState) -> dict:
    """Where the consent stands as the receipt is issued: in force, or ended, and any uses withdrawn since."""
    if state.ended is None:
        current = "in_force"
    else:
        current = "withdrawn" if state.ended.why == ReferralStatus.WITHDRAWN else "ended_by_discharge"
    status = {
        "state": current,
        "scopesInForce": state.in_force,
        "scopesWithdrawn": [{"scope": row.scope, "withdrawnAt": _epoch(row.withdrawn_at)} for row in state.withdrawn],
    }
    if state.ended is not None:
        on = state.ended.on
        status["endedOn"] = on.isoformat() if not hasattr(on, "timestamp") else timezone.localtime(on).date().isoformat()
    return status


def unsigned_receipt(consent: ConsentRecord, public_key: str) -> dict:
    """The Kantara v1.1 fields of a consent record, before signing."""
    referral = consent.referral
    provider = referral.provider
    template = consent.template
    agencies = selectors.benefits_agencies_concerned(referral)
    controller = {
        "piiController": provider.name,
        "onBehalf": False,
        "contact": f"The data protection officer, {provider.name}",
    }
    if provider.ods_code:
        controller["odsCode"] = provider.ods_code
    return {
        "version": RECEIPT_VERSION,
        "jurisdiction": JURISDICTION,
        "consentTimestamp": _epoch(consent.given_at),
        "collectionMethod": f"{consent.get_method_display()} consent recorded by the therapist at intake ({consent.method})",
        "consentReceiptID": str(uuid.uuid5(RECEIPT_NAMESPACE, f"consent-record:{consent.pk}")),
        "publicKey": public_key,
        "language": template.language,
        "piiPrincipalId": str(referral.client_id),
        "piiControllers": [controller],
        "policyUrl": template.policy_uri,
        "services": [
            {
                "service": f"NHS Talking Therapies at {referral.site.name}",
                "purposes": _purposes(consent.scopes),
            }
        ],
        "sensitive": True,
        "spiCat": ["health"],
        # Not a Kantara field: the statement the client was given, that nothing goes to the benefits agency.
        "nothingDisclosedTo": [
            {"party": agency.name, "partyKind": "benefits_agency", "statement": NOTHING_DISCLOSED} for agency in agencies
        ]
        or [
            {"party": "Any benefits agency (e.g. Jobcentre Plus)", "partyKind": "benefits_agency", "statement": NOTHING_DISCLOSED}
        ],
        "acknowledgements": {name: getattr(consent, name) for name in ACKNOWLEDGEMENTS},
        "consentRecordedAt": _epoch(consent.recorded_at),
        # Not Kantara fields: where the consent stands when the receipt is issued (a receipt of withdrawn consent
        # says so), and how the client withdraws.
        "consentStatus": _status(selectors.consent_state(referral, consent)),
        "howToWithdraw": wording.how_to_withdraw(provider.name),
    }


class ConsentRecordAltered(Exception):
    """The consent record's stored content no longer matches the digest written with it: no receipt is issued."""


SEAL_FORMAT = "consent-record-content/v1:"


def seal(digest: str) -> str:
    """The receipt key's signature over a consent record's content digest, made as the record is written."""
    return base64.b64encode(signing_key().sign(f"{SEAL_FORMAT}{digest}".encode("ascii"))).decode("ascii")


def _seal_holds(consent: ConsentRecord) -> bool:
    try:
        signature = base64.b64decode(consent.content_signature, validate=True)
        signing_key().public_key().verify(signature, f"{SEAL_FORMAT}{consent.content_sha256}".encode("ascii"))
    except (InvalidSignature, ValueError):
        return False
    return True


def _refuse_if_altered(consent: ConsentRecord) -> None:
    """A receipt vouches for what the client consented to: only for a record still as it was written, its digest
    matching its content and sealed with the receipt key when it was written."""
    digest = consent.content_sha256
    if not digest or digest != consent.content_digest() or not _seal_holds(consent):
        raise ConsentRecordAltered(
            f"Consent record {consent.pk} no longer matches what was recorded at intake, so no receipt can be issued; "
            "tell the data protection officer."
        )


def consent_receipt(consent: ConsentRecord) -> dict:
    """The signed receipt document: ``{"receipt": {...}, "signature": {...}}`` (see the module docstring).

    Raises ConsentRecordAltered if the record's stored content no longer matches its digest.
    """
    _refuse_if_altered(consent)
    key = signing_key()
    pem = public_key_pem(key.public_key())
    receipt = unsigned_receipt(consent, pem)
    signature = key.sign(canonical_bytes(receipt))
    return {
        "receipt": receipt,
        "signature": {
            "alg": ALGORITHM,
            "value": base64.b64encode(signature).decode("ascii"),
            "public_key": pem,
            "key_id": key_id(pem),
            "canonicalisation": CANONICALISATION,
        },
    }


def verify_receipt(document: dict, public_key: str | None = None) -> bool:
    """Whether the document is a receipt signed by the service, unchanged in every field.

    The key trusted is the service's own (or `public_key`, a PEM the service published), never only the
    one the document carries, which a forger would replace with theirs. The signature block must also be
    exactly what the service writes, so no part of the document can change unnoticed.
    """
    try:
        trusted_pem = public_key if public_key is not None else public_key_pem()
        trusted = serialization.load_pem_public_key(trusted_pem.encode("ascii"))
        if not isinstance(trusted, Ed25519PublicKey):
            return False
        trusted_pem = public_key_pem(trusted)
        receipt, signature = document["receipt"], document["signature"]
        expected_block = {"alg", "value", "public_key", "key_id", "canonicalisation"}
        if not isinstance(receipt, dict) or not isinstance(signature, dict) or set(signature) != expected_block:
            return False
        if set(document) != {"receipt", "signature"}:
            return False
        if (
            signature["alg"] != ALGORITHM
            or signature["canonicalisation"] != CANONICALISATION
            or signature["public_key"] != trusted_pem
            or signature["key_id"] != key_id(trusted_pem)
            or receipt.get("publicKey") != trusted_pem
        ):
            return False
        trusted.verify(base64.b64decode(signature["value"], validate=True), canonical_bytes(receipt))
        return True
    except (InvalidSignature, UnsupportedAlgorithm, KeyError, TypeError, ValueError, AttributeError):
        return False


# ---- the printable receipt ---------------------------------------------------------------------------------


STATE_WORDS = {
    "in_force": "In force",
    "withdrawn": "Withdrawn: the client withdrew from therapy",
    "ended_by_discharge": "Ended: the client was discharged",
}


def printable_receipt(consent: ConsentRecord) -> dict:
    """What the printed receipt shows the client, from the signed receipt and the template's own wording."""
    document = consent_receipt(consent)
    receipt = document["receipt"]
    status = receipt["consentStatus"]
    withdrawn = {row["scope"]: row["withdrawnAt"] for row in status["scopesWithdrawn"]}
    referral = consent.referral
    uses = [
        {
            "scope": scope,
            "words": wording.scope_wording(scope),
            "in_force": scope in status["scopesInForce"],
            "withdrawn_on": timezone.localtime(datetime.fromtimestamp(withdrawn[scope], tz=UTC)).date()
            if scope in withdrawn
            else None,
        }
        for scope in consent.scopes
    ]
    return {
        "consent": consent,
        "template": consent.template,
        "provider": referral.provider,
        "site": referral.site,
        "receipt_id": receipt["consentReceiptID"],
        "key_id": document["signature"]["key_id"],
        "state": status["state"],
        "state_words": STATE_WORDS[status["state"]],
        "ended_on": status.get("endedOn"),
        "uses": uses,
        "acknowledgements": [wording.ACKNOWLEDGEMENT_WORDING[name] for name in ACKNOWLEDGEMENTS if getattr(consent, name)],
        "nothing_disclosed_to": [party["party"] for party in receipt["nothingDisclosedTo"]],
        "what_the_job_centre_gets": wording.WHAT_THE_JOB_CENTRE_GETS,
        "how_to_withdraw": receipt["howToWithdraw"],
    }


def receipt_html(consent: ConsentRecord) -> str:
    """The receipt as a standalone printable page (the API's ?format=html)."""
    return render_to_string("consent/receipt_page.html", printable_receipt(consent))
