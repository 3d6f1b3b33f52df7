"""Every client-data endpoint, as an allowed and a refused user: the access events each request writes.

Each event names the actor, their organisation's kind, the action, the outcome and the client (by pseudonym);
a list of N referrals writes N events in one bulk insert.
"""

from dataclasses import dataclass, field

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import Resolver404, resolve

from consent.access.models import AccessEvent
from tests.conftest import PASSWORD, api_client, give_consent, intake_check, make_referral
from tests.factories import ACKNOWLEDGED

CONSENT = {"template": None, "method": "verbal", "given_at": "2026-09-14T10:05:00Z", "scopes": ["treatment"],
           "acknowledgements": dict(ACKNOWLEDGED)}  # fmt: skip
CHECK = {"checked_at": "2026-09-15T11:00:00Z", "stage": "during_therapy", "told_attendance_required": False,
         "sanction_mentioned": False, "feels_free_to_stop": True, "goals_set_by_client": True,
         "employment_goal_raised_by": "nobody"}  # fmt: skip
REFUSED_BY_DEFAULT = ("unassigned_therapist", "work_coach")


@dataclass
class Case:
    """One endpoint: who is allowed, what they do, and who is refused."""

    method: str
    suffix: str  # after /api/v1/referrals/{id}/
    action: str
    allowed: str = "therapist"
    status: int = 200
    body: dict | None = None
    refused: tuple = REFUSED_BY_DEFAULT
    refused_action: str = ""  # when a refusal is logged under another action than the allowed one
    state: str = "active"  # "active": consented and checked; "fresh": awaiting consent; "withdrawn"
    marks: list = field(default_factory=list)

    @property
    def id(self):
        return f"{self.method} {self.suffix or '{id}/'}"


CASES = [
    Case("GET", "", "read"),
    Case("GET", "consents/{consent}/", "read"),
    Case("GET", "voluntariness-checks/{check}/", "read"),
    Case("GET", "withdrawals/{withdrawal}/", "read", state="withdrawn"),
    Case("POST", "consents/", "record", status=201, body=CONSENT, state="fresh"),
    Case("POST", "voluntariness-checks/", "record", status=201, body=CHECK),
    Case("POST", "withdrawals/", "withdrawal", status=201, body={"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "felt_pressured"}),
    Case("POST", "discharge/", "record", status=201, body={"discharged_on": "2026-10-02", "reason": "completed"}),
    Case("POST", "decline/", "record", status=201, body={"declined_on": "2026-09-15"}, state="fresh"),
    Case("GET", "consent-receipt/", "export"),
    Case("GET", "fhir-consent/", "export"),
    Case("GET", "access-history/", "read"),
    Case("GET", "subject-access-export/", "export", allowed="dpo", refused=("therapist", "work_coach")),
    Case("POST", "break-glass/", "break_glass", allowed="other_team_lead", body={"reason": "Safeguarding concern at reception"}),
    Case("POST", "assignments/", "grant", allowed="lead", status=201, body={"therapist": "unassigned"},
         refused=("therapist", "work_coach")),
    Case("DELETE", "assignments/unassigned/", "revoke", allowed="lead", status=204, refused=("therapist", "work_coach"),
         state="assigned"),
]  # fmt: skip


def _scene(world, state):
    """The target referral in the state the case needs, with the ids its path names."""
    if state == "fresh":
        return world.referral, {}
    if state == "assigned":
        response = api_client(world.lead).post(
            f"/api/v1/referrals/{world.referral.pk}/assignments/", {"therapist": "unassigned"}, format="json"
        )
        assert response.status_code == 201
        return world.referral, {}
    consent = give_consent(world.therapist, world.referral, world.template)
    check = intake_check(world.therapist, world.referral)
    ids = {"consent": consent.pk, "check": check.pk}
    if state == "withdrawn":
        response = api_client(world.therapist).post(
            f"/api/v1/referrals/{world.referral.pk}/withdrawals/", {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "other"}
        )
        ids["withdrawal"] = response.json()["withdrawals"][0]["id"]
    return world.referral, ids


def _events_of(call):
    """The events the call writes, as (actor, organisation kind, action, outcome, pseudonym, chain) rows."""
    last = AccessEvent.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    response = call()
    rows = AccessEvent.objects.filter(pk__gt=last).order_by("pk")
    return response, [
        (e.actor_name, e.actor_organisation_kind, e.action, e.outcome, e.client_pseudonym, e.chain_id) for e in rows
    ]


def _kind(world, role):
    return "benefits_agency" if role == "work_coach" else "therapy_provider"


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=c.marks) for c in CASES])
def test_each_referral_endpoint_logs_the_allowed_and_the_refused(world, case):
    referral, ids = _scene(world, case.state)
    path = f"/api/v1/referrals/{referral.pk}/" + case.suffix.format(**ids)
    try:
        resolve(path)
    except Resolver404:
        pytest.fail(f"no endpoint answers {case.id}")
    body = dict(case.body or {})
    if "template" in body:
        body["template"] = world.template.pk
    pseudonym, chain = referral.client_id, world.kent.pk

    for role in case.refused:
        user = world.user(role)
        response, events = _events_of(lambda user=user: getattr(api_client(user), case.method.lower())(path, body, format="json"))
        assert response.status_code == 404, (role, response.content)
        expected = (user.get_username(), _kind(world, role), case.refused_action or case.action, "denied", pseudonym, chain)
        assert [e for e in events if e[5] == chain] == [expected], role
        # The actor's own other chains (a work coach's: every provider co-located with the agency) get the same
        # trace as for an id that does not exist: nothing about the client.
        others = [e for e in events if e[5] != chain]
        assert all(e[4] is None and e[3] == "denied" for e in others), role
        assert {e[5] for e in others} == ({world.medway.pk} if role == "work_coach" else set()), role

    user = world.user(case.allowed)
    response, events = _events_of(lambda: getattr(api_client(user), case.method.lower())(path, body, format="json"))
    # A removal may answer 200 with what remains or 204 with nothing.
    assert response.status_code == case.status or {response.status_code, case.status} == {200, 204}, response.content
    assert events == [(user.get_username(), "therapy_provider", case.action, "allowed", pseudonym, chain)]


def test_a_list_of_n_referrals_writes_n_events_in_one_insert(world):
    mine = [world.referral, *(make_referral(world.therapist, world.site) for _ in range(11))]
    client = api_client(world.therapist)

    with CaptureQueriesContext(connection) as captured:
        response, events = _events_of(lambda: client.get("/api/v1/referrals/?page_size=50"))

    assert response.status_code == 200
    shown = {row["id"] for row in response.json()["results"]}
    assert shown == {str(r.pk) for r in mine}
    assert len(events) == len(mine) == 12
    assert {e[:4] for e in events} == {("therapist", "therapy_provider", "list", "allowed")}
    assert sorted(str(e[4]) for e in events) == sorted(str(r.client_id) for r in mine)
    # On PostgreSQL the head's UPDATE rides in the same statement, as a WITH query before the INSERT.
    inserts = [q["sql"] for q in captured.captured_queries if 'INSERT INTO "access_accessevent"' in q["sql"]]
    assert len(inserts) == 1


def test_a_page_writes_events_only_for_the_rows_it_shows(world):
    for _ in range(6):
        make_referral(world.therapist, world.site)

    response, events = _events_of(lambda: api_client(world.therapist).get("/api/v1/referrals/?page_size=5"))

    assert len(response.json()["results"]) == 5
    assert len(events) == 5


def test_a_work_coachs_list_is_refused_whole_and_logged_on_each_colocated_providers_chain(world):
    response, events = _events_of(lambda: api_client(world.work_coach).get("/api/v1/referrals/"))

    assert response.status_code == 403
    assert "count" not in response.json()
    # The agency hosts a Kent site and a Medway site: both providers' DPOs see the attempt.
    assert sorted(events, key=lambda e: e[5]) == [
        ("workcoach", "benefits_agency", "list", "denied", None, world.kent.pk),
        ("workcoach", "benefits_agency", "list", "denied", None, world.medway.pk),
    ]


def test_a_therapist_without_referrals_sees_an_empty_list_and_nothing_is_logged(world):
    response, events = _events_of(lambda: api_client(world.unassigned_therapist).get("/api/v1/referrals/"))

    assert response.status_code == 200 and response.json()["count"] == 0
    assert events == []


def test_creating_a_referral_logs_a_create_for_the_new_client(world):
    body = {"client": {"local_reference": "KTT-000777", "year_of_birth": 1980}, "site": world.site.pk,
            "referred_on": "2026-09-20", "source_of_referral": "B1", "how_heard": "leaflet_or_poster", "pathway": "self_referral"}  # fmt: skip

    response, events = _events_of(lambda: api_client(world.therapist).post("/api/v1/referrals/", body, format="json"))

    assert response.status_code == 201
    new_client = response.json()["client"]["id"]
    assert [(e[:4], str(e[4]), e[5]) for e in events] == [
        (("therapist", "therapy_provider", "create", "allowed"), new_client, world.kent.pk)
    ]


def test_a_work_coachs_attempt_to_create_is_logged_as_a_denied_create(world):
    body = {"client": {"local_reference": "JCP-1"}, "site": world.site.pk, "referred_on": "2026-09-20",
            "source_of_referral": "M5", "how_heard": "work_coach_suggested", "pathway": "mandated_assessment"}  # fmt: skip

    response, events = _events_of(lambda: api_client(world.work_coach).post("/api/v1/referrals/", body, format="json"))

    assert response.status_code == 403
    assert {e[:5] for e in events} == {("workcoach", "benefits_agency", "create", "denied", None)}


def test_a_work_coachs_attempt_to_create_is_refused_and_logged_as_denied(world):
    body = {"client": {"local_reference": "JCP-1"}, "site": world.site.pk, "referred_on": "2026-09-20",
            "source_of_referral": "M5", "how_heard": "work_coach_suggested", "pathway": "mandated_assessment"}  # fmt: skip

    response, events = _events_of(lambda: api_client(world.work_coach).post("/api/v1/referrals/", body, format="json"))

    assert response.status_code == 403
    assert events and {(e[0], e[1], e[3], e[4]) for e in events} == {("workcoach", "benefits_agency", "denied", None)}
    assert all("JCP-1" not in str(e) for e in AccessEvent.objects.values_list())


def test_sign_ins_and_failed_sign_ins_are_logged(world):
    response, events = _events_of(
        lambda: api_client().post("/api/v1/auth/token/", {"username": "therapist", "password": PASSWORD}, format="json")
    )
    assert response.status_code == 200
    assert events == [("therapist", "therapy_provider", "sign_in", "allowed", None, world.kent.pk)]

    response, events = _events_of(
        lambda: api_client().post("/api/v1/auth/token/", {"username": "therapist", "password": "wrong"}, format="json")
    )
    assert response.status_code == 400
    assert events == [("therapist", "therapy_provider", "sign_in_failed", "denied", None, world.kent.pk)]
