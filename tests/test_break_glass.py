"""Break-glass: a clinical lead opens a referral of their own organisation outside their assignment, with a reason.

Only a clinical lead of the referral's provider may; everyone else gets the same logged 404 as for a
referral that does not exist, whatever the body says. The response is marked, the access is logged with
its reason and always raises an alert, and it grants nothing lasting.
"""

import uuid

import pytest

from colocation.models import Role
from colocation.services import create_staff_member
from consent.access.models import AccessEvent
from tests.conftest import PASSWORD, api_client

REASON = "Safeguarding concern raised by reception; the assigned therapist is away."


def _break_glass(user, referral_id, body):
    return api_client(user).post(f"/api/v1/referrals/{referral_id}/break-glass/", body, format="json")


def test_it_refuses_break_glass_without_a_reason_and_says_what_is_needed(world):
    for body in ({}, {"reason": ""}, {"reason": "   "}, {"reason": None}):
        response = _break_glass(world.other_team_lead, world.referral.pk, body)
        assert response.status_code == 400, body
        errors = response.json()["errors"]
        assert "reason" in errors, body
        assert str(world.referral.pk) not in response.content.decode()
        assert "KTT-000123" not in response.content.decode()
    assert not AccessEvent.objects.filter(action="break_glass", outcome="allowed").exists()


def test_a_lead_of_the_same_organisation_gets_the_referral_marked_as_break_glass(world):
    response = _break_glass(world.other_team_lead, world.referral.pk, {"reason": REASON})
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == str(world.referral.pk)
    assert body["access"] == "break_glass"
    assert body["client"]["local_reference"] == "KTT-000123"


def test_break_glass_is_logged_with_its_reason_and_raises_an_alert(world):
    _break_glass(world.other_team_lead, world.referral.pk, {"reason": REASON})
    event = AccessEvent.objects.filter(action="break_glass").get()
    assert event.outcome == "allowed"
    assert event.actor_id == world.other_team_lead.pk
    assert event.chain_id == world.kent.pk
    assert event.referral_id == world.referral.pk
    assert event.purpose == REASON
    assert {"break_glass", "outside_assignment"} <= set(event.alert_reasons.split(","))


def test_break_glass_grants_nothing_lasting(world):
    assert _break_glass(world.other_team_lead, world.referral.pk, {"reason": REASON}).status_code == 200
    client = api_client(world.other_team_lead)
    assert client.get(f"/api/v1/referrals/{world.referral.pk}/").status_code == 404
    assert world.referral.pk not in {row["id"] for row in client.get("/api/v1/referrals/").json()["results"]}


def test_an_ordinary_read_is_marked_as_assigned(world):
    response = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    assert response.json()["access"] == "assigned"


@pytest.mark.parametrize(
    "role", ["therapist", "unassigned_therapist", "other_provider_therapist", "dpo", "other_provider_dpo", "reviewer",
             "work_coach", "admin"],
)  # fmt: skip
def test_nobody_but_a_clinical_lead_of_the_provider_may_break_glass(world, role):
    user = world.user(role)
    for body in ({"reason": REASON}, {}):
        # With or without a reason: the firewall answers first, so nobody learns the referral exists.
        response = _break_glass(user, world.referral.pk, body)
        assert response.status_code == 404, (role, body, response.content)
        assert str(world.referral.pk) not in response.content.decode()
    denied = AccessEvent.objects.filter(action="break_glass", actor_id=user.pk)
    assert denied.exists() and all(event.outcome == "denied" for event in denied)
    assert not AccessEvent.objects.filter(actor_id=user.pk, action="break_glass", outcome="allowed").exists()


def test_a_lead_of_another_provider_may_not_break_glass_into_ours(world):
    medway_lead = create_staff_member(username="medway-lead", password=PASSWORD, organisation=world.medway,
                                      role=Role.CLINICAL_LEAD)  # fmt: skip
    assert _break_glass(medway_lead, world.referral.pk, {"reason": REASON}).status_code == 404
    assert _break_glass(medway_lead, world.medway_referral.pk, {"reason": REASON}).status_code == 200


def test_a_work_coachs_attempt_is_logged_and_alerts_the_providers_dpo(world):
    _break_glass(world.work_coach, world.referral.pk, {"reason": REASON})
    event = AccessEvent.objects.filter(action="break_glass", actor_id=world.work_coach.pk, chain=world.kent).get()
    assert (event.outcome, event.chain_id, event.status) == ("denied", world.kent.pk, 404)
    assert "benefits_agency" in event.alert_reasons


def test_break_glass_on_an_id_that_does_not_exist_is_a_404(world):
    assert _break_glass(world.other_team_lead, uuid.uuid4(), {"reason": REASON}).status_code == 404
    assert _break_glass(world.other_team_lead, "not-a-uuid", {"reason": REASON}).status_code == 404
