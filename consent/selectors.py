"""Reads of client data. Every queryset here is handed to the firewall before anyone sees a row."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime

from django.db.models import BooleanField, Case, CharField, Exists, OuterRef, Prefetch, Q, QuerySet, Value, When
from django.utils import timezone

from colocation.models import Organisation, OrganisationKind
from consent.models import (
    INVOLUNTARY_PATHWAYS,
    CheckStage,
    ConsentRecord,
    ConsentTemplate,
    Discharge,
    GoalRaisedBy,
    Referral,
    ReferralStatus,
    ScopeWithdrawal,
    VoluntarinessCheck,
    Withdrawal,
    WithdrawalReason,
)


class Voluntariness:
    VOLUNTARY = "voluntary"
    CONCERN = "concern"
    NOT_VOLUNTARY = "not_voluntary"
    UNKNOWN = "unknown"
    ALL = (VOLUNTARY, CONCERN, NOT_VOLUNTARY, UNKNOWN)


# Reasons, in the order they are reported, each with the annotation that raises it.
REASONS = {
    "v_mandated_pathway": (Voluntariness.NOT_VOLUNTARY, "pathway is mandated_assessment or benefit_condition"),
    "v_told_required": (Voluntariness.NOT_VOLUNTARY, "a check recorded that the client was told attendance is required"),
    "v_sanction": (Voluntariness.NOT_VOLUNTARY, "a check recorded that a sanction was mentioned"),
    "v_not_free_to_stop": (Voluntariness.CONCERN, "a check recorded that the client does not feel free to stop"),
    "v_goal_by_agency": (Voluntariness.CONCERN, "a check recorded an employment goal raised by the benefits agency"),
    "v_pressured_withdrawal": (Voluntariness.CONCERN, "the client withdrew citing pressure"),
    "v_no_consent": (Voluntariness.UNKNOWN, "no explicit consent recorded yet"),
    "v_no_intake_check": (Voluntariness.UNKNOWN, "no intake voluntariness check recorded yet"),
}


def _current(model, as_of: datetime | None, time_field: str) -> QuerySet:
    """A record model's rows for the outer referral, not superseded, as known at `as_of`."""
    rows = model.objects.filter(referral=OuterRef("pk"), superseded_by__isnull=True)
    if as_of is not None:
        rows = rows.filter(**{f"{time_field}__lte": as_of})
    return rows


def voluntariness_annotations(as_of: datetime | None = None) -> dict:
    """SQL expressions behind a referral's voluntariness, optionally as it stood at `as_of`.

    The one definition of the rule (docs/architecture.md, "Voluntariness of a referral"): used for every referral the
    API returns and by the compliance report, so both always agree.
    """
    checks = _current(VoluntarinessCheck, as_of, "checked_at")
    consents = _current(ConsentRecord, as_of, "given_at").filter(
        attendance_is_optional=True,
        no_effect_on_benefits=True,
        service_separate_from_jobcentre=True,
        nothing_shared_with_jobcentre=True,
        free_to_withdraw=True,
    )
    withdrawals = _current(Withdrawal, as_of, "withdrawn_at")
    flags = {
        "v_mandated_pathway": Case(
            When(pathway__in=INVOLUNTARY_PATHWAYS, then=Value(True)), default=Value(False), output_field=BooleanField()
        ),
        "v_told_required": Exists(checks.filter(told_attendance_required=True)),
        "v_sanction": Exists(checks.filter(sanction_mentioned=True)),
        "v_not_free_to_stop": Exists(checks.filter(feels_free_to_stop=False)),
        "v_goal_by_agency": Exists(checks.filter(employment_goal_raised_by=GoalRaisedBy.BENEFITS_AGENCY)),
        "v_pressured_withdrawal": Exists(withdrawals.filter(reason=WithdrawalReason.FELT_PRESSURED)),
        "v_no_consent": ~Exists(consents),
        "v_no_intake_check": ~Exists(checks.filter(stage=CheckStage.INTAKE)),
    }
    return flags


# The status rule, most serious first: a status and the flags (of voluntariness_annotations) any one of which
# decides it; none of them set is voluntary. Read by the SQL expression and by status_from_flags, so one rule.
STATUS_RULE = (
    (Voluntariness.NOT_VOLUNTARY, ("v_mandated_pathway", "v_told_required", "v_sanction")),
    (Voluntariness.CONCERN, ("v_not_free_to_stop", "v_goal_by_agency", "v_pressured_withdrawal")),
    (Voluntariness.UNKNOWN, ("v_no_consent", "v_no_intake_check")),
)


def voluntariness_status_expression() -> Case:
    """The status from the flags of voluntariness_annotations(), most serious first (STATUS_RULE)."""
    whens = []
    for status, deciding in STATUS_RULE:
        condition = Q()
        for flag in deciding:
            condition |= Q(**{flag: True})
        whens.append(When(condition, then=Value(status)))
    return Case(*whens, default=Value(Voluntariness.VOLUNTARY), output_field=CharField())


def status_from_flags(flags: Mapping[str, bool]) -> str:
    """The status STATUS_RULE gives a set of flags already worked out (the report's counts grouped by flag)."""
    for status, deciding in STATUS_RULE:
        if any(flags[flag] for flag in deciding):
            return status
    return Voluntariness.VOLUNTARY


def with_voluntariness(queryset: QuerySet, as_of: datetime | None = None) -> QuerySet:
    return queryset.annotate(**voluntariness_annotations(as_of)).annotate(voluntariness_status=voluntariness_status_expression())


@dataclass(frozen=True)
class VoluntarinessResult:
    status: str
    reasons: list[str]

    def as_dict(self) -> dict:
        return {"status": self.status, "reasons": self.reasons}


def voluntariness_of(referral: Referral) -> VoluntarinessResult:
    """A referral's voluntariness, from the annotations of with_voluntariness()."""
    status = referral.voluntariness_status
    # Report the reasons that decide the status; lesser ones would only confuse.
    reasons = [text for flag, (level, text) in REASONS.items() if level == status and getattr(referral, flag)]
    return VoluntarinessResult(status=status, reasons=reasons)


def remained_voluntary(referral: Referral) -> bool:
    """Whether the referral's voluntariness (as annotated for the period end) is voluntary."""
    return referral.voluntariness_status == Voluntariness.VOLUNTARY


def referrals_for_list(*, filters: dict | None = None) -> QuerySet:
    """The base queryset of the referral list: what each row needs, in a fixed number of queries."""
    queryset = Referral.objects.select_related("client", "site", "provider")
    filters = filters or {}
    if filters.get("site"):
        queryset = queryset.filter(site_id=filters["site"])
    if filters.get("status"):
        queryset = queryset.filter(status=filters["status"])
    if filters.get("pathway"):
        queryset = queryset.filter(pathway=filters["pathway"])
    if filters.get("referred_after"):
        queryset = queryset.filter(referred_on__gte=filters["referred_after"])
    if filters.get("referred_before"):
        queryset = queryset.filter(referred_on__lte=filters["referred_before"])
    if filters.get("search"):
        queryset = search_referrals(queryset, filters["search"])
    return with_voluntariness(queryset).order_by("-referred_on", "-created_at", "pk")


def search_referrals(queryset: QuerySet, text: str, *, exact: bool = False) -> QuerySet:
    """The referrals of `queryset` whose client's local reference is `text` (exact) or contains it, ignoring case.

    Hand it the firewall's queryset (referrals_visible_to): it narrows what the user may already see and never
    widens it, so nobody finds a client by reference outside their own assignment.
    """
    text = text.strip()
    if not text:
        return queryset
    lookup = "client__local_reference__iexact" if exact else "client__local_reference__icontains"
    return queryset.filter(**{lookup: text})


def referral_detail() -> QuerySet:
    """The base queryset of one referral with everything under it."""
    return with_voluntariness(
        Referral.objects.select_related("client", "site", "provider", "discharge", "decline").prefetch_related(
            Prefetch("consents", queryset=ConsentRecord.objects.select_related("template")),
            "withdrawals",
            "scope_withdrawals",
            "voluntariness_checks",
        )
    )


def referral_with_provider() -> QuerySet:
    """The base queryset of one referral and its provider (for its access history and exports)."""
    return Referral.objects.select_related("provider")


def referral_with_provider_and_site() -> QuerySet:
    """The base queryset of one referral with its provider and site (for its consent's documents)."""
    return Referral.objects.select_related("provider", "site")


def opened_referral_detail(referral: Referral) -> Referral:
    """A referral the firewall opened (or its recorder just created), read again with everything under it.

    For the answer to a write on it; the opening was the logged access, so this read logs nothing.
    """
    if getattr(referral, "opened_for", None) is None:
        raise TypeError(f"Referral {referral.pk} was not opened through the firewall: open it with firewall.open_referral.")
    return referral_detail().get(pk=referral.pk)


def consent_template(template_id: int) -> ConsentTemplate | None:
    """A consent template by id, or None (templates are not client data)."""
    return ConsentTemplate.objects.filter(pk=template_id).first()


def latest_consent(referral: Referral) -> ConsentRecord | None:
    """The newest consent record still in force (not superseded)."""
    return (
        ConsentRecord.objects.filter(referral=referral, superseded_by__isnull=True)
        .select_related("template", "referral__provider", "referral__site__host_organisation")
        .order_by("-given_at", "-pk")
        .first()
    )


@dataclass(frozen=True)
class ConsentEnd:
    """When and why the consent of a referral stopped being in force."""

    on: datetime | date
    why: str  # "withdrawn" or "discharged"


def consent_end(referral: Referral) -> ConsentEnd | None:
    """The withdrawal (the current one, not a superseded one) or discharge that ended the consent, if any."""
    if referral.status == ReferralStatus.WITHDRAWN:
        withdrawal = (
            Withdrawal.objects.filter(referral=referral, superseded_by__isnull=True).order_by("-withdrawn_at", "-pk").first()
        )
        return ConsentEnd(on=withdrawal.withdrawn_at, why=ReferralStatus.WITHDRAWN) if withdrawal else None
    if referral.status == ReferralStatus.DISCHARGED:
        discharge = Discharge.objects.filter(referral=referral).first()
        return ConsentEnd(on=discharge.discharged_on, why=ReferralStatus.DISCHARGED) if discharge else None
    return None


@dataclass(frozen=True)
class ConsentState:
    """What a referral's latest consent covers now: the uses agreed, those since withdrawn, and what ended it."""

    consent: ConsentRecord | None
    agreed: list[str]
    withdrawn: list[ScopeWithdrawal]  # uses withdrawn since this consent was given, oldest first
    ended: ConsentEnd | None

    @property
    def in_force(self) -> list[str]:
        """The uses the client's consent covers now: none once the episode has ended."""
        if self.consent is None or self.ended is not None:
            return []
        taken_back = {row.scope for row in self.withdrawn}
        return [scope for scope in self.agreed if scope not in taken_back]


def consent_state(referral: Referral, consent: ConsentRecord | None = None) -> ConsentState:
    """The latest consent and what is left of it (a fixed three queries at most)."""
    consent = consent if consent is not None else latest_consent(referral)
    if consent is None:
        return ConsentState(consent=None, agreed=[], withdrawn=[], ended=consent_end(referral))
    # A use withdrawn before this consent was given was agreed again by it; only later withdrawals count.
    withdrawn = list(
        ScopeWithdrawal.objects.filter(referral=referral, withdrawn_at__gte=consent.given_at).order_by("withdrawn_at", "pk")
    )
    return ConsentState(consent=consent, agreed=list(consent.scopes), withdrawn=withdrawn, ended=consent_end(referral))


def benefits_agencies_concerned(referral: Referral) -> list[Organisation]:
    """The benefits agencies a consent export names as parties nothing is disclosed to.

    The host of the referral's site if it is a benefits agency, then every other benefits agency hosting a
    site of the same provider (the client may be known to any of them), in that order.
    """
    host_id = referral.site.host_organisation_id
    agencies = Organisation.objects.filter(kind=OrganisationKind.BENEFITS_AGENCY).filter(
        Q(pk=host_id) | Q(hosted_sites__provider_id=referral.provider_id)
    )
    return sorted(set(agencies), key=lambda agency: (agency.pk != host_id, agency.name, agency.pk))


def consent_templates_in_force(on: date | None = None) -> QuerySet:
    on = on or timezone.localdate()
    return ConsentTemplate.objects.filter(Q(effective_to__isnull=True) | Q(effective_to__gte=on), effective_from__lte=on)


def template_is_used(template: ConsentTemplate) -> bool:
    return ConsentRecord.objects.filter(template=template).exists()


def consent_template_by_id(template_id) -> ConsentTemplate | None:
    return ConsentTemplate.objects.filter(pk=template_id).first()
