"""Every referral endpoint as the therapist who holds the referral, as another provider's therapist, as a
benefits-agency account (work coach), and with bad input.

Another provider's therapist and the work coach get the answer a referral that does not exist gets (404)
on every detail endpoint, whatever the body, and nothing is written; the work coach is refused lists and
creation as a whole (403, no count). Each refusal is logged as a denied access event.
"""

import uuid
from dataclasses import dataclass

import pytest

from consent.access.log import WITHHELD
from consent.access.models import AccessEvent
from consent.models import Client, ConsentRecord, Decline, Discharge, Referral, VoluntarinessCheck, Withdrawal
from tests.conftest import api_client, give_consent, make_referral
from tests.factories import ACKNOWLEDGED

LIST = "/api/v1/referrals/"
WRITTEN = (Client, Referral, ConsentRecord, Withdrawal, VoluntarinessCheck, Decline, Discharge)


def rows() -> dict:
    counts = {model.__name__: model.objects.count() for model in WRITTEN}
    counts["statuses"] = sorted(Referral.objects.values_list("pk", "status"))
    return counts


@dataclass(frozen=True)
class Endpoint:
    name: str
    method: str
    suffix: str
    target: str  # "awaiting" or "active": the state in which the valid body succeeds
    ok: int

    def path(self, referral_id) -> str:
        return f"/api/v1/referrals/{referral_id}/{self.suffix}"


DETAIL = [
    Endpoint("retrieve", "get", "", "awaiting", 200),
    Endpoint("consents", "post", "consents/", "awaiting", 201),
    Endpoint("withdrawals", "post", "withdrawals/", "active", 201),
    Endpoint("voluntariness-checks", "post", "voluntariness-checks/", "active", 201),
    Endpoint("discharge", "post", "discharge/", "active", 201),
    Endpoint("decline", "post", "decline/", "awaiting", 201),
    Endpoint("fhir-consent", "get", "fhir-consent/", "active", 200),
    Endpoint("consent-receipt", "get", "consent-receipt/", "active", 200),
]
IDS = [e.name for e in DETAIL]
WRITES = [e for e in DETAIL if e.method == "post"]


def valid_body(endpoint: Endpoint, world) -> dict | None:
    return {
        "consents": {"template": world.template.pk, "method": "verbal", "given_at": "2026-09-14T10:05:00Z",
                     "scopes": ["treatment"], "acknowledgements": dict(ACKNOWLEDGED)},
        "withdrawals": {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": "no_longer_wanted"},
        "voluntariness-checks": {"checked_at": "2026-09-14T10:10:00Z", "stage": "intake", "told_attendance_required": False,
                                 "sanction_mentioned": False, "feels_free_to_stop": True, "goals_set_by_client": True,
                                 "employment_goal_raised_by": "nobody"},
        "discharge": {"discharged_on": "2026-11-01", "reason": "completed"},
        "decline": {"declined_on": "2026-09-14"},
    }.get(endpoint.name)  # fmt: skip


# A bad body per write endpoint: (changes, field the 400 must name, words of its message).
BAD_BODY = {
    "consents": ({"method": "shouted"}, "method", "verbal"),
    "withdrawals": ({"reason": "bored"}, "reason", "felt_pressured"),
    "voluntariness-checks": ({"employment_goal_raised_by": "dwp"}, "employment_goal_raised_by", "benefits_agency"),
    "discharge": ({"discharged_on": "next week"}, "discharged_on", "YYYY-MM-DD"),
    "decline": ({"declined_on": None}, "declined_on", "may not be null"),
}


def referral_body(world, site=None, reference="KTT-ROLE-1") -> dict:
    return {"client": {"local_reference": reference}, "site": (site or world.site).pk, "referred_on": "2026-09-14",
            "source_of_referral": "B1", "how_heard": "leaflet_or_poster", "pathway": "self_referral"}  # fmt: skip


@pytest.fixture
def targets(world) -> dict:
    active = make_referral(world.therapist, world.site, local_reference="KTT-ACTIVE")
    give_consent(world.therapist, active, world.template)
    return {"awaiting": world.referral, "active": active}


def call(user, endpoint: Endpoint, referral_id, body=None):
    client = api_client(user)
    if endpoint.method == "get":
        return client.get(endpoint.path(referral_id))
    return client.post(endpoint.path(referral_id), body, format="json")


def denied_events(user) -> int:
    """Denied events, less the traces a refused detail leaves on the actor's other chains (its id withheld, the
    same as for a made-up id: tests/test_refusal_traces.py): one per refusal on each chain it concerns."""
    return AccessEvent.objects.filter(actor_id=user.pk, outcome="denied").exclude(object_id=WITHHELD).count()


# ---- the therapist who holds the referral ------------------------------------------------------------------


def test_the_therapist_lists_their_referrals(world, targets):
    response = api_client(world.therapist).get(LIST)
    assert response.status_code == 200
    ids = {row["id"] for row in response.json()["results"]}
    assert ids == {str(targets["awaiting"].pk), str(targets["active"].pk)}
    assert response.json()["count"] == 2


def test_the_therapist_creates_a_referral(world):
    before = rows()
    response = api_client(world.therapist).post(LIST, referral_body(world), format="json")
    assert response.status_code == 201
    assert rows()["Referral"] == before["Referral"] + 1


@pytest.mark.parametrize("endpoint", DETAIL, ids=IDS)
def test_the_therapist_reaches_every_detail_endpoint(world, targets, endpoint):
    referral = targets[endpoint.target]
    response = call(world.therapist, endpoint, referral.pk, valid_body(endpoint, world))
    assert response.status_code == endpoint.ok, response.content[:400]
    payload = response.json()
    if endpoint.name == "fhir-consent":
        assert payload["resourceType"] == "Consent"
    elif endpoint.name == "consent-receipt":
        assert payload["receipt"]["piiPrincipalId"] == str(referral.client_id)
    else:
        assert payload["id"] == str(referral.pk)
        assert payload["client"]["local_reference"] == referral.client.local_reference


def test_the_clinical_lead_of_the_team_reaches_them_too(world, targets):
    assert api_client(world.lead).get(LIST).json()["count"] == 2
    for endpoint in DETAIL:
        if endpoint.method == "get":
            assert call(world.lead, endpoint, targets[endpoint.target].pk).status_code == 200, endpoint.name


# ---- another provider's therapist ---------------------------------------------------------------------------


def test_another_providers_therapist_does_not_see_ours_in_their_list(world, targets):
    response = api_client(world.other_provider_therapist).get(LIST)
    assert response.status_code == 200
    assert [row["id"] for row in response.json()["results"]] == [str(world.medway_referral.pk)]
    assert response.json()["count"] == 1
    # Not by filtering for our site either.
    assert api_client(world.other_provider_therapist).get(LIST, {"site": world.site.pk}).json()["count"] == 0


@pytest.mark.parametrize("endpoint", DETAIL, ids=IDS)
def test_another_providers_therapist_gets_404_on_every_detail_endpoint(world, targets, endpoint):
    user = world.other_provider_therapist
    referral = targets[endpoint.target]
    before, denied = rows(), denied_events(user)
    response = call(user, endpoint, referral.pk, valid_body(endpoint, world))
    assert response.status_code == 404
    assert response.json() == {"detail": "No referral found with that id."}
    assert rows() == before
    assert denied_events(user) == denied + 1


def test_another_providers_therapist_cannot_record_at_our_site(world):
    before = rows()
    response = api_client(world.other_provider_therapist).post(LIST, referral_body(world), format="json")
    assert response.status_code == 400
    assert "another provider" in response.json()["errors"]["site"][0]
    assert rows() == before
    # At their own site they can.
    own = api_client(world.other_provider_therapist).post(LIST, referral_body(world, site=world.medway_site), format="json")
    assert own.status_code == 201


def test_our_therapist_gets_404_on_the_other_providers_referral(world):
    for endpoint in DETAIL:
        response = call(world.therapist, endpoint, world.medway_referral.pk, valid_body(endpoint, world))
        assert response.status_code == 404, endpoint.name


# ---- the benefits agency (work coach) ----------------------------------------------------------------------


@pytest.mark.parametrize("query", [{}, {"status": "active"}, {"site": 1}, {"page_size": 1}])
def test_a_work_coach_is_refused_the_list_as_a_whole(world, targets, query):
    denied = denied_events(world.work_coach)
    response = api_client(world.work_coach).get(LIST, query)
    assert response.status_code == 403
    assert set(response.json()) == {"detail"}  # no count, no results
    # Logged on the chain of each provider co-located with the agency (Kent and Medway), for each DPO to see.
    assert denied_events(world.work_coach) == denied + 2


def test_a_work_coach_is_refused_creating_a_referral_before_any_validation(world):
    before, denied = rows(), denied_events(world.work_coach)
    for body in (referral_body(world), {"nonsense": True}):
        response = api_client(world.work_coach).post(LIST, body, format="json")
        assert response.status_code == 403
        assert set(response.json()) == {"detail"}
    assert rows() == before
    assert denied_events(world.work_coach) == denied + 2 * 2  # two attempts, each on both co-located providers' chains


@pytest.mark.parametrize("endpoint", DETAIL, ids=IDS)
def test_a_work_coach_gets_404_on_every_detail_endpoint(world, targets, endpoint):
    referral = targets[endpoint.target]
    before, denied = rows(), denied_events(world.work_coach)
    response = call(world.work_coach, endpoint, referral.pk, valid_body(endpoint, world))
    assert response.status_code == 404
    assert response.json() == {"detail": "No referral found with that id."}
    assert rows() == before
    assert denied_events(world.work_coach) == denied + 1
    # The same answer as for a referral that does not exist.
    assert call(world.work_coach, endpoint, uuid.uuid4(), valid_body(endpoint, world)).json() == response.json()


def test_a_work_coachs_attempts_are_alerts_for_the_dpo(world, targets):
    call(world.work_coach, DETAIL[0], targets["awaiting"].pk)
    event = AccessEvent.objects.filter(actor_id=world.work_coach.pk).latest("seq")
    assert event.outcome == "denied"
    assert event.alert_reasons


# ---- bad input ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", WRITES, ids=[e.name for e in WRITES])
def test_a_bad_body_is_a_400_naming_the_field_and_writes_nothing(world, targets, endpoint):
    changes, field, words = BAD_BODY[endpoint.name]
    body = {**valid_body(endpoint, world), **changes}
    before = rows()
    response = call(world.therapist, endpoint, targets[endpoint.target].pk, body)
    assert response.status_code == 400
    assert words in " ".join(response.json()["errors"][field])
    assert rows() == before


@pytest.mark.parametrize("endpoint", WRITES, ids=[e.name for e in WRITES])
def test_an_empty_body_lists_every_required_field(world, targets, endpoint):
    response = call(world.therapist, endpoint, targets[endpoint.target].pk, {})
    assert response.status_code == 400
    errors = response.json()["errors"]
    required = [name for name, value in valid_body(endpoint, world).items() if name not in ("scopes", "acknowledgements")]
    for name in required:
        assert name in errors, (name, errors)
        assert "is required: give" in errors[name][0]


@pytest.mark.parametrize("endpoint", WRITES, ids=[e.name for e in WRITES])
def test_a_bad_body_from_someone_who_may_not_see_the_referral_is_still_a_404(world, targets, endpoint):
    """Nobody learns from validation messages about a referral they cannot reach."""
    for user in (world.other_provider_therapist, world.work_coach):
        response = call(user, endpoint, targets[endpoint.target].pk, {"nonsense": True})
        assert response.status_code == 404, (user, response.content)


@pytest.mark.parametrize("endpoint", DETAIL, ids=IDS)
@pytest.mark.parametrize("bad_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "1", "%27%20OR%201=1"])
def test_a_bad_or_unknown_id_is_a_404(world, targets, endpoint, bad_id):
    before = rows()
    response = call(world.therapist, endpoint, bad_id, valid_body(endpoint, world))
    assert response.status_code == 404
    assert rows() == before


@pytest.mark.parametrize(
    "query, field",
    [({"status": "pending"}, "status"), ({"pathway": "forced"}, "pathway"), ({"referred_after": "yesterday"}, "referred_after"),
     ({"site": "canterbury"}, "site")],
)  # fmt: skip
def test_a_bad_list_filter_is_a_400_naming_it(world, query, field):
    response = api_client(world.therapist).get(LIST, query)
    assert response.status_code == 400
    assert field in response.json()["errors"]


def test_a_body_that_is_not_json_is_a_400_saying_what_to_send(world):
    response = api_client(world.therapist).generic("POST", LIST, "{not json", content_type="application/json")
    assert response.status_code == 400
    assert "JSON" in response.json()["detail"]


def test_signed_out_callers_are_refused(world, targets):
    assert api_client().get(LIST).status_code in (401, 403)
    for endpoint in DETAIL:
        assert call(None, endpoint, targets[endpoint.target].pk, valid_body(endpoint, world)).status_code in (401, 403)
