"""The client's side: clients, referrals, consent templates and the append-only records of an episode."""

import hashlib
import json
import secrets
import uuid
from datetime import UTC, datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction

from colocation.models import ClinicalTeam, Organisation, Pilot, Site
from consent.source_of_referral import SOURCE_OF_REFERRAL_CHOICES


class HowHeard(models.TextChoices):
    WORK_COACH_SUGGESTED = "work_coach_suggested", "A work coach suggested it"
    LEAFLET_OR_POSTER = "leaflet_or_poster", "Leaflet or poster"
    GP = "gp", "GP"
    FRIEND_OR_FAMILY = "friend_or_family", "Friend or family"
    FOUND_THEMSELVES = "found_themselves", "Found it themselves"
    OTHER = "other", "Other"


class Pathway(models.TextChoices):
    SELF_REFERRAL = "self_referral", "Self-referral"
    SIGNPOSTED_BY_WORK_COACH = "signposted_by_work_coach", "Signposted by a work coach"
    MANDATED_ASSESSMENT = "mandated_assessment", "Mandated assessment"
    BENEFIT_CONDITION = "benefit_condition", "Benefit condition"


# Recorded honestly, never refused: these are what the compliance report exists to show.
INVOLUNTARY_PATHWAYS = (Pathway.MANDATED_ASSESSMENT, Pathway.BENEFIT_CONDITION)


class ReferralStatus(models.TextChoices):
    AWAITING_CONSENT = "awaiting_consent", "Awaiting consent"
    ACTIVE = "active", "Active"
    DECLINED = "declined", "Declined after explanation"
    WITHDRAWN = "withdrawn", "Withdrawn"
    DISCHARGED = "discharged", "Discharged"


class ConsentMethod(models.TextChoices):
    VERBAL = "verbal", "Verbal"
    WRITTEN = "written", "Written"
    DIGITAL = "digital", "Digital"


class ConsentScope(models.TextChoices):
    TREATMENT = "treatment", "Treatment"
    DATA_SET_SUBMISSION = "data_set_submission", "NHS Talking Therapies data set submission"
    CONTACT_BY_PHONE = "contact_by_phone", "Contact by phone"
    CONTACT_BY_SMS = "contact_by_sms", "Contact by SMS"
    CONTACT_BY_LETTER = "contact_by_letter", "Contact by letter"
    SHARE_WITH_GP = "share_with_gp", "Share with GP"


# Each must be true for consent to count as explicit and voluntary.
ACKNOWLEDGEMENTS = (
    "attendance_is_optional",
    "no_effect_on_benefits",
    "service_separate_from_jobcentre",
    "nothing_shared_with_jobcentre",
    "free_to_withdraw",
)


class WithdrawalReason(models.TextChoices):
    NO_LONGER_WANTED = "no_longer_wanted", "No longer wanted"
    FELT_PRESSURED = "felt_pressured", "Felt pressured"
    MOVED_OR_UNREACHABLE = "moved_or_unreachable", "Moved or unreachable"
    OTHER = "other", "Other"


class CheckStage(models.TextChoices):
    INTAKE = "intake", "Intake"
    DURING_THERAPY = "during_therapy", "During therapy"
    DISCHARGE = "discharge", "Discharge"


class GoalRaisedBy(models.TextChoices):
    NOBODY = "nobody", "Nobody"
    CLIENT = "client", "The client"
    THERAPIST = "therapist", "The therapist"
    BENEFITS_AGENCY = "benefits_agency", "The benefits agency"


class DischargeReason(models.TextChoices):
    COMPLETED = "completed", "Completed"
    CLIENT_ENDED = "client_ended", "Client ended"
    NOT_SUITABLE = "not_suitable", "Not suitable"
    REFERRED_ON = "referred_on", "Referred on"
    NO_CONTACT = "no_contact", "No contact"


class Client(models.Model):
    """A pseudonymous client: no name, no address."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    provider = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="clients")
    # Blank once erased under the retention policy; the pseudonym stays for the access log.
    local_reference = models.CharField(max_length=64, blank=True)
    nhs_number = models.CharField("NHS number", max_length=10, blank=True)
    year_of_birth = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    identifiers_erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "local_reference"],
                condition=~models.Q(local_reference=""),
                name="client_local_reference_unique_per_provider",
            ),
        ]

    def __str__(self):
        return f"client {self.pk}"


# Record keys of the cell-key method run from 0 to this minus one (consent.reports.disclosure).
RECORD_KEY_MODULUS = 256


def new_record_key() -> int:
    """A referral's record key for disclosure control: random, stored, never shown to anyone."""
    return secrets.randbelow(RECORD_KEY_MODULUS)


class ReferralQuerySet(models.QuerySet):
    def counted_by(self, counter: models.QuerySet) -> "ReferralQuerySet":
        """This queryset, whose count() is `counter.count()` for as long as nothing narrows it further.

        For a filter whose rows are known to match another table's one for one (the firewall's caseload entries):
        the referrals then need not be read to be counted. Any later filter, slice, DISTINCT or set operation
        changes the query, and the count is taken the ordinary way again.
        """
        clone = self._chain()
        clone.query.counted_by = (clone.query.where.clone(), counter)
        return clone

    def count(self) -> int:
        shortcut = getattr(self.query, "counted_by", None)
        query = self.query
        if (
            shortcut is not None
            and self._result_cache is None
            and not (query.is_sliced or query.distinct or query.combinator)
            and query.where == shortcut[0]
        ):
            return shortcut[1].count()
        return super().count()


class Referral(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    client = models.ForeignKey(Client, on_delete=models.PROTECT, related_name="referrals")
    # The client's provider, kept on the referral so the firewall filters without a join.
    provider = models.ForeignKey(Organisation, on_delete=models.PROTECT, related_name="referrals")
    site = models.ForeignKey(Site, on_delete=models.PROTECT, related_name="referrals")
    team = models.ForeignKey(ClinicalTeam, on_delete=models.PROTECT, null=True, blank=True, related_name="referrals")
    referred_on = models.DateField()
    source_of_referral = models.CharField(max_length=2, choices=SOURCE_OF_REFERRAL_CHOICES)
    how_heard = models.CharField(max_length=32, choices=HowHeard.choices)
    pathway = models.CharField(max_length=32, choices=Pathway.choices)
    status = models.CharField(max_length=32, choices=ReferralStatus.choices, default=ReferralStatus.AWAITING_CONSENT)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # The cell-key method's record key: stored (not derived from a secret) so every published figure stays the
    # same when a server secret is rotated, and so nobody holding the database's secrets can recompute keys
    # from the referral ids a DPO export shows. Never serialised.
    record_key = models.PositiveSmallIntegerField(default=new_record_key, editable=False)
    # Recorded for a client the provider already held, by someone who could not see that client: the referral
    # shows the identifiers as typed at its intake, never the ones held (consent.services.create_referral).
    client_known_at_intake = models.BooleanField(default=False)
    intake_nhs_number = models.CharField("NHS number as given at intake", max_length=10, blank=True)
    intake_year_of_birth = models.PositiveSmallIntegerField("year of birth as given at intake", null=True, blank=True)

    objects = ReferralQuerySet.as_manager()

    class Meta:
        ordering = ["-referred_on", "-created_at"]
        indexes = [
            models.Index(fields=["site", "referred_on"], name="referral_site_referred_on"),
            models.Index(fields=["-referred_on", "-created_at"], name="referral_list_order"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(record_key__gte=0, record_key__lt=RECORD_KEY_MODULUS), name="referral_record_key_range"
            ),
        ]

    def __str__(self):
        return f"referral {self.pk}"


class ConsentTemplateQuerySet(models.QuerySet):
    def update(self, **kwargs):
        # A bulk update bypasses save(): the same rule, so a used template's text cannot change this way either.
        changing = set(kwargs) & set(ConsentTemplate.IMMUTABLE_FIELDS)
        if changing and self.filter(consents__isnull=False).exists():
            raise ValidationError({sorted(changing)[0]: "A template used for consent cannot change; add a new version instead."})
        if "body" in kwargs:
            raise ValidationError({"body": "Change a template's body through save(), which derives its SHA-256."})
        return super().update(**kwargs)


class ConsentTemplate(models.Model):
    """The text a client is told; immutable once a consent record uses it."""

    objects = ConsentTemplateQuerySet.as_manager()

    code = models.SlugField(max_length=64)
    version = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField()
    body_sha256 = models.CharField(max_length=64, editable=False)
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True)
    language = models.CharField(max_length=8, default="en")

    # What a consent record points at: none of these may change once a record uses the template.
    IMMUTABLE_FIELDS = ("code", "version", "title", "body", "body_sha256", "effective_from", "language")

    class Meta:
        ordering = ["code", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["code", "version", "language"], name="template_unique_version"),
        ]

    def __str__(self):
        return f"{self.code} v{self.version} ({self.language})"

    @property
    def policy_uri(self) -> str:
        """The template version and the hash of its text, as exports (FHIR, consent receipts) point at it."""
        return f"urn:consent-template:{self.code}:{self.version}#sha256={self.body_sha256}"

    def save(self, *args, **kwargs):
        # The hash is derived from the body, never typed in.
        self.body_sha256 = hashlib.sha256(self.body.encode("utf-8")).hexdigest()
        if not self._state.adding and self.pk:
            # Immutable once used, whichever path saves it (the admin also makes it read-only): every consent
            # record's hash must keep meaning the text the client was told.
            stored = ConsentTemplate.objects.filter(pk=self.pk).values(*self.IMMUTABLE_FIELDS).first()
            changed = stored and any(stored[name] != getattr(self, name) for name in self.IMMUTABLE_FIELDS)
            if changed and self.consents.exists():
                raise ValidationError(
                    {"body": "This template has been used for consent and cannot change; add a new version instead."}
                )
        # Atomic with the access event a template change writes (consent.access.signals).
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)


class AppendOnlyError(Exception):
    """Raised on any attempt to change or delete an append-only record in place."""


class AppendOnlyQuerySet(models.QuerySet):
    """Bulk changes bypass Model.save and Model.delete, so they are refused here as well."""

    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} are append-only: record a correction that supersedes one.")

    def bulk_update(self, objs, fields, batch_size=None):
        # Refused before Django opens its transaction, so the caller's transaction stays usable.
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} are append-only: record a correction that supersedes one.")

    def delete(self):
        raise AppendOnlyError(f"{self.model._meta.verbose_name_plural} are append-only and cannot be deleted.")


class AppendOnlyRecord(models.Model):
    """Common fields of the append-only records of an episode; corrections point at what they supersede."""

    objects = AppendOnlyQuerySet.as_manager()

    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        # A last line behind the services (which only ever add rows): whatever code path holds a record,
        # an in-place change is refused, so what the client was told and agreed stays as recorded.
        if not self._state.adding:
            raise AppendOnlyError(f"{self._meta.verbose_name} {self.pk} is append-only: record a correction that supersedes it.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{self._meta.verbose_name} {self.pk} is append-only and cannot be deleted.")


class ConsentRecord(AppendOnlyRecord):
    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="consents")
    template = models.ForeignKey(ConsentTemplate, on_delete=models.PROTECT, related_name="consents")
    given_at = models.DateTimeField()
    method = models.CharField(max_length=16, choices=ConsentMethod.choices)
    scopes = models.JSONField(default=list)
    attendance_is_optional = models.BooleanField()
    no_effect_on_benefits = models.BooleanField()
    service_separate_from_jobcentre = models.BooleanField()
    nothing_shared_with_jobcentre = models.BooleanField()
    free_to_withdraw = models.BooleanField()
    supersedes = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by")
    # SHA-256 of what the client consented to (content_digest), stored as the record is written: a receipt is
    # issued only while the stored content still matches it (consent.receipts).
    content_sha256 = models.CharField(max_length=64, editable=False, default="")
    # The receipt key's Ed25519 signature over that digest, made at the same moment (consent.receipts.seal): a key
    # held outside the database, so rewriting a record and its digest together still shows.
    content_signature = models.CharField(max_length=88, editable=False, default="")

    class Meta:
        ordering = ["given_at", "pk"]
        constraints = [
            # Explicit and voluntary consent needs every acknowledgement; the database holds the line too.
            models.CheckConstraint(
                name="consent_all_acknowledgements",
                condition=models.Q(
                    attendance_is_optional=True,
                    no_effect_on_benefits=True,
                    service_separate_from_jobcentre=True,
                    nothing_shared_with_jobcentre=True,
                    free_to_withdraw=True,
                ),
            ),
        ]

    def content_digest(self) -> str:
        """SHA-256 over the canonical JSON of what was consented to: who, to which template, when, how, to what."""
        content = {
            "referral": str(self.referral_id), "template": self.template_id, "given_at": _utc(self.given_at),
            "method": self.method, "scopes": list(self.scopes), "recorded_by": self.recorded_by_id,
            "supersedes": self.supersedes_id, **{name: getattr(self, name) for name in ACKNOWLEDGEMENTS},
        }  # fmt: skip
        encoded = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        return hashlib.sha256(encoded).hexdigest()

    def save(self, *args, **kwargs):
        # Derived, never typed in (like a template's body_sha256): the digest of the content as it is written.
        if self._state.adding:
            from consent.receipts import seal  # noqa: PLC0415 - see [tool.importlinter] (consent.models -> consent.receipts)

            self.content_sha256 = self.content_digest()
            self.content_signature = seal(self.content_sha256)
        super().save(*args, **kwargs)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


class Withdrawal(AppendOnlyRecord):
    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="withdrawals")
    withdrawn_at = models.DateTimeField()
    reason = models.CharField(max_length=32, choices=WithdrawalReason.choices)
    supersedes = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by")

    class Meta:
        ordering = ["withdrawn_at", "pk"]


class ScopeWithdrawal(AppendOnlyRecord):
    """The client takes back one use of their data (say, contact by SMS) and stays in therapy.

    Its own append-only record, one row per use: withdrawing a use neither ends the episode nor blocks its
    discharge. Withdrawing treatment itself is a Withdrawal, which does end it. The use is back in force only
    if the client consents to it again in a later consent record.
    """

    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="scope_withdrawals")
    scope = models.CharField(max_length=32, choices=ConsentScope.choices)
    withdrawn_at = models.DateTimeField()
    reason = models.CharField(max_length=32, choices=WithdrawalReason.choices)

    class Meta:
        ordering = ["withdrawn_at", "pk"]
        indexes = [models.Index(fields=["referral", "withdrawn_at"], name="scope_withdrawal_referral")]
        constraints = [
            # Treatment is withdrawn by withdrawing from therapy (a Withdrawal), never as a use on its own.
            models.CheckConstraint(name="scope_withdrawal_not_treatment", condition=~models.Q(scope="treatment")),
        ]


class VoluntarinessCheck(AppendOnlyRecord):
    referral = models.ForeignKey(Referral, on_delete=models.PROTECT, related_name="voluntariness_checks")
    checked_at = models.DateTimeField()
    stage = models.CharField(max_length=16, choices=CheckStage.choices)
    told_attendance_required = models.BooleanField()
    sanction_mentioned = models.BooleanField()
    feels_free_to_stop = models.BooleanField()
    goals_set_by_client = models.BooleanField()
    employment_goal_raised_by = models.CharField(max_length=16, choices=GoalRaisedBy.choices)
    supersedes = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by")

    class Meta:
        ordering = ["checked_at", "pk"]


class Decline(AppendOnlyRecord):
    """The client decided not to go ahead after it was explained: counted, never dropped."""

    referral = models.OneToOneField(Referral, on_delete=models.PROTECT, related_name="decline")
    declined_on = models.DateField()


class Discharge(AppendOnlyRecord):
    referral = models.OneToOneField(Referral, on_delete=models.PROTECT, related_name="discharge")
    discharged_on = models.DateField()
    reason = models.CharField(max_length=16, choices=DischargeReason.choices)


class VoluntarinessFlags(models.Model):
    """When each fact behind a referral's voluntariness first held, kept with the records (one row per referral).

    Each field is the earliest time of a record in force (not superseded) showing that fact, or empty when no
    record shows it: a fact held at some moment exactly when its time is at or before that moment. The
    compliance report reads these instead of walking every consent, check and withdrawal of a pilot on each
    request. Derived data, not a record: consent.voluntariness_flags.refresh_voluntariness_flags rewrites the
    row in the same transaction as each record written, and the recount_voluntariness_flags command checks
    every row against the records themselves.
    """

    referral = models.OneToOneField(Referral, on_delete=models.CASCADE, primary_key=True, related_name="voluntariness_flags")
    # Consent: the earliest in force (the day the median counts from), and the earliest explicit one.
    consent_at = models.DateTimeField(null=True, blank=True)
    explicit_consent_at = models.DateTimeField(null=True, blank=True)
    # Checks in force, by what they found.
    intake_check_at = models.DateTimeField(null=True, blank=True)
    told_required_at = models.DateTimeField(null=True, blank=True)
    sanction_at = models.DateTimeField(null=True, blank=True)
    not_free_to_stop_at = models.DateTimeField(null=True, blank=True)
    goal_by_agency_at = models.DateTimeField(null=True, blank=True)
    # Withdrawals in force: any, and those citing pressure.
    withdrawal_at = models.DateTimeField(null=True, blank=True)
    pressured_withdrawal_at = models.DateTimeField(null=True, blank=True)
    declined_on = models.DateField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "voluntariness flags"

    def __str__(self):
        return f"voluntariness flags of {self.referral_id}"


class LatticeCell(models.Model):
    """One cell of a pilot's report lattice (consent.reports.lattice) for one site and month received, kept.

    Derived data, not a record: consent.lattice_cells.refresh_report_rows moves a referral's counts between cells
    in the transaction of each intake and record written; consent.reports.cells rebuilds a pilot's cells from the
    records when its dates or sites change, and the recount_report_cells command checks them all. `path` names
    the cell ("referrals_received", "by_pathway|self_referral", "quarter|voluntariness|voluntary", ...); `n` is
    how many referrals it counts and `key_sum` the sum of their record keys (disclosure control's cell key).
    """

    pilot = models.ForeignKey(Pilot, on_delete=models.CASCADE, related_name="+")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="+")
    month = models.DateField(help_text="The first day of the calendar month the referrals were received in.")
    path = models.CharField(max_length=80)
    n = models.BigIntegerField(default=0)
    key_sum = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["pilot", "site", "month", "path"], name="lattice_cell_once")]

    def __str__(self):
        return f"{self.pilot_id} {self.site_id} {self.month:%Y-%m} {self.path}: {self.n}"
