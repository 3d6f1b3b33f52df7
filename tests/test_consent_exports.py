"""Exports of the latest consent: an HL7 FHIR R4 Consent that validates against fhir.resources (R4B), and a
Kantara v1.1 consent receipt whose Ed25519 signature verifies and breaks if any field changes."""

import base64
import copy
import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command
from fhir.resources.R4B.consent import Consent

from colocation.models import OrganisationKind, Role
from colocation.services import create_clinical_team, create_staff_member
from consent import receipts
from consent.access.log import AccessContext
from consent.access.models import AccessEvent
from consent.models import ConsentScope
from consent.services import record_consent, record_withdrawal
from tests.conftest import PASSWORD, api_client, give_consent, make_referral
from tests.factories import ACKNOWLEDGED, OrganisationFactory, SiteFactory, at

SCOPES = ["treatment", "data_set_submission", "contact_by_phone"]


def consent(world, referral=None, scopes=SCOPES, user=None):
    referral = referral or world.referral
    return record_consent(
        context=AccessContext.for_command(user or world.therapist, "test"), referral_id=referral.pk, template=world.template,
        method="written", given_at=at(referral.referred_on), scopes=list(scopes), acknowledgements=dict(ACKNOWLEDGED),
    )  # fmt: skip


def fhir(user, referral):
    return api_client(user).get(f"/api/v1/referrals/{referral.pk}/fhir-consent/")


def receipt(user, referral):
    return api_client(user).get(f"/api/v1/referrals/{referral.pk}/consent-receipt/")


def assert_no_identifiers(document: dict, client) -> None:
    text = json.dumps(document)
    assert client.local_reference not in text
    if client.nhs_number:
        assert client.nhs_number not in text


# ---- FHIR R4 Consent ---------------------------------------------------------------------------------------


def test_the_fhir_consent_validates_against_the_r4b_consent_model(world):
    record = consent(world)
    response = fhir(world.therapist, world.referral)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/fhir+json")
    document = response.json()
    resource = Consent.model_validate(document)
    assert resource.get_resource_type() == "Consent"
    assert resource.status == "active"
    assert document["identifier"] == [{"system": "urn:co-location-consent-tracker:consent-record", "value": str(record.pk)}]


def test_the_fhir_consent_says_what_was_agreed_and_with_whom(world):
    record = consent(world)
    document = fhir(world.therapist, world.referral).json()
    # Scope patient-privacy, patient consent category.
    assert document["scope"]["coding"][0]["code"] == "patient-privacy"
    assert document["scope"]["coding"][0]["system"] == "http://terminology.hl7.org/CodeSystem/consentscope"
    assert document["category"][0]["coding"][0]["code"] == "59284-0"
    # The client by pseudonym only.
    pseudonym = {"system": "urn:co-location-consent-tracker:client-pseudonym", "value": str(world.referral.client_id)}
    assert document["patient"]["identifier"] == pseudonym
    assert document["performer"][0]["identifier"] == pseudonym
    assert_no_identifiers(document, world.referral.client)
    # The provider as organization.
    [organisation] = document["organization"]
    assert organisation["type"] == "Organization" and organisation["display"] == "Kent talking therapies"
    # The policy: template version and the hash of its text.
    [policy] = document["policy"]
    assert (
        policy["uri"]
        == f"urn:consent-template:{world.template.code}:{world.template.version}#sha256={world.template.body_sha256}"
    )
    assert record.template.body_sha256 in policy["uri"]
    # Permit for exactly the scopes given.
    provision = document["provision"]
    assert provision["type"] == "permit"
    assert [p["code"] for p in provision["purpose"]] == SCOPES
    assert [c["coding"][0]["code"] for c in provision["code"]] == SCOPES
    assert provision["period"] == {"start": "2026-09-14T09:00:00+00:00"}  # 10:00 BST
    # A nested deny naming the benefits agency as actor, for every action.
    [deny] = provision["provision"]
    assert deny["type"] == "deny"
    [actor] = deny["actor"]
    assert actor["reference"]["type"] == "Organization"
    assert actor["reference"]["display"] == "Jobcentre Plus, Canterbury"
    assert actor["reference"]["identifier"]["value"] == str(world.agency.pk)
    assert actor["role"]["coding"][0]["code"] == "IRCP"
    assert {a["coding"][0]["code"] for a in deny["action"]} == {"access", "collect", "use", "disclose", "correct"}


def test_it_identifies_organisations_by_ods_code_when_they_have_one(world):
    world.kent.ods_code = "RXY"
    world.kent.save()
    consent(world)
    document = fhir(world.therapist, world.referral).json()
    Consent.model_validate(document)
    assert document["organization"][0]["identifier"] == {"system": "https://fhir.nhs.uk/Id/ods-organization-code", "value": "RXY"}


def test_every_scope_exports_and_validates(world):
    consent(world, scopes=ConsentScope.values)
    document = fhir(world.therapist, world.referral).json()
    Consent.model_validate(document)
    assert [p["code"] for p in document["provision"]["purpose"]] == list(ConsentScope.values)


def test_the_fhir_consent_of_a_withdrawn_referral_is_inactive_with_its_period_ended(world):
    consent(world)
    record_withdrawal(context=AccessContext.for_command(world.therapist, "test"), referral_id=world.referral.pk,
                      withdrawn_at=at(date(2026, 10, 1), 9), reason="felt_pressured")  # fmt: skip
    document = fhir(world.therapist, world.referral).json()
    resource = Consent.model_validate(document)
    assert resource.status == "inactive"
    assert document["provision"]["period"]["end"] == "2026-10-01T08:00:00+00:00"


def test_the_fhir_consent_is_the_latest_consent(world):
    consent(world, scopes=["treatment"])
    latest = record_consent(
        context=AccessContext.for_command(world.therapist, "test"), referral_id=world.referral.pk, template=world.template,
        method="digital", given_at=at(date(2026, 9, 20)), scopes=["treatment", "share_with_gp"], acknowledgements=dict(ACKNOWLEDGED),
    )  # fmt: skip
    document = fhir(world.therapist, world.referral).json()
    assert document["identifier"][0]["value"] == str(latest.pk)
    assert [p["code"] for p in document["provision"]["purpose"]] == ["treatment", "share_with_gp"]


def test_the_deny_still_names_any_benefits_agency_where_no_site_is_hosted_by_one(world):
    provider = OrganisationFactory(name="Swale therapies", kind=OrganisationKind.THERAPY_PROVIDER)
    surgery = OrganisationFactory(name="Swale GP surgery", kind=OrganisationKind.OTHER)
    site = SiteFactory(name="Swale surgery clinic", host_organisation=surgery, provider=provider, venue_kind="gp_surgery")
    team = create_clinical_team(organisation=provider, name="Swale")
    therapist = create_staff_member(username="swale", password=PASSWORD, organisation=provider, role=Role.THERAPIST, team=team)
    referral = make_referral(therapist, site)
    give_consent(therapist, referral, world.template)
    document = fhir(therapist, referral).json()
    Consent.model_validate(document)
    [actor] = document["provision"]["provision"][0]["actor"]
    assert actor["reference"]["identifier"]["value"] == "benefits_agency"
    assert "Jobcentre Plus" in actor["reference"]["display"]
    assert receipts.verify_receipt(receipt(therapist, referral).json())


def test_it_answers_404_with_a_way_forward_when_no_consent_is_recorded(world):
    for response in (fhir(world.therapist, world.referral), receipt(world.therapist, world.referral)):
        assert response.status_code == 404
        assert "POST /api/v1/referrals/{id}/consents/" in response.json()["detail"]


def test_the_dpo_may_export_fhir_but_not_the_clients_receipt(world):
    consent(world)
    assert Consent.model_validate(fhir(world.dpo, world.referral).json()).status == "active"
    assert receipt(world.dpo, world.referral).status_code == 404


@pytest.mark.parametrize("role", ["other_provider_therapist", "other_provider_dpo", "work_coach", "reviewer", "admin"])
def test_nobody_outside_the_team_and_dpo_gets_either_export(world, role):
    consent(world)
    user = getattr(world, role)
    for response in (fhir(user, world.referral), receipt(user, world.referral)):
        assert response.status_code == 404
        assert "pseudonym" not in response.content.decode()
        assert str(world.referral.client_id) not in response.content.decode()


def test_each_export_is_logged_as_an_export(world):
    consent(world)
    before = AccessEvent.objects.filter(action="export", chain=world.kent).count()
    fhir(world.therapist, world.referral)
    receipt(world.therapist, world.referral)
    receipt(world.work_coach, world.referral)
    events = AccessEvent.objects.filter(action="export", chain=world.kent).order_by("seq")[before:]
    assert [(e.outcome, e.referral_id) for e in events] == [
        ("allowed", world.referral.pk), ("allowed", world.referral.pk), ("denied", world.referral.pk),
    ]  # fmt: skip


# ---- the signed consent receipt ----------------------------------------------------------------------------


@pytest.fixture
def document(world) -> dict:
    consent(world, scopes=["treatment", "data_set_submission"])
    response = receipt(world.therapist, world.referral)
    assert response.status_code == 200
    return response.json()


def test_the_receipt_carries_the_kantara_fields_and_verifies(world, document):
    record = world.referral.consents.get()
    body = document["receipt"]
    assert body["version"] == "KI-CR-v1.1.0"
    assert body["jurisdiction"] == "GB"
    assert body["consentTimestamp"] == int(record.given_at.timestamp())
    assert "Written" in body["collectionMethod"]
    assert body["language"] == "en"
    assert body["piiPrincipalId"] == str(world.referral.client_id)
    assert body["piiControllers"][0]["piiController"] == "Kent talking therapies"
    assert body["policyUrl"] == world.template.policy_uri
    assert body["sensitive"] is True and body["spiCat"] == ["health"]
    treatment, data_set = body["services"][0]["purposes"]
    assert treatment["scope"] == "treatment" and treatment["consentType"] == "EXPLICIT" and treatment["primaryPurpose"] is True
    assert treatment["thirdPartyDisclosure"] is False and "thirdPartyName" not in treatment
    # The one disclosure outside the provider is named truthfully, and it is never to a benefits agency.
    assert data_set["thirdPartyDisclosure"] is True and data_set["thirdPartyName"].startswith("NHS England")
    assert body["nothingDisclosedTo"] == [
        {"party": "Jobcentre Plus, Canterbury", "partyKind": "benefits_agency", "statement": receipts.NOTHING_DISCLOSED}
    ]
    assert body["acknowledgements"] == ACKNOWLEDGED
    assert_no_identifiers(document, world.referral.client)
    assert document["signature"]["alg"] == "Ed25519"
    assert document["signature"]["public_key"] == body["publicKey"] == receipts.public_key_pem()
    assert receipts.verify_receipt(document)
    assert receipts.verify_receipt(document, public_key=receipts.public_key_pem())


def test_a_receipt_for_treatment_only_discloses_to_no_third_party(world):
    consent(world, scopes=["treatment", "contact_by_sms"])
    body = receipt(world.therapist, world.referral).json()["receipt"]
    assert [p["thirdPartyDisclosure"] for p in body["services"][0]["purposes"]] == [False, False]


def test_the_same_consent_always_gets_the_same_receipt_id(world, document):
    again = receipt(world.therapist, world.referral).json()
    assert again["receipt"]["consentReceiptID"] == document["receipt"]["consentReceiptID"]
    assert again == document


# Every field of the document, nested ones too; test_the_tamper_list_is_every_field keeps this list complete.
PURPOSE = ("receipt", "services", 0, "purposes")
FIELDS = [
    ("receipt", "version"), ("receipt", "jurisdiction"), ("receipt", "consentTimestamp"), ("receipt", "collectionMethod"),
    ("receipt", "consentReceiptID"), ("receipt", "publicKey"), ("receipt", "language"), ("receipt", "piiPrincipalId"),
    ("receipt", "piiControllers", 0, "piiController"), ("receipt", "piiControllers", 0, "onBehalf"),
    ("receipt", "piiControllers", 0, "contact"), ("receipt", "policyUrl"), ("receipt", "services", 0, "service"),
    *[PURPOSE + (0, key) for key in ("purpose", "consentType", "primaryPurpose", "termination", "thirdPartyDisclosure", "scope")],
    PURPOSE + (0, "purposeCategory", 0), PURPOSE + (0, "piiCategory", 0),
    *[PURPOSE + (1, key) for key in ("purpose", "consentType", "primaryPurpose", "termination", "thirdPartyDisclosure", "scope",
                                     "thirdPartyName")],
    PURPOSE + (1, "purposeCategory", 0), PURPOSE + (1, "piiCategory", 0), PURPOSE + (1, "piiCategory", 1),
    ("receipt", "sensitive"), ("receipt", "spiCat", 0),
    ("receipt", "nothingDisclosedTo", 0, "party"), ("receipt", "nothingDisclosedTo", 0, "partyKind"),
    ("receipt", "nothingDisclosedTo", 0, "statement"),
    *[("receipt", "acknowledgements", name) for name in ACKNOWLEDGED],
    ("receipt", "consentRecordedAt"),
    # Where the consent stands when the receipt is issued (issue 16: a receipt of withdrawn consent says so).
    ("receipt", "consentStatus", "state"), ("receipt", "consentStatus", "scopesInForce", 0),
    ("receipt", "consentStatus", "scopesInForce", 1), ("receipt", "howToWithdraw"),
    ("signature", "alg"), ("signature", "value"), ("signature", "public_key"), ("signature", "key_id"),
    ("signature", "canonicalisation"),
]  # fmt: skip


def _paths(node, path=()):
    """Every path in the document, to containers and to leaves."""
    yield path
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, path + (key,))


def _leaves(document):
    return [path for path in _paths(document) if not isinstance(_get(document, path), dict | list)]


def _get(document, path):
    for key in path:
        document = document[key]
    return document


def _changed(value):
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        if value.endswith("\n"):  # a PEM: change a character inside it
            return value[:40] + ("A" if value[40] != "A" else "B") + value[41:]
        if _looks_base64(value):
            raw = bytearray(base64.b64decode(value))
            raw[0] ^= 1
            return base64.b64encode(bytes(raw)).decode()
        return value + "x"
    raise AssertionError(value)


def _looks_base64(value: str) -> bool:
    return value.endswith("==")


def test_the_tamper_list_is_every_field(document):
    assert sorted(map(str, _leaves(document))) == sorted(map(str, FIELDS))


@pytest.mark.parametrize("path", FIELDS, ids=[".".join(map(str, p)) for p in FIELDS])
def test_changing_any_field_breaks_the_signature(document, path):
    assert receipts.verify_receipt(document)
    tampered = copy.deepcopy(document)
    parent, key = _get(tampered, path[:-1]), path[-1]
    parent[key] = _changed(parent[key])
    assert tampered != document
    assert not receipts.verify_receipt(tampered)


@pytest.mark.parametrize("path", FIELDS, ids=[".".join(map(str, p)) for p in FIELDS])
def test_removing_any_field_breaks_the_signature(document, path):
    tampered = copy.deepcopy(document)
    parent, key = _get(tampered, path[:-1]), path[-1]
    del parent[key]
    assert not receipts.verify_receipt(tampered)


def test_adding_a_field_or_an_item_anywhere_breaks_the_signature(document):
    containers = [path for path in _paths(document) if isinstance(_get(document, path), dict | list)]
    assert len(containers) > 10
    for path in containers:
        tampered = copy.deepcopy(document)
        target = _get(tampered, path)
        if isinstance(target, dict):
            target["sharedWith"] = "Jobcentre Plus"
        else:
            target.append(copy.deepcopy(target[0]) if target else "x")
        assert not receipts.verify_receipt(tampered), path


def test_reordering_keys_or_reformatting_does_not_matter_to_the_signature(document):
    """What is signed is the canonical form, so a pretty-printed copy the client keeps still verifies."""
    reformatted = json.loads(json.dumps(document, indent=4, sort_keys=False))
    reordered = {"signature": reformatted["signature"], "receipt": dict(reversed(list(reformatted["receipt"].items())))}
    assert receipts.verify_receipt(reordered)


def test_a_receipt_signed_by_another_key_does_not_verify_even_carrying_that_key(document):
    forger = Ed25519PrivateKey.generate()
    pem = receipts.public_key_pem(forger.public_key())
    forged = copy.deepcopy(document)
    forged["receipt"]["publicKey"] = pem
    forged["signature"].update(public_key=pem, key_id=receipts.key_id(pem))
    forged["signature"]["value"] = base64.b64encode(forger.sign(receipts.canonical_bytes(forged["receipt"]))).decode()
    assert not receipts.verify_receipt(forged)
    # Against the forger's key it would verify: the trusted key is what decides.
    assert receipts.verify_receipt(forged, public_key=pem)


@pytest.mark.parametrize("bad", [None, [], "text", {}, {"receipt": {}}, {"receipt": {}, "signature": {}}])
def test_anything_that_is_not_a_receipt_does_not_verify(bad):
    assert receipts.verify_receipt(bad) is False


# ---- the verify command ------------------------------------------------------------------------------------


def _write(tmp_path: Path, content, name="receipt.json") -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content, indent=2), encoding="utf-8")
    return str(path)


def test_the_command_verifies_a_receipt_file(document, tmp_path, capsys):
    call_command("verify_consent_receipt", _write(tmp_path, document))
    assert capsys.readouterr().out.strip() == "verified"


def test_the_command_verifies_against_a_published_public_key(document, tmp_path, capsys):
    key = _write(tmp_path, receipts.public_key_pem(), "service-public.pem")
    call_command("verify_consent_receipt", _write(tmp_path, document), public_key=key)
    assert capsys.readouterr().out.strip() == "verified"
    other = _write(tmp_path, receipts.public_key_pem(Ed25519PrivateKey.generate().public_key()), "other.pem")
    with pytest.raises(CommandError, match="not verified"):
        call_command("verify_consent_receipt", _write(tmp_path, document), public_key=other)


@pytest.mark.parametrize(
    "content, why",
    [
        ("tampered", "changed after signing"),
        ("{not json", "not a JSON document"),
        ('{"receipt": 1}', "not a consent receipt"),
        ("missing", "no such file"),
    ],
)
def test_the_command_says_why_a_file_does_not_verify(document, tmp_path, content, why):
    if content == "tampered":
        tampered = copy.deepcopy(document)
        tampered["receipt"]["acknowledgements"]["free_to_withdraw"] = False
        path = _write(tmp_path, tampered)
    elif content == "missing":
        path = str(tmp_path / "nowhere.json")
    else:
        path = _write(tmp_path, content)
    with pytest.raises(CommandError, match=why):
        call_command("verify_consent_receipt", path)


def test_the_command_exits_0_or_1_from_a_shell(document, tmp_path):
    """Run as a person would, in its own process: the exit status is what scripts rely on."""
    good = _write(tmp_path, document)
    tampered = copy.deepcopy(document)
    tampered["receipt"]["nothingDisclosedTo"] = []
    bad = _write(tmp_path, tampered, "tampered.json")
    command = [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), "verify_consent_receipt"]
    env = {"DJANGO_SETTINGS_MODULE": "config.settings.test", "PATH": "/usr/bin:/bin"}
    ok = subprocess.run([*command, good], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert (ok.returncode, ok.stdout.strip()) == (0, "verified"), ok.stderr
    refused = subprocess.run([*command, bad], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert refused.returncode == 1
    assert "not verified" in refused.stderr


def test_the_fhir_consent_of_a_discharged_referral_ends_on_the_discharge_day(world):
    from consent.services import discharge_referral

    consent(world)
    discharge_referral(context=AccessContext.for_command(world.therapist, "test"), referral_id=world.referral.pk,
                       discharged_on=date(2026, 11, 1), reason="completed")  # fmt: skip
    document = fhir(world.therapist, world.referral).json()
    assert Consent.model_validate(document).status == "inactive"
    assert document["provision"]["period"]["end"] == "2026-11-01"
    assert receipts.verify_receipt(receipt(world.therapist, world.referral).json())


def test_the_command_says_when_the_public_key_file_is_not_a_key(document, tmp_path):
    key = _write(tmp_path, "not a key", "service-public.pem")
    with pytest.raises(CommandError, match="is not an Ed25519 public key"):
        call_command("verify_consent_receipt", _write(tmp_path, document), public_key=key)
