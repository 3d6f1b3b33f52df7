"""The compliance report and its snapshots as the schema names them (consent.reports builds the documents).

Every count is already suppressed when it leaves the server: a whole number (0, or rounded to the nearest 5)
or `*` (the PublishedCount component); shares and medians are computed from published figures or withheld.
"""

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.access_log import ChainHeadOutput
from api.schema import ContractCharField
from colocation.models import Cadence
from consent.models import HowHeard, Pathway
from consent.reports.report import INSUFFICIENT, MET, NOT_MET, PRINCIPLE_TITLES
from consent.selectors import Voluntariness

COUNT = {"$ref": "#/components/schemas/PublishedCount"}
# A standard period as consent.reports.periods parses it: a year, a quarter or a month, 2000 to 2099.
PERIOD_PATTERN = r"^\s*20[0-9]{2}(-[Qq][1-4]|-(0[1-9]|1[0-2]))?\s*$"


# Built with type(): one of its fields is named "from", a Python keyword.
FreezeReportInput = type("FreezeReportInput", (serializers.Serializer,), {
    "__doc__": "The period to freeze: `period`, or `from` and `to` (the view reads the body; this says what it accepts).",
    "__module__": __name__,
    "refuses_unknown_fields": True,
    "period": ContractCharField(required=False, help_text="A year (2026), a quarter (2026-Q3) or a month (2026-07).",
                                schema_extra={"pattern": PERIOD_PATTERN}),
    "from": serializers.DateField(required=False, help_text="The first day, with to, instead of period."),
    "to": serializers.DateField(required=False, help_text="The last day, with from."),
})  # fmt: skip


@extend_schema_field(COUNT)
class CountField(serializers.Field):
    """A published count."""


@extend_schema_field({"$ref": "#/components/schemas/PublishedShare"})
class ShareField(serializers.Field):
    """A published share."""


@extend_schema_field({"$ref": "#/components/schemas/PublishedMedian"})
class MedianField(serializers.Field):
    """A published median."""


def _counts(name: str, keys, doc: str) -> type[serializers.Serializer]:
    """An object with one published count per key, every key always present."""
    return type(name, (serializers.Serializer,), {"__doc__": doc, **{key: CountField() for key in keys}})


ByPathwayOutput = _counts("ByPathwayOutput", Pathway.values, "Referrals received by pathway.")
ByHowHeardOutput = _counts("ByHowHeardOutput", HowHeard.values, "Referrals received by how the client heard of the service.")
VoluntarinessCountsOutput = _counts(
    "VoluntarinessCountsOutput", Voluntariness.ALL, "Referrals by voluntariness status at the end of the period."
)


class ReportFiguresOutput(serializers.Serializer):
    """The published figures of the pilot as a whole, or of one site."""

    referrals_received = CountField(help_text="Every referral in the period, no exclusions.")
    by_pathway = ByPathwayOutput()
    by_source_of_referral = serializers.DictField(
        child=CountField(),
        help_text="Referrals received by NHS Talking Therapies source-of-referral code (SourceOfReferralIAPT); "
        "B1 (self-referral) and M5 (Jobcentre Plus referred the person) are always present.",
    )
    by_how_heard = ByHowHeardOutput()
    explicit_consent = CountField()
    explicit_consent_share = ShareField()
    median_days_to_consent = MedianField()
    voluntariness = VoluntarinessCountsOutput()
    remained_voluntary = CountField()
    remained_voluntary_share = ShareField(help_text="Of those who gave explicit consent.")
    declined = CountField(help_text="Declined after it was explained.")
    withdrawals = CountField()
    withdrawals_citing_pressure = CountField()
    felt_not_free_to_stop = CountField()
    employment_goal_raised_by_benefits_agency = CountField()
    intake_check_recorded = CountField()
    benefits_agency_access_allowed = CountField(help_text="Must be 0.")
    benefits_agency_access_denied = CountField()
    access_log_verified = serializers.BooleanField()


class ReportSiteOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    provider = serializers.CharField(help_text="The therapy provider's name.")


class SeparationChecklistOutput(serializers.Serializer):
    """The site's separation checklist and when it was last reviewed."""

    separate_room_or_floor = serializers.BooleanField()
    separate_entrance = serializers.BooleanField()
    separate_signage_and_publicity = serializers.BooleanField()
    separate_it_and_records = serializers.BooleanField()
    no_benefits_agency_staff_in_sessions = serializers.BooleanField()
    last_reviewed = serializers.DateField(allow_null=True)


class SiteFiguresOutput(ReportFiguresOutput):
    """One site's published figures and separation checklist."""

    site = ReportSiteOutput()
    separation = SeparationChecklistOutput()


PRINCIPLE_CHOICES = list(PRINCIPLE_TITLES.items())
VERDICT_CHOICES = [(MET, "The figures show it held"), (NOT_MET, "The figures show it did not hold"),
                   (INSUFFICIENT, "Too little recorded to judge")]  # fmt: skip


@extend_schema_field({"oneOf": [COUNT, {"type": "boolean"}, {"type": "array", "items": {"type": "string"}}]})
class EvidenceField(serializers.Field):
    """A published count, a flag, or the names of the sites concerned."""


class PrincipleOutput(serializers.Serializer):
    """One of the six principles the professional bodies set, with its verdict and the figures behind it."""

    key = serializers.ChoiceField(choices=PRINCIPLE_CHOICES)
    title = serializers.CharField()
    verdict = serializers.ChoiceField(choices=VERDICT_CHOICES)
    reason = serializers.CharField()
    evidence = serializers.DictField(child=EvidenceField(), help_text="The published figures behind the verdict.")


class SeriesPointOutput(serializers.Serializer):
    """One month or quarter of the pilot, for the trend chart."""

    period = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()
    referrals_received = CountField()
    remained_voluntary = CountField()


class ReportPilotOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    cadence = serializers.ChoiceField(choices=Cadence.choices)


class ReportPeriodOutput(serializers.Serializer):
    label = serializers.CharField()
    start = serializers.DateField()
    end = serializers.DateField()


class ComplianceReportOutput(serializers.Serializer):
    """A pilot's compliance report for a period, suppressed before it left the server."""

    pilot = ReportPilotOutput()
    period = ReportPeriodOutput()
    disclosure_control = serializers.CharField(help_text="The rule applied to every count.")
    totals = ReportFiguresOutput()
    sites = SiteFiguresOutput(many=True)
    principles = PrincipleOutput(many=True)
    series = SeriesPointOutput(many=True)


class SnapshotOutput(serializers.Serializer):
    """A report frozen as it was produced: check it later with .../verify/."""

    id = serializers.IntegerField()
    pilot = serializers.IntegerField()
    period = serializers.CharField()
    sha256 = serializers.CharField(help_text="SHA-256 (hex) of the stored document.")
    frozen_by = serializers.CharField()
    frozen_at = serializers.DateTimeField()
    code_version = serializers.CharField()
    access_log_heads = serializers.DictField(
        child=ChainHeadOutput(), help_text="The head of each provider's access-log chain, by organisation id, when frozen."
    )
    report = ComplianceReportOutput()


class HeadCheckOutput(serializers.Serializer):
    head_hash = serializers.CharField()
    still_in_chain = serializers.BooleanField()


class SnapshotVerificationOutput(serializers.Serializer):
    """Whether the stored snapshot still hashes to its SHA-256, and its published log heads are still in their chains."""

    id = serializers.IntegerField()
    verified = serializers.BooleanField()
    sha256 = serializers.CharField()
    sha256_recomputed = serializers.CharField()
    access_log_heads = serializers.DictField(
        child=HeadCheckOutput(), help_text="Each published head, by organisation id, and whether its chain still holds it."
    )
