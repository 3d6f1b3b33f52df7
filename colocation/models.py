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
        from colocation.services import check_account_flags

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
        from colocation.services import check_organisation_kind

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
        from colocation.services import check_profile_move, check_staff_combination

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
