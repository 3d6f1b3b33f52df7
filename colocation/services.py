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


def _is_agency_account(user: User) -> bool:
    """Whether the account is (or ever was) of a benefits agency, read from the database, not a stale instance."""
    if user.pk is None:
        return bool(user.benefits_agency_account)
    return (
        User.objects.filter(pk=user.pk, benefits_agency_account=True).exists()
        or StaffProfile.objects.filter(user_id=user.pk, organisation__kind=OrganisationKind.BENEFITS_AGENCY).exists()
    )


def check_account_flags(*, user: User) -> None:
    """A benefits-agency account can never be staff or superuser (the admin's user form and every save)."""
    if not (user.is_staff or user.is_superuser) or not _is_agency_account(user):
        return
    message = f"{user.get_username()} is an account of a benefits agency, which can never be staff or superuser."
    raise ValidationError({name: message for name in ("is_staff", "is_superuser") if getattr(user, name)})


def check_account_memberships(*, user: User, groups, permissions) -> None:
    """A benefits-agency account joins no group and holds no permission: either could carry access to client data."""
    if user.pk is None or not _is_agency_account(user):
        return
    errors = {}
    if groups:
        errors["groups"] = f"{user.get_username()} is an account of a benefits agency, which can join no group."
    if permissions:
        errors["user_permissions"] = f"{user.get_username()} is an account of a benefits agency, which can hold no permission."
    if errors:
        raise ValidationError(errors)


def check_profile_move(*, profile: StaffProfile) -> None:
    """A benefits-agency account stays where it is: no other organisation, no other role, not even via a new profile."""
    stored = None
    if profile.pk:
        stored = StaffProfile.objects.filter(pk=profile.pk).select_related("organisation").first()
    was_agency = (stored is not None and stored.organisation.kind == OrganisationKind.BENEFITS_AGENCY) or (
        profile.user_id is not None and User.objects.filter(pk=profile.user_id, benefits_agency_account=True).exists()
    )
    if not was_agency:
        return
    errors = {}
    if profile.organisation.kind != OrganisationKind.BENEFITS_AGENCY or (stored and stored.organisation_id != profile.organisation_id):
        errors["organisation"] = (
            "This is an account of a benefits agency: it cannot be moved to another organisation. "
            "Make a new account for the person's new role instead."
        )
    if profile.role != Role.WORK_COACH or (stored and stored.role != profile.role):
        errors["role"] = f"This is an account of a benefits agency: its role stays work_coach, not {profile.role}."
    if errors:
        raise ValidationError(errors)


def check_organisation_kind(*, organisation: Organisation) -> None:
    """A benefits agency keeps its kind; an organisation with people or sites does not become one.

    Away from benefits_agency would turn every work coach's account into one that may hold client data. Towards
    it, accounts and sites the organisation already has would become a benefits agency's: staff with roles or
    flags no agency may hold, a clinic whose records the agency would run. An organisation starts as a benefits
    agency, or never becomes one once it has anyone or anything.
    """
    if not organisation.pk:
        return
    stored_kind = Organisation.objects.filter(pk=organisation.pk).values_list("kind", flat=True).first()
    if stored_kind is None or stored_kind == organisation.kind:
        return
    if stored_kind == OrganisationKind.BENEFITS_AGENCY:
        raise ValidationError(
            {"kind": f"{organisation} is a benefits agency and stays one: its accounts may never see client data."}
        )
    if organisation.kind == OrganisationKind.BENEFITS_AGENCY and (
        organisation.staff.exists() or organisation.provided_sites.exists()
    ):
        raise ValidationError(
            {"kind": f"{organisation} already has staff or sites, so it cannot become a benefits agency; create a new organisation."}
        )


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
