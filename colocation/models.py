"""Where and with whom: organisations, outreach sites, pilots, teams and staff."""

from django.contrib.auth.models import AbstractUser, Group
from django.core.exceptions import ValidationError
from django.db import models, transaction


class OrganisationKind(models.TextChoices):
    THERAPY_PROVIDER = "therapy_provider", "Therapy provider"
    BENEFITS_AGENCY = "benefits_agency", "Benefits agency"
    PROFESSIONAL_BODY = "professional_body", "Professional body"
    COMMISSIONER = "commissioner", "Commissioner"
    OTHER = "other", "Other"


class Role(models.TextChoices):
    THERAPIST = "therapist", "Therapist"
    CLINICAL_LEAD = "clinical_lead", "Clinical lead"
    DPO = "dpo", "Data-protection officer"
    REVIEWER = "reviewer", "Professional-body reviewer"
    WORK_COACH = "work_coach", "Work coach (benefits agency)"
    ADMIN = "admin", "Administrator"


class VenueKind(models.TextChoices):
    JOBCENTRE = "jobcentre", "Jobcentre"
    GP_SURGERY = "gp_surgery", "GP surgery"
    COMMUNITY_CENTRE = "community_centre", "Community centre"
    LIBRARY = "library", "Library"
    OTHER = "other", "Other"


class Cadence(models.TextChoices):
    MONTHLY = "monthly", "Monthly"
    QUARTERLY = "quarterly", "Quarterly"


class User(AbstractUser):
    """A person who signs in. Their organisation and role are on their staff profile."""

    # Set when the account first belongs to a benefits agency and never cleared, by the database too
    # (colocation.triggers): such an account can never be moved to another organisation or made staff, not
    # even by deleting its profile and making a new one elsewhere.
    benefits_agency_account = models.BooleanField(
        default=False, editable=False, help_text="Once an account of a benefits agency, always one."
    )

    def clean(self):
        super().clean()
        check_account_flags(user=self)

    def save(self, *args, **kwargs):
        # Validated on every save, not only in forms: a benefits-agency account must never become staff or
        # superuser, whichever code path flips the flag. Atomic, so the access event a change of flags writes
        # (consent.access.signals) commits with it or not at all.
        update_fields = kwargs.get("update_fields")
        if update_fields is None or {"is_staff", "is_superuser"} & set(update_fields):
            self.clean()
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)


class Organisation(models.Model):
    name = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=32, choices=OrganisationKind.choices)
    ods_code = models.CharField("ODS code", max_length=12, blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def is_benefits_agency(self) -> bool:
        return self.kind == OrganisationKind.BENEFITS_AGENCY

    def clean(self):
        check_organisation_kind(organisation=self)

    def save(self, *args, **kwargs):
        # A benefits agency stays one whichever path saves it (the database refuses it too).
        self.clean()
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)


class Site(models.Model):
    name = models.CharField(max_length=200)
    venue_kind = models.CharField(max_length=32, choices=VenueKind.choices)
    host_organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="hosted_sites")
    provider = models.ForeignKey(
        Organisation,
        on_delete=models.PROTECT,
        related_name="provided_sites",
        limit_choices_to={"kind": OrganisationKind.THERAPY_PROVIDER},
    )
    # Data minimisation: the postcode district only ("CT1"), never a full address.
    postcode_district = models.CharField(max_length=4)
    active_from = models.DateField()
    active_to = models.DateField(null=True, blank=True)
    # Separation checklist.
    separate_room_or_floor = models.BooleanField(default=False)
    separate_entrance = models.BooleanField(default=False)
    separate_signage_and_publicity = models.BooleanField(default=False)
    separate_it_and_records = models.BooleanField(default=False)
    no_benefits_agency_staff_in_sessions = models.BooleanField(default=False)
    separation_last_reviewed = models.DateField(null=True, blank=True)

    SEPARATION_FIELDS = (
        "separate_room_or_floor",
        "separate_entrance",
        "separate_signage_and_publicity",
        "separate_it_and_records",
        "no_benefits_agency_staff_in_sessions",
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(
                name="site_active_to_after_from",
                condition=models.Q(active_to__isnull=True) | models.Q(active_to__gte=models.F("active_from")),
            ),
        ]

    def __str__(self):
        return self.name

    def clean(self):
        if self.provider_id and self.provider.kind != OrganisationKind.THERAPY_PROVIDER:
            raise ValidationError({"provider": "The provider must be a therapy provider."})
        if self.postcode_district and (" " in self.postcode_district.strip() or len(self.postcode_district) > 4):
            raise ValidationError({"postcode_district": "Give the postcode district only, e.g. CT1."})


class Pilot(models.Model):
    name = models.CharField(max_length=200, unique=True)
    sites = models.ManyToManyField(Site, related_name="pilots")
    starts_on = models.DateField()
    ends_on = models.DateField()
    cadence = models.CharField(max_length=16, choices=Cadence.choices, default=Cadence.QUARTERLY)
    overseen_by = models.ManyToManyField(
        Organisation,
        related_name="overseen_pilots",
        limit_choices_to={"kind": OrganisationKind.PROFESSIONAL_BODY},
    )

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(name="pilot_ends_after_start", condition=models.Q(ends_on__gte=models.F("starts_on"))),
        ]

    def __str__(self):
        return self.name


class ClinicalTeam(models.Model):
    """A provider's clinical team; referrals its therapists record are shared with its group."""

    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="teams")
    name = models.CharField(max_length=200)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="clinical_team")

    class Meta:
        ordering = ["organisation__name", "name"]
        constraints = [models.UniqueConstraint(fields=["organisation", "name"], name="team_unique_name_per_org")]

    def __str__(self):
        return f"{self.organisation} / {self.name}"


class StaffProfile(models.Model):
    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="staff_profile")
    organisation = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="staff")
    role = models.CharField(max_length=32, choices=Role.choices)
    team = models.ForeignKey(ClinicalTeam, on_delete=models.SET_NULL, null=True, blank=True, related_name="members")

    def __str__(self):
        return f"{self.user} ({self.get_role_display()}, {self.organisation})"

    def clean(self):
        if self.organisation_id is None or not self.role:
            return  # the fields' own validation names what is missing
        check_profile_move(profile=self)
        check_staff_combination(
            organisation=self.organisation,
            role=self.role,
            is_staff=self.user.is_staff,
            is_superuser=self.user.is_superuser,
            team=self.team,
        )

    def save(self, *args, **kwargs):
        # Validated on every save, not only in forms (see check_staff_combination); atomic with the access
        # event the change writes (consent.access.signals).
        self.full_clean()
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            if self.organisation.kind == OrganisationKind.BENEFITS_AGENCY and not self.user.benefits_agency_account:
                # The database's trigger sets it too; this keeps the instance in memory in step.
                User.objects.filter(pk=self.user_id).update(benefits_agency_account=True)
                self.user.benefits_agency_account = True


# ---- rules every save checks ------------------------------------------------------------------------------
# Called from the models' clean() (so from every save, the admin's forms and the services alike); they live
# here, below the services, so that a model never has to import upwards.

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
    if profile.organisation.kind != OrganisationKind.BENEFITS_AGENCY or (
        stored and stored.organisation_id != profile.organisation_id
    ):
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
            {
                "kind": f"{organisation} already has staff or sites, so it cannot become a benefits agency; create a new organisation."
            }
        )
