"""A catalogue of bad input to every write endpoint: each is a 4xx a person can act on, and nothing is written.

Every case is run against every write endpoint it applies to. "Nothing is written" is checked by counting the
rows of every clinical and colocation table (and permission grants and tokens) before and after. Access
events are left out of the count on purpose: a refused attempt is logged by design.
"""

import json
from dataclasses import dataclass
from datetime import date

import pytest
from django.apps import apps
from django.conf import settings
from knox.models import AuthToken

from consent.access.models import AccessEvent, ChainHead
from consent.models import Referral
from tests.conftest import PASSWORD, api_client, give_consent, make_referral

# Row counts of these apps must not move on a refused request; the access log is expected to.
COUNTED_APPS = ("colocation", "consent", "access", "reports", "guardian", "auth")
NOT_COUNTED = {AccessEvent, ChainHead}

SQL_TEXT = "x'; DROP TABLE consent_referral; --"
CONTROL_TEXT = "line\x00with\x07bell\x1b[31m"
LONG_TEXT = "x" * 10_000


@dataclass(frozen=True)
class Endpoint:
    name: str
    user: str  # role in the world fixture, or "anonymous"
    on_referral: bool  # path is /referrals/{id}/<name>/
    date_fields: tuple = ()  # top-level date or datetime fields of the body
    text_fields: tuple = ()  # paths (tuples of keys) of the free-text fields of the body

    def path(self, referral_id) -> str:
        if self.name == "referrals":
            return "/api/v1/referrals/"
        if self.name == "token":
            return "/api/v1/auth/token/"
        return f"/api/v1/referrals/{referral_id}/{self.name}/"


ENDPOINTS = [
    Endpoint("referrals", "therapist", False, ("referred_on",), (("client", "local_reference"), ("client", "nhs_number"))),
    Endpoint("consents", "therapist", True, ("given_at",), (("scopes", 0),)),
    Endpoint("withdrawals", "therapist", True, ("withdrawn_at",)),
    Endpoint("voluntariness-checks", "therapist", True, ("checked_at",)),
    Endpoint("discharge", "therapist", True, ("discharged_on",)),
    Endpoint("decline", "therapist", True, ("declined_on",)),
    Endpoint("break-glass", "other_team_lead", True, (), (("reason",),)),
    Endpoint("assignments", "lead", True, (), (("therapist",),)),
    Endpoint("token", "anonymous", False, (), (("username",), ("password",))),
]
BY_NAME = {e.name: e for e in ENDPOINTS}
ON_REFERRAL = [e for e in ENDPOINTS if e.on_referral]
WITH_DATES = [(e, f) for e in ENDPOINTS for f in e.date_fields]
WITH_TEXT = [(e, f) for e in ENDPOINTS for f in e.text_fields]


def valid_body(endpoint: Endpoint, world) -> dict:
    """A body the endpoint accepts for the target referral: the baseline every bad case departs from."""
    return {
        "referrals": {
            "client": {"local_reference": "KTT-NEW-1", "nhs_number": "9434765919", "year_of_birth": 1980},
            "site": world.site.pk, "referred_on": "2026-09-20", "source_of_referral": "B1",
            "how_heard": "leaflet_or_poster", "pathway": "self_referral",
        },
        "consents": {
            "template": world.template.pk, "method": "verbal", "given_at": "2026-09-21T10:00:00Z", "scopes": ["treatment"],
            "acknowledgements": dict.fromkeys(("attendance_is_optional", "no_effect_on_benefits",
                                               "service_separate_from_jobcentre", "nothing_shared_with_jobcentre",
                                               "free_to_withdraw"), True),
        },
        "withdrawals": {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "no_longer_wanted"},
        "voluntariness-checks": {
            "checked_at": "2026-09-21T10:10:00Z", "stage": "intake", "told_attendance_required": False,
            "sanction_mentioned": False, "feels_free_to_stop": True, "goals_set_by_client": True,
            "employment_goal_raised_by": "nobody",
        },
        "discharge": {"discharged_on": "2026-11-01", "reason": "completed"},
        "decline": {"declined_on": "2026-09-21"},
        "break-glass": {"reason": "Safeguarding concern raised by reception"},
        "assignments": {"therapist": "unassigned"},
        "token": {"username": "therapist", "password": PASSWORD},
    }[endpoint.name]  # fmt: skip


@pytest.fixture
def targets(world):
    """For each endpoint, a referral in a state where its valid body succeeds."""
    active = make_referral(world.therapist, world.site, referred_on=date(2026, 9, 14))
    give_consent(world.therapist, active, world.template)
    awaiting = make_referral(world.therapist, world.site, referred_on=date(2026, 9, 14))
    return {e.name: (awaiting if e.name in ("decline", "consents") else active) for e in ENDPOINTS}


def row_counts() -> dict[str, int]:
    counts = {}
    for label in COUNTED_APPS:
        for model in apps.get_app_config(label).get_models():
            if model not in NOT_COUNTED:
                counts[model._meta.label] = model.objects.count()
    counts["knox.AuthToken"] = AuthToken.objects.count()
    return counts


def post(world, endpoint: Endpoint, referral, body, content_type="application/json", path=None, client=None):
    client = client or api_client(world.user(endpoint.user))
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.generic("POST", path or endpoint.path(referral.pk), raw, content_type=content_type)


def assert_refused_and_nothing_written(
    world, endpoint, referral, body, *, status=400, content_type="application/json", path=None
):
    """Post, and check the answer is the given 4xx with a readable message and that no row was written."""
    client = api_client(world.user(endpoint.user))  # signs in (a token row) before the rows are counted
    before = row_counts()
    response = post(world, endpoint, referral, body, content_type=content_type, path=path, client=client)
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    payload = response.json()
    assert isinstance(payload.get("detail"), str) and len(payload["detail"]) > 10
    assert row_counts() == before
    return payload


def set_path(body: dict, path: tuple, value):
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return body


def ids(params):
    return [p.name if isinstance(p, Endpoint) else f"{p[0].name}.{'.'.join(map(str, p[1]))}" for p in params]


# ---- the baseline: each valid body is accepted, so each refusal below is caused by the bad input ----


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids(ENDPOINTS))
def test_it_accepts_the_valid_body_of_every_endpoint(world, targets, endpoint):
    response = post(world, endpoint, targets[endpoint.name], valid_body(endpoint, world))
    assert response.status_code in (200, 201), response.content[:500]


# ---- the body as a whole ----


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids(ENDPOINTS))
def test_it_refuses_malformed_json(world, targets, endpoint):
    payload = assert_refused_and_nothing_written(world, endpoint, targets[endpoint.name], '{"reason": "other",')
    assert "not valid JSON" in payload["detail"]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids(ENDPOINTS))
@pytest.mark.parametrize("body", ["[1, 2]", '"a string"', "42", "null"], ids=["array", "string", "number", "null"])
def test_it_refuses_json_that_is_not_an_object(world, targets, endpoint, body):
    payload = assert_refused_and_nothing_written(world, endpoint, targets[endpoint.name], body)
    messages = json.dumps(payload)
    # Names what to send: an object (or, for break-glass, the reason it needs).
    assert "JSON object" in messages or "reason" in messages


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids(ENDPOINTS))
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "application/octet-stream"])
def test_it_refuses_a_content_type_other_than_json(world, targets, endpoint, content_type):
    body = json.dumps(valid_body(endpoint, world))
    payload = assert_refused_and_nothing_written(
        world, endpoint, targets[endpoint.name], body, status=415, content_type=content_type
    )
    assert "Content-Type: application/json" in payload["detail"]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids(ENDPOINTS))
def test_it_refuses_a_body_over_the_size_limit(world, targets, endpoint):
    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == 64 * 1024
    body = {**valid_body(endpoint, world), "padding": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}
    payload = assert_refused_and_nothing_written(world, endpoint, targets[endpoint.name], body, status=413)
    assert "64 KiB" in payload["detail"]


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids(ENDPOINTS))
def test_it_refuses_unknown_fields_naming_them(world, targets, endpoint):
    body = {**valid_body(endpoint, world), "colour": "blue"}
    payload = assert_refused_and_nothing_written(world, endpoint, targets[endpoint.name], body)
    assert "accepted fields" in payload["errors"]["colour"][0]


def test_it_refuses_unknown_fields_inside_the_client_too(world, targets):
    body = valid_body(BY_NAME["referrals"], world)
    body["client"]["name"] = "Jane Doe"
    payload = assert_refused_and_nothing_written(world, BY_NAME["referrals"], targets["referrals"], body)
    assert "name" in payload["errors"]["client"]


@pytest.mark.parametrize("value", [[], "a string", 7], ids=["array", "string", "number"])
def test_it_refuses_a_nested_client_that_is_not_an_object(world, targets, value):
    body = {**valid_body(BY_NAME["referrals"], world), "client": value}
    payload = assert_refused_and_nothing_written(world, BY_NAME["referrals"], targets["referrals"], body)
    assert "client" in payload["errors"]


# ---- the path ----


@pytest.mark.parametrize("endpoint", ON_REFERRAL, ids=ids(ON_REFERRAL))
@pytest.mark.parametrize(
    "bad_id",
    ["not-a-uuid", "12345", "00000000-0000-0000-0000-00000000000g", "%27%20OR%201%3D1--", "1" * 300],
    ids=["word", "number", "bad-hex", "sql", "very-long"],
)
def test_it_answers_an_invalid_uuid_in_the_path_with_a_404(world, targets, endpoint, bad_id):
    referral = targets[endpoint.name]
    path = f"/api/v1/referrals/{bad_id}/{endpoint.name}/"
    payload = assert_refused_and_nothing_written(world, endpoint, referral, valid_body(endpoint, world), status=404, path=path)
    assert payload["detail"] == "No referral found with that id."


# ---- dates ----


@pytest.mark.parametrize(("endpoint", "field"), WITH_DATES, ids=[f"{e.name}.{f}" for e, f in WITH_DATES])
@pytest.mark.parametrize(
    "value", ["14/09/2026", "2026-02-30", "2026-13-01", "yesterday", "", 20260914, "2026-09-14T25:00:00Z"],
    ids=["british-order", "impossible-day", "month-13", "word", "empty", "number", "hour-25"],
)  # fmt: skip
def test_it_refuses_dates_in_the_wrong_format_or_impossible(world, targets, endpoint, field, value):
    body = {**valid_body(endpoint, world), field: value}
    payload = assert_refused_and_nothing_written(world, endpoint, targets[endpoint.name], body)
    # The message names the field and the format it accepts.
    assert "YYYY-MM-DD" in " ".join(payload["errors"][field])


# ---- free text ----


@pytest.mark.parametrize(("endpoint", "field"), WITH_TEXT, ids=ids(WITH_TEXT))
def test_it_refuses_strings_of_ten_thousand_characters(world, targets, endpoint, field):
    body = set_path(valid_body(endpoint, world), field, LONG_TEXT)
    payload = assert_refused_and_nothing_written(world, endpoint, targets[endpoint.name], body)
    assert field[0] in payload.get("errors", {}), payload


CHOICES = [("referrals", "pathway"), ("consents", "method"), ("withdrawals", "reason"), ("voluntariness-checks", "stage"),
           ("discharge", "reason")]  # fmt: skip


@pytest.mark.parametrize(("name", "choice"), CHOICES, ids=[f"{n}.{c}" for n, c in CHOICES])
def test_it_refuses_ten_thousand_characters_in_choice_fields_without_echoing_them(world, targets, name, choice):
    endpoint = BY_NAME[name]
    body = {**valid_body(endpoint, world), choice: LONG_TEXT}
    payload = assert_refused_and_nothing_written(world, endpoint, targets[name], body)
    message = payload["errors"][choice][0]
    assert "choose one of" in message and len(message) < 1000


@pytest.mark.parametrize(("endpoint", "field"), WITH_TEXT, ids=ids(WITH_TEXT))
def test_it_refuses_control_characters_in_free_text(world, targets, endpoint, field):
    body = set_path(valid_body(endpoint, world), field, CONTROL_TEXT)
    payload = assert_refused_and_nothing_written(world, endpoint, targets[endpoint.name], body)
    assert field[0] in payload.get("errors", {}), payload


@pytest.mark.parametrize(("endpoint", "field"), WITH_TEXT, ids=ids(WITH_TEXT))
def test_it_treats_sql_looking_text_as_plain_text(world, targets, endpoint, field):
    """SQL in a free-text field is someone's text (O'Brien), never a query: stored verbatim or refused as data."""
    referral_count = Referral.objects.count()
    body = set_path(valid_body(endpoint, world), field, SQL_TEXT)
    response = post(world, endpoint, targets[endpoint.name], body)
    assert response.status_code < 500
    # The table the text names is still there, with every row.
    assert Referral.objects.count() >= referral_count
    if response.status_code >= 400:
        assert field[0] in response.json().get("errors", {}) or "Wrong username or password" in response.json()["detail"]
        return
    if endpoint.name == "referrals" and field[1] == "local_reference":
        assert response.json()["client"]["local_reference"] == SQL_TEXT
    if endpoint.name == "break-glass":
        assert AccessEvent.objects.filter(action="break_glass", purpose=SQL_TEXT).count() == 1


def test_sql_looking_text_is_refused_where_it_cannot_be_valid(world, targets):
    # An NHS number, a username to assign and a sign-in name are references, so SQL in them is a plain 400.
    for name, field in (("referrals", ("client", "nhs_number")), ("assignments", ("therapist",)), ("token", ("username",))):
        endpoint = BY_NAME[name]
        body = set_path(valid_body(endpoint, world), field, SQL_TEXT)
        payload = assert_refused_and_nothing_written(world, endpoint, targets[name], body)
        assert field[-1] in json.dumps(payload) or "Wrong username or password" in payload["detail"]


def test_it_refuses_a_scope_asking_to_share_with_the_jobcentre(world, targets):
    body = valid_body(BY_NAME["consents"], world)
    body["scopes"] = ["treatment", "share_with_jobcentre"]
    payload = assert_refused_and_nothing_written(world, BY_NAME["consents"], targets["consents"], body)
    assert "not permitted" in payload["errors"]["scopes"][0]


# ---- numbers ----


@pytest.mark.parametrize(
    ("field", "value"),
    [("site", -1), ("site", 2**63), ("site", "3; DROP TABLE"), ("site", 1.5), ("year_of_birth", 10**20)],
)
def test_it_refuses_numbers_out_of_range_or_not_numbers(world, targets, field, value):
    body = valid_body(BY_NAME["referrals"], world)
    if field == "year_of_birth":
        body["client"][field] = value
    else:
        body[field] = value
    payload = assert_refused_and_nothing_written(world, BY_NAME["referrals"], targets["referrals"], body)
    assert field in json.dumps(payload["errors"])


# ---- pages ----


@pytest.mark.parametrize("page", ["-1", "0", "abc", str(10**30), "1e3"])
def test_it_answers_a_page_number_out_of_range_with_a_404_that_says_so(world, page):
    response = api_client(world.therapist).get(f"/api/v1/referrals/?page={page}")
    assert response.status_code == 404
    assert "page" in response.json()["detail"].lower()


@pytest.mark.parametrize("page_size", ["-1", "0", "abc", "1.5", " 5"])
def test_it_refuses_a_page_size_that_is_not_a_whole_number_from_one(world, page_size):
    # Refused, not quietly replaced by the default: the caller would believe it got the page size it asked for.
    response = api_client(world.therapist).get(f"/api/v1/referrals/?page_size={page_size}")
    assert response.status_code == 400
    assert "whole number from 1" in response.json()["errors"]["page_size"][0]


def test_it_keeps_a_huge_page_size_within_its_bound(world, django_assert_max_num_queries):
    for n in range(3):
        make_referral(world.therapist, world.site, local_reference=f"PAGE-{n}")
    with django_assert_max_num_queries(15):
        response = api_client(world.therapist).get(f"/api/v1/referrals/?page_size={10**30}")
    assert response.status_code == 200
    body = response.json()
    # A huge size is capped at 200: never all rows at once.
    assert body["count"] == len(body["results"]) == 4


def test_it_caps_a_huge_page_size_at_two_hundred(world):
    from api.pagination import Pagination

    assert Pagination.max_page_size == 200
    Referral.objects.bulk_create(
        [Referral(client=world.referral.client, provider=world.kent, site=world.site, team=world.team,
                  referred_on=date(2026, 9, 1), source_of_referral="B1", how_heard="gp", pathway="self_referral",
                  recorded_by=world.therapist) for _ in range(205)]
    )  # fmt: skip
    # Bulk rows carry no grant, so the lead's team grant is not there either: give the therapist the grants.
    from guardian.shortcuts import assign_perm

    for referral in Referral.objects.filter(referred_on=date(2026, 9, 1)):
        assign_perm("consent.view_referral", world.therapist, referral)
    response = api_client(world.therapist).get(f"/api/v1/referrals/?page_size={10**12}")
    assert response.status_code == 200
    assert len(response.json()["results"]) == 200
    assert response.json()["next"] is not None


# ---- bodies that break parsers ----


@pytest.mark.parametrize("endpoint", ENDPOINTS, ids=ids(ENDPOINTS))
def test_it_refuses_json_nested_too_deeply_for_the_decoder(world, targets, endpoint):
    # A few kilobytes of brackets exhaust json.loads' recursion limit: a 400, never a RecursionError's 500.
    payload = assert_refused_and_nothing_written(world, endpoint, targets[endpoint.name], "[" * 30_000 + "]" * 30_000)
    assert "nested too deeply" in payload["detail"]


@pytest.mark.parametrize(("endpoint", "field"), WITH_TEXT, ids=ids(WITH_TEXT))
@pytest.mark.parametrize("value", ["\ud800", "a\x00b"], ids=["lone-surrogate", "nul"])
def test_it_refuses_text_the_database_cannot_store(world, targets, endpoint, field, value):
    body = set_path(valid_body(endpoint, world), field, value)
    payload = assert_refused_and_nothing_written(world, endpoint, targets[endpoint.name], body)
    assert field[0] in payload["errors"], payload


# ---- paths of reads ----

READ_PATHS = [("therapist", ""), ("therapist", "consent-receipt/"), ("therapist", "fhir-consent/"),
              ("dpo", "access-history/"), ("dpo", "subject-access-export/")]  # fmt: skip


@pytest.mark.parametrize(("role", "suffix"), READ_PATHS, ids=[f"{r}-{s or 'detail'}" for r, s in READ_PATHS])
@pytest.mark.parametrize(
    "bad_id", ["not-a-uuid", "12345", "%00", "%27%20OR%201%3D1--", "1" * 300], ids=["word", "number", "nul", "sql", "long"]
)
def test_it_answers_an_invalid_uuid_on_every_read_with_a_json_404(world, role, suffix, bad_id):
    client = api_client(world.user(role))
    before = row_counts()
    response = client.get(f"/api/v1/referrals/{bad_id}/{suffix}")
    assert response.status_code == 404
    assert response.json()["detail"] == "No referral found with that id."
    assert row_counts() == before


@pytest.mark.parametrize("record_id", ["0", "99999", "9" * 18, "9" * 19, "-1", "abc"])
def test_it_answers_a_record_id_that_is_not_there_with_a_json_404(world, record_id):
    give_consent(world.therapist, world.referral, world.template)
    response = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/consents/{record_id}/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("application/json")
    assert response.json()["detail"]


# ---- query parameters ----

BAD_FILTERS = [
    ("referred_after", "2026-02-30", "YYYY-MM-DD"), ("referred_before", "14/09/2026", "YYYY-MM-DD"),
    ("referred_after", "yesterday", "YYYY-MM-DD"), ("referred_before", LONG_TEXT, "YYYY-MM-DD"),
    ("referred_after", "2026-09-14\x00", "YYYY-MM-DD"),
    ("site", "-1", "from 1"), ("site", "0", "from 1"), ("site", str(10**30), "that large"), ("site", "abc", "whole number"),
    ("site", "1.5", "whole number"), ("site", SQL_TEXT, "whole number"),
    ("status", "bogus", "choose one of: awaiting_consent"), ("pathway", SQL_TEXT, "choose one of: self_referral"),
    ("pathway", LONG_TEXT, "choose one of"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "value", "says"), BAD_FILTERS, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(BAD_FILTERS)])
def test_it_refuses_bad_filter_values_naming_the_filter_and_what_it_accepts(world, name, value, says):
    client = api_client(world.therapist)
    before = row_counts()
    response = client.get("/api/v1/referrals/", {name: value})
    assert response.status_code == 400, response.content[:300]
    message = " ".join(response.json()["errors"][name])
    assert says in message and len(message) < 1000
    assert row_counts() == before
