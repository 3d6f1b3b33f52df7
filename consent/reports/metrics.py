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
    DateField,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    When,
    Window,
)
from django.db.models.functions import Cast, RowNumber, TruncDate, TruncMonth
from django.utils import timezone

from colocation.models import OrganisationKind, Pilot, Site
from consent.access.models import AccessEvent, Action, Outcome
from consent.models import HowHeard, Pathway, Referral
from consent.reports.lattice import PilotLattice, pilot_periods
from consent.reports.periods import PILOT_TO_DATE, Period, end_of_day, period_of_pilot, steps
from consent.selectors import Voluntariness, status_from_flags
from consent.voluntariness_flags import RULE_FLAG_TIMES, flag_annotations, mandated_pathway_flag

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
    # Every report of the pilot, for disclosure control across reports (None: this report's cells alone).
    lattice: PilotLattice | None = None


def referrals_in(site_ids: list[int], start: date, end: date) -> QuerySet:
    """Every referral received at these sites from start to end inclusive: no status or pathway excluded."""
    return Referral.objects.filter(site_id__in=site_ids, referred_on__gte=start, referred_on__lte=end)


def _with_flags(queryset: QuerySet, as_of) -> QuerySet:
    """The voluntariness flags of consent.selectors (the one rule) as at `as_of`, as aliases for filtering.

    The flags come from each referral's row of VoluntarinessFlags (one join, kept exact with the records and
    recounted by the recount_voluntariness_flags command), not from an EXISTS per fact over every record.
    """
    return queryset.alias(**flag_annotations(as_of))


# Each plain count as at a period's end: the flags-row time that must have come by then.
COUNT_TIMES = {
    "explicit_consent": "explicit_consent_at",
    "declined": "declined_on",
    "withdrawals": "withdrawal_at",
    "withdrawals_citing_pressure": "pressured_withdrawal_at",
    "felt_not_free_to_stop": "not_free_to_stop_at",
    "employment_goal_raised_by_benefits_agency": "goal_by_agency_at",
    "intake_check_recorded": "intake_check_at",
}
FLAG_TIMES = tuple(sorted({time for time, _ in RULE_FLAG_TIMES.values()} | set(COUNT_TIMES.values())))


def _month_of_flag(field: str, ends_on: date) -> Case:
    """The calendar month (in the clinic's time zone) a flag's time fell in, or null if none by the pilot's end.

    "Held at the end of a month, quarter or year" is then "its month is at or before that period's last month":
    the pilot's last day clips every period that holds it, and nothing after it is counted at all.
    """
    path = f"voluntariness_flags__{field}"
    if field.endswith("_on"):
        return Case(When(**{f"{path}__lte": ends_on}, then=TruncMonth(path)), default=None, output_field=DateField())
    month_of = TruncMonth(path, output_field=DateField(), tzinfo=timezone.get_current_timezone())
    return Case(When(**{f"{path}__lte": end_of_day(ends_on)}, then=month_of), default=None, output_field=DateField())


def _flag_rows(base: QuerySet, ends_on: date) -> list[dict]:
    """Referrals grouped by site, month received, mandated pathway and the month each flag's time fell in.

    Referrals are grouped by when their facts happened, not by status: a row's flags as at the end of any period
    then follow from its months alone (_as_at), so one pass serves every period of the pilot.
    """
    months = {f"m|{time}": _month_of_flag(time, ends_on) for time in FLAG_TIMES}
    return list(
        base.annotate(month_received=TruncMonth("referred_on"), mandated=mandated_pathway_flag(), **months)
        .values("site_id", "month_received", "mandated", *months)
        .annotate(n=Count("pk"), key=Sum("record_key"))
        .order_by()
    )


def _kind_rows(base: QuerySet) -> list[dict]:
    """Per site, month received and source: what the referrals are (received, pathway, how heard), with key sums.

    One pass for every count of what referrals are: a source of referral is a group, the rest conditional counts.
    """
    conditions = {"referrals_received": None}
    conditions.update({f"by_pathway:{p}": Q(pathway=p) for p in Pathway.values})
    conditions.update({f"by_how_heard:{h}": Q(how_heard=h) for h in HowHeard.values})
    aggregates = {name: Count("pk", filter=condition) for name, condition in conditions.items()}
    aggregates.update({f"key|{name}": Sum("record_key", filter=condition) for name, condition in conditions.items()})
    return list(
        base.annotate(month_received=TruncMonth("referred_on"))
        .values("site_id", "month_received", "source_of_referral")
        .annotate(**aggregates)
        .order_by()
    )


def _first_day(value) -> date:
    """TruncMonth gives a date on both databases; a datetime only where a backend widens it."""
    return value.date() if isinstance(value, datetime) else value


def _level_ends(first_day: date, ends_on: date, to_date: date) -> dict[str, date]:
    """For a month received, the last month of its month, quarter, year and the pilot to date, clipped."""
    last = ends_on.replace(day=1)
    quarter_end = date(first_day.year, 3 * ((first_day.month - 1) // 3) + 3, 1)
    return {
        "month": first_day,
        "quarter": min(quarter_end, last),
        "year": min(date(first_day.year, 12, 1), last),
        PILOT_TO_DATE: min(to_date, ends_on).replace(day=1),
    }


def _add_flag_row(lattice: PilotLattice, row: dict, ends: dict[str, date]) -> None:
    """One group's counts as at the end of every level: its flags, status and plain counts."""
    site_id, first_day = row["site_id"], _first_day(row["month_received"])
    for level, last_month in ends.items():
        came = {time: row[f"m|{time}"] is not None and _first_day(row[f"m|{time}"]) <= last_month for time in FLAG_TIMES}
        flags = {name: came[time] == reached for name, (time, reached) in RULE_FLAG_TIMES.items()}
        flags["v_mandated_pathway"] = bool(row["mandated"])
        lattice.add(site_id, first_day, (level, "voluntariness", status_from_flags(flags)), row["n"], row["key"])
        for name, fact in COUNT_TIMES.items():
            if came[fact]:
                lattice.add(site_id, first_day, (level, name), row["n"], row["key"])


def lattice_of_pilot(pilot: Pilot, site_ids: list[int], today: date) -> PilotLattice:
    """Every report a reader may ask for of this pilot, counted at once: two grouped queries, whatever its size."""
    periods = pilot_periods(pilot.starts_on, pilot.ends_on, today)
    lattice = PilotLattice(periods=periods, site_ids=site_ids)
    base = referrals_in(site_ids, pilot.starts_on, pilot.ends_on)
    sources = set()
    for row in _kind_rows(base):
        site_id, first_day, source = row.pop("site_id"), _first_day(row.pop("month_received")), row.pop("source_of_referral")
        sources.add(source)
        lattice.add(
            site_id, first_day, ("by_source_of_referral", source), row["referrals_received"], row["key|referrals_received"]
        )
        for name, n in row.items():
            if not name.startswith("key|"):
                lattice.add(site_id, first_day, tuple(name.split(":")), n, row[f"key|{name}"])
    lattice.source_codes = [*ALWAYS_SHOWN_SOURCES, *sorted(sources - set(ALWAYS_SHOWN_SOURCES))]
    ends: dict[date, dict] = {}
    for row in _flag_rows(base, pilot.ends_on):
        first_day = _first_day(row["month_received"])
        if first_day not in ends:
            ends[first_day] = _level_ends(first_day, pilot.ends_on, today)
        _add_flag_row(lattice, row, ends[first_day])
    return lattice


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


def figures_of(cells: dict[tuple, list[int]], source_codes: list[str]) -> Figures:
    """A site's Figures from its lattice cells (path -> [count, key sum]) in one period."""
    figures = Figures(by_source_of_referral=dict.fromkeys(source_codes, 0))
    for path, (n, key_sum) in cells.items():
        figures.add_key(path, key_sum)
        if path == ("referrals_received",):
            figures.referrals_received = n
        elif path[0] in BREAKDOWNS:
            getattr(figures, path[0])[path[1]] = n
        else:
            figures.counts[path[0]] = n
    return figures


def series_of(pilot: Pilot, lattice: PilotLattice, period: Period) -> list[SeriesPoint]:
    """Referrals received and remained voluntary per month or quarter, from the pilot's start to the period's end.

    Only whole steps (each clipped to the pilot's dates) that end by the period's end: every point is itself a
    standard period, the same cells of the lattice as that period's own report, as at its own end.
    """
    points = []
    for bucket in steps(pilot.starts_on, pilot.ends_on, pilot.cadence):
        if bucket.end > period.end:
            break
        point = SeriesPoint(period=bucket)
        for site_id in lattice.site_ids:
            cells = lattice.counts(lattice.period_of(bucket), site_id)
            n, key_sum = cells.get(("referrals_received",), (0, 0))
            point.referrals_received += n
            point.referrals_received_key += key_sum
            n, key_sum = cells.get(("voluntariness", Voluntariness.VOLUNTARY), (0, 0))
            point.remained_voluntary += n
            point.remained_voluntary_key += key_sum
        points.append(point)
    return points


def site_totals(by_site: dict[int, Figures], source_codes: list[str]) -> Figures:
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
def pilot_figures(pilot: Pilot, period: Period, *, today: date | None = None) -> PilotFigures:
    """Every raw figure of the report for one pilot and period, per site and in total, with the pilot's lattice.

    The period's counts are read from the lattice of every report of the pilot (lattice_of_pilot), which
    disclosure control audits as a whole: the same cells whichever report is asked for.
    """
    _without_jit()
    today = today or timezone.localdate()
    period = period_of_pilot(pilot, period, today=today)
    sites = list(pilot.sites.select_related("provider", "host_organisation").order_by("name", "pk"))
    site_ids = [s.pk for s in sites]
    provider_ids = sorted({s.provider_id for s in sites})
    host_ids = sorted({s.host_organisation_id for s in sites})
    lattice = lattice_of_pilot(pilot, site_ids, today)
    in_lattice = lattice.period_of(period)
    by_site = {s.pk: figures_of(lattice.counts(in_lattice, s.pk), lattice.source_codes) for s in sites}
    site_medians, overall_median = _medians(referrals_in(site_ids, period.start, period.end), end_of_day(period.end))
    for site_id, median in site_medians.items():
        by_site[site_id].median_days_to_consent = median

    events = _benefits_agency_events(site_ids, provider_ids, host_ids, period)
    for row in _access_per_site(events):
        if row["event_site"] in by_site:
            for name in ACCESS_COUNTS:
                by_site[row["event_site"]].counts[name] = row[name]

    total = site_totals(by_site, lattice.source_codes)
    total.median_days_to_consent = overall_median
    # Attempts counted once across sites, including those aimed at no referral (refused lists).
    total.counts.update(events.aggregate(**_attempt_counts()))

    return PilotFigures(
        pilot=pilot,
        period=period,
        sites=sites,
        by_site=by_site,
        total=total,
        series=series_of(pilot, lattice, period),
        source_codes=lattice.source_codes,
        lattice=lattice,
    )
