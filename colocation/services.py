"""Writes about organisations, teams and staff (the rules every save checks live beside the models)."""

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from colocation.models import ClinicalTeam, Organisation, OrganisationKind, Role, StaffProfile, User, check_staff_combination


@transaction.atomic
def create_staff_member(
    *,
    username: str,
    password: str,
    organisation: Organisation,
    role: str,
    team: ClinicalTeam | None = None,
    is_superuser: bool = False,
    email: str = "",
) -> User:
    """Create a user with their staff profile; leads join their team's group."""
    check_staff_combination(organisation=organisation, role=role, is_staff=is_superuser, is_superuser=is_superuser, team=team)
    user = User(username=username, email=email, is_staff=is_superuser, is_superuser=is_superuser)
    user.set_password(password)
    user.save()
    StaffProfile.objects.create(user=user, organisation=organisation, role=role, team=team)
    if team is not None and role == Role.CLINICAL_LEAD:
        user.groups.add(team.group)
    return user


@transaction.atomic
def create_clinical_team(*, organisation: Organisation, name: str) -> ClinicalTeam:
    """Create a provider's clinical team and the group its referrals are shared with."""
    if organisation.kind != OrganisationKind.THERAPY_PROVIDER:
        raise ValidationError({"organisation": "Only a therapy provider has clinical teams."})
    group = Group.objects.create(name=f"clinical-team:{organisation.pk}:{name}")
    return ClinicalTeam.objects.create(organisation=organisation, name=name, group=group)
