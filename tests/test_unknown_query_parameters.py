"""Query parameters are part of the contract: every operation refuses one it does not declare, naming those it does.

The operations are read from the schema itself, so a new operation is covered the day it appears. Each request
is made by a user the operation is for, on real ids, with whatever the operation requires: the unknown
parameter is the only thing wrong with it. The answer is a 400 before anything is read, written or logged.
"""

import json

import pytest
from django.db.models import Max
from drf_spectacular.generators import SchemaGenerator

from consent.access.models import AccessEvent
from consent.reports.periods import parse_period
from consent.reports.snapshots import freeze_report
from tests.conftest import api_client, give_consent, intake_check
from tests.factories import ACKNOWLEDGED

UNKNOWN = "not_a_parameter"
USER_BY_TAG = {"therapist": "therapist", "clinical lead": "lead", "DPO": "dpo", "reviewer": "reviewer", "account": "therapist"}
METHODS = ("get", "post", "put", "patch", "delete")


def _operations() -> list[tuple[str, str, dict]]:
    schema = SchemaGenerator().get_schema(request=None, public=True)
    return [(method.upper(), path, operation) for path, item in schema["paths"].items()
            for method, operation in item.items() if method in METHODS]  # fmt: skip


OPERATIONS = _operations()


@pytest.fixture
def scene(world):
    """Real ids for every path parameter: a referral with a consent and a check, an alert, a snapshot."""
    consent = give_consent(world.therapist, world.referral, world.template)
    check = intake_check(world.therapist, world.referral)
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")  # raises an alert on Kent's chain
    alert = AccessEvent.objects.filter(chain=world.kent).exclude(alert_reasons="").latest("seq")
    snapshot = freeze_report(pilot=world.pilot, period=parse_period("2026"), author=world.lead)
    return {
        "id": None, "record_id": None, "pilot_id": world.pilot.pk, "snapshot_id": snapshot.pk, "username": "therapist",
        "_consent": consent.pk, "_check": check.pk, "_alert": alert.pk,
    }  # fmt: skip


def _path(world, path: str, values: dict) -> str:
    if "/referrals/{id}" in path:
        ident = world.referral.pk
    elif "/alerts/{id}" in path:
        ident = values["_alert"]
    elif "/access-events/{id}" in path:
        ident = values["_alert"]
    elif "/sites/{id}" in path:
        ident = world.site.pk
    elif "/pilots/{id}" in path:
        ident = world.pilot.pk
    else:
        ident = world.template.pk
    record = values["_check"] if "voluntariness-checks" in path else values["_consent"]
    return path.format(**{**values, "id": ident, "record_id": record})


BODIES = {
    "/api/v1/referrals/": {"client": {"local_reference": "UNKNOWN-PARAM"}, "site": 1, "referred_on": "2026-09-14",
                           "source_of_referral": "B1", "how_heard": "gp", "pathway": "self_referral"},
    "/api/v1/pilots/{pilot_id}/compliance-reports/": {"period": "2026-Q3"},
    "/api/v1/access-events/alerts/{id}/disposition/": {"disposition": "no_concern", "note": "checked"},
    "/api/v1/referrals/{id}/withdrawals/": {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "other"},
    "/api/v1/referrals/{id}/discharge/": {"discharged_on": "2026-10-01", "reason": "completed"},
    "/api/v1/referrals/{id}/decline/": {"declined_on": "2026-10-01"},
    "/api/v1/referrals/{id}/break-glass/": {"reason": "safeguarding"},
    "/api/v1/referrals/{id}/assignments/": {"therapist": "unassigned"},
    "/api/v1/referrals/{id}/voluntariness-checks/": {"checked_at": "2026-09-14T10:10:00Z", "stage": "intake",
        "told_attendance_required": False, "sanction_mentioned": False, "feels_free_to_stop": True,
        "goals_set_by_client": True, "employment_goal_raised_by": "nobody"},
    "/api/v1/referrals/{id}/consents/": {"template": 1, "method": "verbal", "given_at": "2026-09-14T10:05:00Z",
        "scopes": ["treatment"], "acknowledgements": ACKNOWLEDGED},
    "/api/v1/auth/token/": {"username": "therapist", "password": "wrong"},
}  # fmt: skip
REQUIRED_QUERY = {"/api/v1/pilots/{pilot_id}/compliance-report/": "period=2026-Q3&"}


def test_the_schema_has_operations_to_check():
    assert len(OPERATIONS) >= 35


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=[f"{m} {p}" for m, p, _ in OPERATIONS])
def test_an_unknown_query_parameter_is_a_400_naming_the_accepted_ones(world, scene, method, path, operation):
    user = getattr(world, USER_BY_TAG[operation["tags"][0]])
    declared = sorted(p["name"] for p in operation.get("parameters", []) if p["in"] == "query")
    url = f"{_path(world, path, scene)}?{REQUIRED_QUERY.get(path, '')}{UNKNOWN}=1"
    last_event = AccessEvent.objects.aggregate(last=Max("id"))["last"]

    client = api_client(user)
    body = BODIES.get(path)
    response = client.generic(method, url, data="" if body is None else json.dumps(body),
                              content_type="application/json")  # fmt: skip

    assert response.status_code == 400, (url, response.status_code, response.content[:300])
    assert response["Content-Type"].startswith("application/json")
    errors = response.json()["errors"]
    assert list(errors) == [UNKNOWN]
    accepted = ", ".join(declared) if declared else "none"
    assert errors[UNKNOWN] == [f"Unknown query parameter; this operation accepts: {accepted}."]
    # Refused before anything was read, written or logged.
    assert AccessEvent.objects.aggregate(last=Max("id"))["last"] == last_event


def test_a_work_coach_gets_the_same_refusal_on_client_data_with_or_without_an_unknown_parameter(world):
    """The firewall answers a benefits-agency account first: its attempt is logged and answered as ever."""
    coach = api_client(world.work_coach)
    for path in (f"/api/v1/referrals/{world.referral.pk}/", "/api/v1/referrals/", "/api/v1/access-events/",
                 f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?period=2026"):  # fmt: skip
        denied = AccessEvent.objects.filter(actor_id=world.work_coach.pk, outcome="denied")
        before = denied.count()
        plain = coach.get(path)
        logged_plain = denied.count() - before
        joiner = "&" if "?" in path else "?"
        probed = coach.get(f"{path}{joiner}{UNKNOWN}=1")
        assert (probed.status_code, probed.json()) == (plain.status_code, plain.json()), path
        assert probed.status_code in (403, 404)
        assert denied.count() - before == 2 * logged_plain >= 2, path


def test_a_work_coach_is_told_about_an_unknown_parameter_where_it_may_read(world):
    response = api_client(world.work_coach).get(f"/api/v1/sites/?{UNKNOWN}=1")
    assert response.status_code == 400
    assert response.json()["errors"][UNKNOWN] == ["Unknown query parameter; this operation accepts: page, page_size."]


@pytest.mark.parametrize("path", ["/api/v1/access-events/alerts/", "/api/v1/access-events/verify/"])
@pytest.mark.parametrize("fmt", ["csv", "fhir", "json"])
def test_only_the_log_itself_offers_formats(world, path, fmt):
    # The alert queue and the verification answer JSON only: a format there is an unknown parameter, never
    # a JSON body under a text/csv header.
    response = api_client(world.dpo).get(f"{path}?format={fmt}")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json")
    assert "format" in response.json()["errors"]


@pytest.mark.parametrize("fmt", ["xml", "api", "CSV"])
def test_a_format_the_log_does_not_offer_is_a_400_naming_those_it_does(world, fmt):
    response = api_client(world.dpo).get(f"/api/v1/access-events/?format={fmt}")
    assert response.status_code == 400
    assert response.json()["errors"]["format"] == [f"{fmt!r} is not offered here; choose one of: csv, fhir, json."]


@pytest.mark.parametrize("fmt", ["csv", "fhir"])
def test_the_formats_the_log_offers_answer_in_their_own_media_type(world, fmt):
    response = api_client(world.dpo).get(f"/api/v1/access-events/?format={fmt}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith({"csv": "text/csv", "fhir": "application/fhir+json"}[fmt])


@pytest.mark.parametrize("query", ["referred_before=", "site=", "status=", "page_size=", "page="])
def test_an_empty_value_where_a_value_is_typed_is_a_400_not_everything(world, query):
    # django-filter reads an empty value as "not given": the list would quietly return every row.
    response = api_client(world.therapist).get(f"/api/v1/referrals/?{query}")
    assert response.status_code == 400
    name = query.rstrip("=")
    assert response.json()["errors"][name] == [f"{name} is empty: give a value or leave the parameter out."]


def test_an_empty_search_is_no_search(world):
    response = api_client(world.therapist).get("/api/v1/referrals/?search=")
    assert response.status_code == 200
    assert response.json()["count"] == 1
