"""A clinical lead assigns and unassigns therapists; nobody else can, and nobody can assign a work coach.

Each grant and revoke is an access event. A lead who may not change the referral (another team's lead,
before break-glass) is answered as everyone else is: a logged 404.
"""

import pytest
from django.urls import Resolver404, resolve

from colocation.models import Role
from colocation.services import create_staff_member
from consent.access import firewall
from consent.access.log import AccessContext
from consent.access.models import AccessEvent, ReferralUserObjectPermission
from tests.conftest import PASSWORD, api_client


def _assign(user, referral, username):
    return api_client(user).post(f"/api/v1/referrals/{referral.pk}/assignments/", {"therapist": username}, format="json")


def _unassign_path(referral, username) -> str:
    return f"/api/v1/referrals/{referral.pk}/assignments/{username}/"


@pytest.fixture
def unassign_endpoint(world):
    try:
        resolve(_unassign_path(world.referral, "therapist"))
    except Resolver404:
        pytest.fail("no endpoint answers DELETE /api/v1/referrals/{id}/assignments/{username}/")


def _sees(user, referral) -> bool:
    return api_client(user).get(f"/api/v1/referrals/{referral.pk}/").status_code == 200


def test_a_lead_assigns_a_therapist_of_the_team_who_then_sees_the_referral(world):
    assert not _sees(world.unassigned_therapist, world.referral)
    response = _assign(world.lead, world.referral, "unassigned")
    assert response.status_code == 201
    assert response.json() == {"assigned": ["therapist", "unassigned"]}
    assert _sees(world.unassigned_therapist, world.referral)
    listed = api_client(world.unassigned_therapist).get("/api/v1/referrals/").json()
    assert [row["id"] for row in listed["results"]] == [str(world.referral.pk)] and listed["count"] == 1


def test_an_assignment_is_logged_as_a_grant(world):
    _assign(world.lead, world.referral, "unassigned")
    grant = AccessEvent.objects.filter(action="grant").get()
    assert (grant.outcome, grant.actor_id, grant.chain_id, grant.referral_id) == (
        "allowed", world.lead.pk, world.kent.pk, world.referral.pk,
    )  # fmt: skip
    assert "unassigned" in grant.purpose


@pytest.mark.parametrize(
    "role", ["therapist", "unassigned_therapist", "other_team_lead", "other_provider_therapist", "dpo", "other_provider_dpo",
             "reviewer", "work_coach", "admin"],
)  # fmt: skip
def test_nobody_but_a_lead_who_may_change_the_referral_can_assign(world, role):
    user = world.user(role)
    response = _assign(user, world.referral, "unassigned")
    assert response.status_code == 404, response.content
    assert not ReferralUserObjectPermission.objects.filter(user=world.unassigned_therapist).exists()
    assert not AccessEvent.objects.filter(action="grant", outcome="allowed").exists()
    assert AccessEvent.objects.filter(actor_id=user.pk, outcome="denied", referral_id=world.referral.pk).exists()


def test_an_anonymous_caller_is_asked_to_sign_in(world):
    assert _assign(None, world.referral, "unassigned").status_code == 401


@pytest.mark.parametrize(
    ("username", "why"),
    [
        ("workcoach", "benefits agency"),
        ("medway-therapist", "referral's provider"),
        ("dpo", "referral's provider"),
        ("reviewer", "referral's provider"),
        ("nobody-by-that-name", ""),
    ],
)
def test_a_lead_cannot_assign_anyone_who_is_not_a_clinician_of_the_provider(world, username, why):
    response = _assign(world.lead, world.referral, username)
    assert response.status_code == 400
    messages = response.json()["errors"]["therapist"]
    assert why in " ".join(messages)
    assert set(
        ReferralUserObjectPermission.objects.filter(content_object=world.referral).values_list("user__username", flat=True)
    ) == {"therapist"}
    assert not AccessEvent.objects.filter(action="grant", outcome="allowed").exists()


def test_an_assignment_without_a_therapist_is_a_400_naming_the_field(world):
    response = api_client(world.lead).post(f"/api/v1/referrals/{world.referral.pk}/assignments/", {}, format="json")
    assert response.status_code == 400
    assert "therapist" in response.json()["errors"]


def test_an_inactive_account_cannot_be_assigned(world):
    leaver = create_staff_member(username="leaver", password=PASSWORD, organisation=world.kent, role=Role.THERAPIST)
    leaver.is_active = False
    leaver.save()
    assert _assign(world.lead, world.referral, "leaver").status_code == 400


# ---- unassigning -------------------------------------------------------------------------------------------


def test_unassigning_revokes_access_and_is_logged_as_a_revoke(world):
    context = AccessContext.for_command(world.lead, "test")
    firewall.assign_therapist(context, world.referral.pk, world.unassigned_therapist)
    assert _sees(world.unassigned_therapist, world.referral)
    firewall.unassign_therapist(context, world.referral.pk, world.unassigned_therapist)
    assert not _sees(world.unassigned_therapist, world.referral)
    revoke = AccessEvent.objects.filter(action="revoke").get()
    assert (revoke.outcome, revoke.actor_id, revoke.referral_id) == ("allowed", world.lead.pk, world.referral.pk)


def test_unassigning_someone_not_assigned_says_so(world):
    with pytest.raises(firewall.ValidationError) as refused:
        firewall.unassign_therapist(AccessContext.for_command(world.lead, "test"), world.referral.pk, world.unassigned_therapist)
    assert "not assigned" in str(refused.value)


def test_a_lead_unassigns_through_the_api(world, unassign_endpoint):
    _assign(world.lead, world.referral, "unassigned")
    response = api_client(world.lead).delete(_unassign_path(world.referral, "unassigned"))
    assert response.status_code in (200, 204)
    assert not _sees(world.unassigned_therapist, world.referral)
    assert AccessEvent.objects.filter(action="revoke", actor_id=world.lead.pk).count() == 1


@pytest.mark.parametrize(
    "role", ["therapist", "unassigned_therapist", "other_team_lead", "other_provider_therapist", "dpo", "work_coach", "admin"]
)
def test_nobody_but_the_lead_can_unassign_through_the_api(world, unassign_endpoint, role):
    response = api_client(world.user(role)).delete(_unassign_path(world.referral, "therapist"))
    assert response.status_code == 404
    assert _sees(world.therapist, world.referral)
    assert not AccessEvent.objects.filter(action="revoke", outcome="allowed").exists()


def test_unassigning_through_the_api_someone_not_assigned_is_a_400(world, unassign_endpoint):
    response = api_client(world.lead).delete(_unassign_path(world.referral, "unassigned"))
    assert response.status_code == 400
    assert "therapist" in response.json()["errors"]
