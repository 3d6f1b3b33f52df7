"""Writes and rules about organisations, sites and staff."""

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from colocation.models import ClinicalTeam, Organisation, OrganisationKind, Role, StaffProfile, User

# Roles that provider organisations hold; a benefits agency may hold only work_coach.
PROVIDER_ROLES = {Role.THERAPIST, Role.CLINICAL_LEAD, Role.DPO}


def check_staff_combination(
    *, organisation: Organisation, role: str, is_staff: bool, is_superuser: bool, team: ClinicalTeam | None = None
) -> None:
    """Refuse a combination of organisation, role and flags that the co-location conditions forbid."""
    errors = {}
    if organisation.kind == OrganisationKind.BENEFITS_AGENCY:
        if role != Role.WORK_COACH:
            errors["role"] = f"An account of a benefits agency ({organisation}) can only have the work_coach role, not {role}."
        if is_staff or is_superuser:
            errors["organisation"] = f"An account of a benefits agency ({organisation}) can never be staff or superuser."
    # The benefits-agency message comes first and is kept: it names the rule that matters most.
    if role == Role.WORK_COACH and organisation.kind != OrganisationKind.BENEFITS_AGENCY:
        errors["role"] = f"A work_coach must belong to a benefits agency; {organisation} is a {organisation.kind}."
    if role == Role.REVIEWER and organisation.kind != OrganisationKind.PROFESSIONAL_BODY:
        errors.setdefault("role", f"A reviewer must belong to a professional body; {organisation} is a {organisation.kind}.")
    if role in PROVIDER_ROLES and organisation.kind != OrganisationKind.THERAPY_PROVIDER:
        errors.setdefault("role", f"A {role} must belong to a therapy provider; {organisation} is a {organisation.kind}.")
    if team is not None and team.organisation_id != organisation.pk:
        errors["team"] = f"The team {team} belongs to another organisation than {organisation}."
    if errors:
        raise ValidationError(errors)


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
