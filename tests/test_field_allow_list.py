"""OWASP API3 (broken object property level authorisation): each role sees only the fields it may, and a client
may not set the fields the service sets.

Responses are checked against an allow-list of keys, so a field added to a serializer fails here until
someone decides who may see it. The NHS number reaches only the assigned team (and the provider's DPO in a
subject-access export, which exists to hand the client everything held about them); a clinical lead opening
a referral by break-glass sees the record and the local reference but not the NHS number (api/referrals.py
says why).
"""

import json

import pytest

from tests.conftest import ROLES, api_client, give_consent
from tests.test_bad_input import BY_NAME, post, row_counts, targets, valid_body  # noqa: F401 - targets is a fixture

NHS_NUMBER, LOCAL_REFERENCE = "9434765919", "KTT-000123"

LIST_ROW = {"id", "client", "site", "referred_on", "source_of_referral", "how_heard", "pathway", "status", "voluntariness",
            "created_at", "updated_at"}  # fmt: skip
# scope_withdrawals: the uses the client has taken back while staying in therapy (issue 16).
DETAIL = LIST_ROW | {"consents", "withdrawals", "scope_withdrawals", "voluntariness_checks", "discharge", "decline", "access"}
CLIENT = {
    "assigned": {"id", "local_reference", "nhs_number", "year_of_birth"},
    "break_glass": {"id", "local_reference", "year_of_birth"},
}
SITE = {"id", "name"}
VOLUNTARINESS = {"status", "reasons"}
CONSENT = {"id", "template", "given_at", "method", "scopes", "acknowledgements", "supersedes", "recorded_at"}
TEMPLATE = {"id", "code", "version", "language", "body_sha256"}
CHECK = {"id", "checked_at", "stage", "told_attendance_required", "sanction_mentioned", "feels_free_to_stop",
         "goals_set_by_client", "employment_goal_raised_by", "supersedes", "recorded_at"}  # fmt: skip


def assert_referral_keys(body: dict, keys: set, access: str):
    assert set(body) == keys
    assert set(body["client"]) == CLIENT[access]
    assert set(body["site"]) == SITE and set(body["voluntariness"]) == VOLUNTARINESS


@pytest.fixture
def consented(world):
    give_consent(world.therapist, world.referral, world.template)
    from tests.conftest import intake_check

    intake_check(world.therapist, world.referral)
    return world


@pytest.mark.parametrize("role", ["therapist", "lead"])
def test_the_assigned_team_sees_the_allowed_fields_and_the_nhs_number(consented, role):
    client = api_client(consented.user(role))
    listed = client.get("/api/v1/referrals/").json()["results"]
    row = next(r for r in listed if r["id"] == str(consented.referral.pk))
    assert_referral_keys(row, LIST_ROW, "assigned")
    assert row["client"]["nhs_number"] == NHS_NUMBER
    detail = client.get(f"/api/v1/referrals/{consented.referral.pk}/").json()
    assert_referral_keys(detail, DETAIL, "assigned")
    assert detail["access"] == "assigned"
    assert set(detail["consents"][0]) == CONSENT and set(detail["consents"][0]["template"]) == TEMPLATE
    assert set(detail["voluntariness_checks"][0]) == CHECK
    # Who recorded what is staff data, not the client's: it is not in the referral's answers.
    assert "recorded_by" not in json.dumps(detail)


def test_a_lead_opening_by_break_glass_sees_the_record_but_not_the_nhs_number(consented):
    response = api_client(consented.other_team_lead).post(
        f"/api/v1/referrals/{consented.referral.pk}/break-glass/", {"reason": "Safeguarding concern raised at reception"}
    )
    assert response.status_code == 200
    body = response.json()
    assert_referral_keys(body, DETAIL, "break_glass")
    assert body["access"] == "break_glass"
    assert body["client"]["local_reference"] == LOCAL_REFERENCE
    assert NHS_NUMBER not in response.content.decode()


def readable_paths(world) -> list[str]:
    referral = f"/api/v1/referrals/{world.referral.pk}/"
    return [
        "/api/v1/referrals/", referral, f"{referral}consent-receipt/", f"{referral}fhir-consent/", f"{referral}access-history/",
        f"{referral}subject-access-export/", "/api/v1/access-events/", "/api/v1/access-events/alerts/", "/api/v1/me/",
        "/api/v1/sites/", "/api/v1/pilots/", f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?period=2026-Q3",
    ]  # fmt: skip


# Where each identifier may appear, as (role, path suffix); everywhere else it must not.
NHS_NUMBER_ALLOWED = {(role, path) for role in ("therapist", "lead") for path in ("/referrals/", "{id}/")} | {
    ("dpo", "subject-access-export/")
}
LOCAL_REFERENCE_ALLOWED = NHS_NUMBER_ALLOWED


def _kind(world, path: str) -> str:
    referral = f"/api/v1/referrals/{world.referral.pk}/"
    if path == referral:
        return "{id}/"
    if path.startswith(referral):
        return path.removeprefix(referral)
    return path.removeprefix("/api/v1")


@pytest.mark.parametrize("role", [r for r in ROLES if r != "anonymous"])
def test_identifiers_appear_only_where_the_allow_list_says(consented, role):
    client = api_client(consented.user(role))
    for path in readable_paths(consented):
        response = client.get(path)
        assert response.status_code < 500, (path, response.status_code)
        text = response.content.decode()
        kind = _kind(consented, path)
        assert (NHS_NUMBER in text) == ((role, kind) in NHS_NUMBER_ALLOWED), (role, path, response.status_code)
        assert (LOCAL_REFERENCE in text) == ((role, kind) in LOCAL_REFERENCE_ALLOWED), (role, path, response.status_code)


# ---- fields a client may not set ----

WRITES = ["referrals", "consents", "withdrawals", "voluntariness-checks", "discharge", "decline"]
SERVER_SET = {"status": "active", "voluntariness": {"status": "voluntary", "reasons": []},
              "id": "00000000-0000-0000-0000-000000000001", "created_at": "2026-09-14T10:00:00Z",
              "updated_at": "2026-09-14T10:00:00Z", "recorded_at": "2026-09-14T10:00:00Z", "recorded_by": 1, "provider": 1}  # fmt: skip


@pytest.mark.parametrize("name", WRITES)
@pytest.mark.parametrize("field", list(SERVER_SET))
def test_a_field_the_service_sets_is_refused_by_name(world, targets, name, field):  # noqa: F811 - the imported fixture
    endpoint = BY_NAME[name]
    client = api_client(world.user(endpoint.user))  # its token row is written before the count
    before = row_counts()
    response = post(world, endpoint, targets[name], {**valid_body(endpoint, world), field: SERVER_SET[field]}, client=client)
    assert response.status_code == 400, response.content[:300]
    assert "set by the service" in response.json()["errors"][field][0]
    assert row_counts() == before


@pytest.mark.parametrize("field", ["id", "provider", "created_at", "identifiers_erased_at"])
def test_a_field_the_service_sets_on_the_client_is_refused_too(world, targets, field):  # noqa: F811
    endpoint = BY_NAME["referrals"]
    body = valid_body(endpoint, world)
    body["client"][field] = SERVER_SET.get(field, "2026-09-14T10:00:00Z")
    client = api_client(world.user(endpoint.user))
    before = row_counts()
    response = post(world, endpoint, targets["referrals"], body, client=client)
    assert response.status_code == 400
    assert "set by the service" in response.json()["errors"]["client"][field][0]
    assert row_counts() == before
