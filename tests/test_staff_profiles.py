"""Staff-profile rules hold on every save through the ORM, not only in forms or services."""

import pytest
from django.core.exceptions import ValidationError

from colocation.models import ClinicalTeam, Role, StaffProfile, User


def _bare_user(username: str, **flags) -> User:
    return User.objects.create(username=username, **flags)


@pytest.mark.parametrize("role", [Role.THERAPIST, Role.CLINICAL_LEAD, Role.DPO, Role.REVIEWER, Role.ADMIN])
def test_a_benefits_agency_account_can_only_be_a_work_coach(world, role):
    user = _bare_user(f"agency-{role}")
    with pytest.raises(ValidationError) as refused:
        StaffProfile.objects.create(user=user, organisation=world.agency, role=role)
    assert "can only have the work_coach role" in str(refused.value.message_dict["role"])
    assert not StaffProfile.objects.filter(user=user).exists()


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_a_benefits_agency_account_can_never_be_staff_or_superuser(world, flag):
    # Set on the user after the profile exists, the way someone in a shell might do it.
    setattr(world.work_coach, flag, True)
    with pytest.raises(ValidationError) as refused:
        world.work_coach.save()
    assert "can never be staff or superuser" in str(refused.value)
    world.work_coach.refresh_from_db()
    assert not world.work_coach.is_staff and not world.work_coach.is_superuser


def test_a_staff_flag_set_before_the_profile_is_refused_when_the_profile_is_saved(world):
    user = _bare_user("flagged-coach", is_staff=True)
    with pytest.raises(ValidationError) as refused:
        StaffProfile.objects.create(user=user, organisation=world.agency, role=Role.WORK_COACH)
    assert "can never be staff or superuser" in str(refused.value.message_dict["organisation"])


@pytest.mark.parametrize("organisation", ["kent", "bacp"])
def test_a_work_coach_must_belong_to_a_benefits_agency(world, organisation):
    user = _bare_user(f"coach-at-{organisation}")
    with pytest.raises(ValidationError) as refused:
        StaffProfile.objects.create(user=user, organisation=getattr(world, organisation), role=Role.WORK_COACH)
    assert "A work_coach must belong to a benefits agency" in str(refused.value.message_dict["role"])


@pytest.mark.parametrize("organisation", ["kent", "agency"])
def test_a_reviewer_must_belong_to_a_professional_body(world, organisation):
    user = _bare_user(f"reviewer-at-{organisation}")
    with pytest.raises(ValidationError) as refused:
        StaffProfile.objects.create(user=user, organisation=getattr(world, organisation), role=Role.REVIEWER)
    message = str(refused.value.message_dict["role"])
    assert "reviewer must belong to a professional body" in message or "work_coach role" in message


def test_changing_an_existing_profile_to_a_forbidden_role_is_refused(world):
    profile = world.work_coach.staff_profile
    profile.role = Role.THERAPIST
    with pytest.raises(ValidationError):
        profile.save()
    profile.refresh_from_db()
    assert profile.role == Role.WORK_COACH


def test_a_profile_cannot_join_a_team_of_another_organisation(world):
    team = ClinicalTeam.objects.get(pk=world.team.pk)
    user = _bare_user("medway-in-kent-team")
    with pytest.raises(ValidationError) as refused:
        StaffProfile.objects.create(user=user, organisation=world.medway, role=Role.THERAPIST, team=team)
    assert "belongs to another organisation" in str(refused.value.message_dict["team"])


def test_the_allowed_combinations_save(world):
    for username, organisation, role in [
        ("ok-coach", world.agency, Role.WORK_COACH),
        ("ok-reviewer", world.bacp, Role.REVIEWER),
        ("ok-therapist", world.kent, Role.THERAPIST),
        ("ok-dpo", world.medway, Role.DPO),
    ]:
        StaffProfile.objects.create(user=_bare_user(username), organisation=organisation, role=role)
    assert StaffProfile.objects.filter(user__username__startswith="ok-").count() == 4
