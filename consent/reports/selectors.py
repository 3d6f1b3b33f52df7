"""Who may read or freeze a pilot's compliance report, and reads of stored snapshots."""

from django.db.models import QuerySet

from colocation.models import OrganisationKind, Pilot, Role, User
from colocation.selectors import is_benefits_agency_account, staff_profile_of
from consent.reports.models import ComplianceReportSnapshot

# Leads and DPOs of a provider see the report of a pilot their sites are in; therapists read their own
# clients, not pilot-wide figures.
PROVIDER_REPORT_ROLES = (Role.CLINICAL_LEAD, Role.DPO)


def pilots_reportable_by(user: User) -> QuerySet[Pilot]:
    """The pilots whose compliance report (and snapshots) this user may read; none for anyone else.

    A reviewer: the pilots their professional body oversees. A clinical lead or DPO: the pilots with a site
    their provider runs. A benefits-agency account: none, whatever its role or flags (checked first).
    """
    if is_benefits_agency_account(user):
        return Pilot.objects.none()
    profile = staff_profile_of(user)
    if profile is None:
        return Pilot.objects.none()
    kind = profile.organisation.kind
    if profile.role == Role.REVIEWER and kind == OrganisationKind.PROFESSIONAL_BODY:
        return Pilot.objects.filter(overseen_by=profile.organisation_id).distinct().order_by("pk")
    if profile.role in PROVIDER_REPORT_ROLES and kind == OrganisationKind.THERAPY_PROVIDER:
        return Pilot.objects.filter(sites__provider_id=profile.organisation_id).distinct().order_by("pk")
    return Pilot.objects.none()


def pilots_freezable_by(user: User) -> QuerySet[Pilot]:
    """The pilots whose report this user may freeze as a snapshot: leads and DPOs of a provider in the pilot."""
    profile = staff_profile_of(user)
    if profile is None or profile.role not in PROVIDER_REPORT_ROLES:
        return Pilot.objects.none()
    return pilots_reportable_by(user)


def snapshots_readable_by(user: User) -> QuerySet[ComplianceReportSnapshot]:
    """Snapshots of the pilots whose report the user may read."""
    return ComplianceReportSnapshot.objects.filter(pilot__in=pilots_reportable_by(user).values("pk")).select_related(
        "pilot", "created_by"
    )
