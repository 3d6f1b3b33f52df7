"""The compliance report's figures, counted in the database: conditional aggregation grouped by site.

Aggregate-only access to client rows. The firewall (consent.access.firewall) decides who may see a referral
as a row; nothing here ever returns a row, an identifier or a pseudonym, only counts grouped by site and
period, and those counts leave the server only through disclosure control (report.publish). Who may ask
for a report at all is decided by reports.selectors.pilots_reportable_by, which refuses every
benefits-agency account through the firewall's own rule. So these queries read Referral directly, restricted
to the pilot's sites, instead of through referrals_visible_to, which is about rows one user may open.

Every figure is one of a fixed number of queries whatever the number of referrals: Python only adds up
per-site rows (never per-referral ones) and averages the one or two middle values of a median.
"""

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    DateTimeField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Cast, RowNumber, TruncDate
from django.utils import timezone

from colocation.models import OrganisationKind, Pilot, Site
from consent.access.models import AccessEvent, Action, Outcome
from consent.models import HowHeard, Pathway, Referral
from consent.reports.periods import Period, end_of_day, steps
from consent.selectors import Voluntariness, voluntariness_status_expression
from consent.voluntariness_flags import flag_annotations

# Shown in every report even when 0: B1 is the self-referral the pilot is about, M5 (Jobcentre Plus referred
# the person) is what the report flags.
SELF_REFERRAL_SOURCE, JOBCENTRE_SOURCE = "B1", "M5"
ALWAYS_SHOWN_SOURCES = (SELF_REFERRAL_SOURCE, JOBCENTRE_SOURCE)

# Plain counts per site, each a conditional count over the referrals received in the period.
SIMPLE_COUNTS = (
    "explicit_consent",
    "declined",
    "withdrawals",
    "withdrawals_citing_pressure",
    "felt_not_free_to_stop",
    "employment_goal_raised_by_benefits_agency",
    "intake_check_recorded",
)
ACCESS_COUNTS = ("benefits_agency_access_allowed", "benefits_agency_access_denied")
BREAKDOWNS = ("by_pathway", "by_source_of_referral", "by_how_heard", "voluntariness")


@dataclass
class Figures:
    """Raw (unsuppressed) counts for one site or for the whole pilot. Never leaves the server as it is."""

    referrals_received: int = 0
    by_pathway: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Pathway.values, 0))
    by_source_of_referral: dict[str, int] = field(default_factory=dict)
    by_how_heard: dict[str, int] = field(default_factory=lambda: dict.fromkeys(HowHeard.values, 0))
    voluntariness: dict[str, int] = field(default_factory=lambda: dict.fromkeys(Voluntariness.ALL, 0))
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SIMPLE_COUNTS + ACCESS_COUNTS, 0))
    median_days_to_consent: float | None = None
    # The sum of the record keys of the referrals each count counts (disclosure's cell key), by the path the
    # report names the cell by: ("referrals_received",), (breakdown, category) or (count name,).
    keys: dict[tuple, int] = field(default_factory=dict)

    def add_key(self, path: tuple, key_sum: int | None) -> None:
        self.keys[path] = self.keys.get(path, 0) + (key_sum or 0)

    @property
    def remained_voluntary(self) -> int:
        """Voluntary at the end of the period: the same figure as the voluntary status count, by definition."""
        return self.voluntariness[Voluntariness.VOLUNTARY]


@dataclass
class SeriesPoint:
    period: Period
    referrals_received: int = 0
    remained_voluntary: int = 0
    referrals_received_key: int = 0
    remained_voluntary_key: int = 0


@dataclass
class PilotFigures:
    """Everything the report counts, raw, for one pilot and period."""

    pilot: Pilot
    period: Period
    sites: list[Site]
    by_site: dict[int, Figures]
    total: Figures
    series: list[SeriesPoint]
    source_codes: list[str]


def referrals_in(site_ids: list[int], start: date, end: date) -> QuerySet:
    """Every referral received at these sites from start to end inclusive: no status or pathway excluded."""
    return Referral.objects.filter(site_id__in=site_ids, referred_on__gte=start, referred_on__lte=end)


def _with_flags(queryset: QuerySet, as_of) -> QuerySet:
    """The voluntariness flags and status of consent.selectors (the one rule), as aliases for aggregation.

    The flags come from each referral's row of VoluntarinessFlags (one join, kept exact with the records and
    recounted by the recount_voluntariness_flags command), not from an EXISTS per fact over every record.
    """
    return queryset.alias(**flag_annotations(as_of)).alias(vstatus=voluntariness_status_expression())


def _per_site_counts(base: QuerySet, period: Period, as_of: datetime) -> list[dict]:
    """One row per site and voluntariness status: received, pathway, how heard and the plain counts.

    One GROUP BY over the period's referrals: each referral's status is worked out once and grouped on,
    and the other figures are conditional counts in the same pass.
    """
    queryset = _with_flags(base, as_of)
    conditional = {
        "explicit_consent": Q(v_no_consent=False),
        "declined": Q(voluntariness_flags__declined_on__lte=period.end),
        "withdrawals": Q(voluntariness_flags__withdrawal_at__lte=as_of),
        "withdrawals_citing_pressure": Q(v_pressured_withdrawal=True),
        "felt_not_free_to_stop": Q(v_not_free_to_stop=True),
        "employment_goal_raised_by_benefits_agency": Q(v_goal_by_agency=True),
        "intake_check_recorded": Q(v_no_intake_check=False),
    }
    conditions = {"referrals_received": None}
    conditions.update({f"pathway:{p}": Q(pathway=p) for p in Pathway.values})
    conditions.update({f"how_heard:{h}": Q(how_heard=h) for h in HowHeard.values})
    conditions.update(conditional)
    # Each count with the sum of its referrals' record keys, the cell key of disclosure control: same pass.
    aggregates = {name: Count("pk", filter=condition) for name, condition in conditions.items()}
    aggregates.update({f"key:{name}": Sum("record_key", filter=condition) for name, condition in conditions.items()})
    grouped = queryset.values("site_id", v_status=F("vstatus")).annotate(**aggregates).order_by("site_id", "v_status")
    return list(grouped)


def _per_site_sources(base: QuerySet) -> list[dict]:
    return list(
        base.values("site_id", "source_of_referral")
        .annotate(n=Count("pk"), key=Sum("record_key"))
        .order_by("site_id", "source_of_referral")
    )


def _is_middle(rank: int, n: int) -> bool:
    """Whether the rank-th of n sorted values is one of the middle ones a median is taken from."""
    return n <= 2 * rank <= n + 2


def _medians(base: QuerySet, as_of: datetime) -> tuple[dict[int, float], float | None]:
    """Median days from referral to consent per site and overall, from the middle rows picked in SQL.

    Days run from the referral to the day (in the clinic's time zone) of its earliest consent in force at
    the end of the period. Window functions rank the consented referrals per site and overall; only the
    one or two middle rows of each ranking come back (at most 2 per site plus 2), and are averaged here.
    """
    # The earliest consent in force: at or before the explicit one counted, so within the period too.
    first_consent = TruncDate("voluntariness_flags__consent_at", tzinfo=timezone.get_current_timezone())
    order = [F("days").asc(), F("pk").asc()]
    rows = (
        _with_flags(base, as_of)
        .filter(v_no_consent=False)
        .annotate(consent_day=first_consent)
        .annotate(days=ExpressionWrapper(F("consent_day") - F("referred_on"), output_field=DurationField()))
        .annotate(
            site_rank=Window(RowNumber(), partition_by=[F("site_id")], order_by=order),
            site_n=Window(Count("pk"), partition_by=[F("site_id")]),
            all_rank=Window(RowNumber(), order_by=order),
            all_n=Window(Count("pk")),
        )
        .annotate(twice_site_rank=F("site_rank") * 2, twice_all_rank=F("all_rank") * 2)
        .filter(
            Q(twice_site_rank__gte=F("site_n"), twice_site_rank__lte=F("site_n") + 2)
            | Q(twice_all_rank__gte=F("all_n"), twice_all_rank__lte=F("all_n") + 2)
        )
        .values("site_id", "days", "site_rank", "site_n", "all_rank", "all_n")
        # Not in Referral's default order: the middle rows are picked, not listed, and that sort cost a pass.
        .order_by()
    )
    by_site, overall = defaultdict(list), []
    for row in rows:
        if _is_middle(row["site_rank"], row["site_n"]):
            by_site[row["site_id"]].append(row["days"].days)
        if _is_middle(row["all_rank"], row["all_n"]):
            overall.append(row["days"].days)
    medians = {site_id: sum(days) / len(days) for site_id, days in by_site.items()}
    return medians, (sum(overall) / len(overall) if overall else None)


def _benefits_agency_events(pilot_site_ids: list[int], provider_ids: list[int], host_ids: list[int], period: Period) -> QuerySet:
    """Access events by benefits-agency accounts in the period that concern this pilot.

    Those about a referral at one of the pilot's sites, and those about no referral (a refused list) by an
    agency hosting one of the pilot's sites. Taken from the chains of the pilot's providers.
    """
    start = timezone.make_aware(datetime.combine(period.start, time.min))
    # EXISTS on the event's own referral (its primary key), not IN over every referral of the pilot: a list of
    # that size overflows work_mem at national scale and is searched per event.
    at_pilot_site = Exists(Referral.objects.filter(pk=OuterRef("referral_id"), site_id__in=pilot_site_ids))
    return AccessEvent.objects.filter(
        at_pilot_site | Q(referral_id__isnull=True, actor_organisation_id__in=host_ids),
        chain_id__in=provider_ids,
        actor_organisation_kind=OrganisationKind.BENEFITS_AGENCY,
        occurred_at__gte=start,
        occurred_at__lte=end_of_day(period.end),
    ).exclude(
        # Signing in and out is logged on the co-located providers' chains too, but it touches no client data:
        # a work coach who signs in to read the list of sites has not reached a client.
        action__in=(Action.SIGN_IN, Action.SIGN_IN_FAILED, Action.SIGN_OUT)
    )


def _attempt_counts() -> dict:
    """Attempts, not events: a refused list is written on each co-located provider's chain, once per request."""
    attempt = Case(When(request_id="", then=Cast("id", CharField())), default=F("request_id"), output_field=CharField())
    return {
        "benefits_agency_access_allowed": Count(attempt, distinct=True, filter=Q(outcome=Outcome.ALLOWED)),
        "benefits_agency_access_denied": Count(attempt, distinct=True, filter=~Q(outcome=Outcome.ALLOWED)),
    }


def _access_per_site(events: QuerySet) -> list[dict]:
    site_of = Referral.objects.filter(pk=OuterRef("referral_id")).order_by().values("site_id")[:1]
    return list(
        events.filter(referral_id__isnull=False)
        .annotate(event_site=Subquery(site_of))
        .values("event_site")
        .annotate(**_attempt_counts())
        .order_by("event_site")
    )


def _series(pilot: Pilot, site_ids: list[int], period: Period) -> list[SeriesPoint]:
    """Referrals received and remained voluntary per month or quarter, from the pilot's start to the period's end.

    Only whole steps (each clipped to the pilot's dates) that end by the period's end: every point is itself a
    standard period, the same cells as that period's own report, never a window of its own. Each point's
    voluntariness is as it stood at the end of that month or quarter: one query, the status computed against
    a per-row `as of` picked by the row's bucket.
    """
    buckets = [b for b in steps(pilot.starts_on, pilot.ends_on, pilot.cadence) if b.end <= period.end]
    if not buckets:
        return []
    label = Case(
        *[When(referred_on__gte=b.start, referred_on__lte=b.end, then=Value(b.label)) for b in buckets],
        output_field=CharField(),
    )
    as_of = Case(
        *[When(referred_on__gte=b.start, referred_on__lte=b.end, then=Value(end_of_day(b.end))) for b in buckets],
        output_field=DateTimeField(),
    )
    base = referrals_in(site_ids, buckets[0].start, buckets[-1].end).alias(bucket=label, bucket_as_of=as_of)
    rows = (
        _with_flags(base, F("bucket_as_of"))
        .values(period=F("bucket"), v_status=F("vstatus"))
        .annotate(n=Count("pk"), key=Sum("record_key"))
        .order_by("period")
    )
    points = {b.label: SeriesPoint(period=b) for b in buckets}
    for row in rows:
        point = points[row["period"]]
        point.referrals_received += row["n"]
        point.referrals_received_key += row["key"] or 0
        if row["v_status"] == Voluntariness.VOLUNTARY:
            point.remained_voluntary += row["n"]
            point.remained_voluntary_key += row["key"] or 0
    return list(points.values())


# The report's planner settings, for the rest of its transaction (the benchmark's bare SQL runs with the same).
# JIT off: the queries are wide, so their estimated cost crosses jit_above_cost on any real pilot and PostgreSQL
# spent seconds compiling what then ran in well under one (3.9 s of JIT for 0.5 s of execution on 16,000
# referrals). work_mem: the medians sort a pilot-year of referrals twice; at the default 4 MB a national pilot's
# sorts spill to disk.
REPORT_PLANNER_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL work_mem = '64MB'")


def _without_jit() -> None:
    """Apply REPORT_PLANNER_SETTINGS for the rest of this transaction (PostgreSQL only)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for statement in REPORT_PLANNER_SETTINGS:
                cursor.execute(statement)


def _add_site_counts(by_site: dict[int, Figures], rows: list[dict]) -> None:
    """At most four rows per site (one per status): added up per site, never per referral."""
    for row in rows:
        figures = by_site[row["site_id"]]
        figures.referrals_received += row["referrals_received"]
        figures.add_key(("referrals_received",), row["key:referrals_received"])
        figures.voluntariness[row["v_status"]] = row["referrals_received"]
        figures.add_key(("voluntariness", row["v_status"]), row["key:referrals_received"])
        for p in Pathway.values:
            figures.by_pathway[p] += row[f"pathway:{p}"]
            figures.add_key(("by_pathway", p), row[f"key:pathway:{p}"])
        for h in HowHeard.values:
            figures.by_how_heard[h] += row[f"how_heard:{h}"]
            figures.add_key(("by_how_heard", h), row[f"key:how_heard:{h}"])
        for name in SIMPLE_COUNTS:
            figures.counts[name] += row[name]
            figures.add_key((name,), row[f"key:{name}"])


def _site_totals(by_site: dict[int, Figures], source_codes: list[str]) -> Figures:
    """The whole pilot's figures from its sites' (benefits-agency attempts aside: those are counted once)."""
    total = Figures(by_source_of_referral=dict.fromkeys(source_codes, 0))
    # Adding up per-site rows (a handful), never referrals.
    for figures in by_site.values():
        total.referrals_received += figures.referrals_received
        for breakdown in BREAKDOWNS:
            for key, n in getattr(figures, breakdown).items():
                getattr(total, breakdown)[key] += n
        for name in SIMPLE_COUNTS:
            total.counts[name] += figures.counts[name]
        # Sums of record keys add up over sites as the counts do (the cell key is taken modulo later).
        for path, key_sum in figures.keys.items():
            total.add_key(path, key_sum)
    return total


@transaction.atomic
def pilot_figures(pilot: Pilot, period: Period) -> PilotFigures:
    """Every raw figure of the report for one pilot and period, per site and in total."""
    _without_jit()
    sites = list(pilot.sites.select_related("provider", "host_organisation").order_by("name", "pk"))
    site_ids = [s.pk for s in sites]
    provider_ids = sorted({s.provider_id for s in sites})
    host_ids = sorted({s.host_organisation_id for s in sites})
    as_of = end_of_day(period.end)
    base = referrals_in(site_ids, period.start, period.end)

    by_site = {s.pk: Figures() for s in sites}
    _add_site_counts(by_site, _per_site_counts(base, period, as_of))
    sources = _per_site_sources(base)
    seen = sorted({row["source_of_referral"] for row in sources} - set(ALWAYS_SHOWN_SOURCES))
    source_codes = [*ALWAYS_SHOWN_SOURCES, *seen]
    for figures in by_site.values():
        figures.by_source_of_referral = dict.fromkeys(source_codes, 0)
    for row in sources:
        by_site[row["site_id"]].by_source_of_referral[row["source_of_referral"]] = row["n"]
        by_site[row["site_id"]].add_key(("by_source_of_referral", row["source_of_referral"]), row["key"])
    site_medians, overall_median = _medians(base, as_of)
    for site_id, median in site_medians.items():
        by_site[site_id].median_days_to_consent = median

    events = _benefits_agency_events(site_ids, provider_ids, host_ids, period)
    for row in _access_per_site(events):
        if row["event_site"] in by_site:
            for name in ACCESS_COUNTS:
                by_site[row["event_site"]].counts[name] = row[name]

    total = _site_totals(by_site, source_codes)
    total.median_days_to_consent = overall_median
    # Attempts counted once across sites, including those aimed at no referral (refused lists).
    total.counts.update(events.aggregate(**_attempt_counts()))

    return PilotFigures(
        pilot=pilot,
        period=period,
        sites=sites,
        by_site=by_site,
        total=total,
        series=_series(pilot, site_ids, period),
        source_codes=source_codes,
    )
