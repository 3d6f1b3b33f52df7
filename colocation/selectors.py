"""Reads about organisations, sites and pilots (none of it client data)."""

from django.db.models import QuerySet

from colocation.models import Organisation, OrganisationKind, Pilot, Role, Site, StaffProfile, User

# The roles that treat clients: they record referrals and may be assigned them.
CLINICAL_ROLES = (Role.THERAPIST, Role.CLINICAL_LEAD)


def staff_profile_of(user: User) -> StaffProfile | None:
    """The user's staff profile, or None for an account without one (which then sees nothing)."""
    if not getattr(user, "is_authenticated", False):
        return None
    try:
        return user.staff_profile
    except StaffProfile.DoesNotExist:
        return None


def organisation_of(user: User) -> Organisation | None:
    profile = staff_profile_of(user)
    return profile.organisation if profile else None


def is_benefits_agency_account(user: User) -> bool:
    """Whether the account belongs (or ever belonged) to a benefits agency: its organisation's kind, or its mark."""
    if getattr(user, "benefits_agency_account", False):
        return True
    organisation = organisation_of(user)
    return organisation is not None and organisation.kind == OrganisationKind.BENEFITS_AGENCY


def provider_profile_of(user: User) -> StaffProfile | None:
    """The staff profile of an active account of a therapy provider, else None (a benefits agency's never)."""
    if is_benefits_agency_account(user):
        return None
    profile = staff_profile_of(user)
    # An account switched off keeps its grants until someone revokes them; it reaches nothing meanwhile.
    if profile is None or not user.is_active or profile.organisation.kind != OrganisationKind.THERAPY_PROVIDER:
        return None
    return profile


def clinician_profile_of(user: User) -> StaffProfile | None:
    """The one answer to "is this a clinician of a provider?": a therapist's or clinical lead's profile, else None."""
    profile = provider_profile_of(user)
    return profile if profile is not None and profile.role in CLINICAL_ROLES else None


def sites_list() -> QuerySet[Site]:
    return Site.objects.select_related("host_organisation", "provider").order_by("name", "pk")


def pilots_list() -> QuerySet[Pilot]:
    return Pilot.objects.prefetch_related("sites", "overseen_by").order_by("name", "pk")


def sites_run_by(organisation_id: int) -> QuerySet[Site]:
    """The sites a provider runs, for choosing where a referral was made."""
    return Site.objects.filter(provider_id=organisation_id).order_by("name", "pk")


def clinicians_of(organisation_id: int) -> QuerySet[User]:
    """Active therapists and clinical leads of an organisation, who may be assigned its clients."""
    return User.objects.filter(
        is_active=True, staff_profile__organisation_id=organisation_id, staff_profile__role__in=CLINICAL_ROLES
    ).order_by("username")


def site_by_id(site_id: int) -> Site | None:
    """A site by id with its provider, or None (sites are not client data)."""
    return Site.objects.select_related("provider").filter(pk=site_id).first()


def account_by_username(username: str) -> User | None:
    return User.objects.select_related("staff_profile__organisation").filter(username=username).first()
