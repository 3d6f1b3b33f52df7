"""The compliance report's figures: the pilot's kept lattice cells (consent.reports.cells) and the access attempts.

Aggregate-only access to client rows. The firewall (consent.access.firewall) decides who may see a referral
as a row; nothing here ever returns a row, an identifier or a pseudonym, only counts grouped by site and
period, and those counts leave the server only through disclosure control (report.publish). Who may ask
for a report at all is decided by reports.selectors.pilots_reportable_by, which refuses every
benefits-agency account through the firewall's own rule. So these queries read counts per pilot, site and
month directly, instead of through referrals_visible_to, which is about rows one user may open.

Every figure is one of a fixed number of queries whatever the number of referrals: Python only adds up
per-site and per-month cells (never per-referral rows), and takes a median from counts of days.
"""

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time

from django.db import connection, transaction
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    When,
)
from django.db.models.functions import Cast
from django.utils import timezone

from colocation.models import OrganisationKind, Pilot, Site
from consent.access.models import AccessEvent, Action, Outcome
from consent.lattice_cells import path_of
from consent.models import HowHeard, Pathway, Referral
from consent.reports.cells import cells_in_force, consent_days_in
from consent.reports.lattice import PilotLattice, pilot_periods
from consent.reports.periods import Period, end_of_day, period_of_pilot, steps
from consent.selectors import Voluntariness

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
# Django works a choices class's values out again on each use; the audit makes Figures by the hundred.
PATHWAYS, WAYS_OF_HEARING = tuple(Pathway.values), tuple(HowHeard.values)


@dataclass
class Figures:
    """Raw (unsuppressed) counts for one site or for the whole pilot. Never leaves the server as it is."""

    referrals_received: int = 0
    by_pathway: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PATHWAYS, 0))
    by_source_of_referral: dict[str, int] = field(default_factory=dict)
    by_how_heard: dict[str, int] = field(default_factory=lambda: dict.fromkeys(WAYS_OF_HEARING, 0))
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


def lattice_of(pilot: Pilot, site_ids: list[int], today: date, cells: list[tuple]) -> PilotLattice:
    """The lattice of every report of the pilot from its cells' rows (site, month, path, count, key sum).

    As counting from the records always gave it: every site and month with referrals has a cell for every
    pathway and every way of hearing, 0 or not; other cells only where something is counted. Rows come one per
    cell (the kept cells are unique), so each is set, not added to.
    """
    lattice = PilotLattice(periods=pilot_periods(pilot.starts_on, pilot.ends_on, today), site_ids=site_ids)
    lattice.rows_digest = hashlib.sha256(repr(cells).encode()).hexdigest()
    every_kind = [("by_pathway", p) for p in PATHWAYS] + [("by_how_heard", h) for h in WAYS_OF_HEARING]
    paths: dict[str, tuple] = {}  # a few hundred distinct names among thousands of rows
    sources = set()
    for site_id, first_day, name, n, key_sum in cells:
        path = paths.get(name)
        if path is None:
            path = paths[name] = path_of(name)
        atom = lattice.atoms[(site_id, first_day)]
        if path[0] == "by_source_of_referral":
            sources.add(path[1])
        elif path == ("referrals_received",):
            for kind in every_kind:
                atom.setdefault(kind, [0, 0])
        atom[path] = [n, key_sum]
    lattice.source_codes = [*ALWAYS_SHOWN_SOURCES, *sorted(sources - set(ALWAYS_SHOWN_SOURCES))]
    return lattice


def _median(histogram: dict[int, int]) -> float | None:
    """The median of values given as value -> how many: the middle one, or the mean of the middle two."""
    total = sum(histogram.values())
    if not total:
        return None
    wanted = sorted({(total + 1) // 2, total // 2 + 1})
    middle, seen = [], 0
    for value in sorted(histogram):
        seen += histogram[value]
        while wanted and wanted[0] <= seen:
            middle.append(value)
            wanted.pop(0)
    return sum(middle) / len(middle)


def _medians(rows: list[tuple[int, int, int]]) -> tuple[dict[int, float], float | None]:
    """Median days from referral to consent per site and overall, from (site, days, referrals) rows.

    Days run from the referral to the day (in the clinic's time zone) of its earliest consent in force, for the
    referrals received in the period and explicitly consented by its end (the kept cells' CONSENT_DAYS).
    """
    by_site: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    overall: dict[int, int] = defaultdict(int)
    for site_id, days, n in rows:
        by_site[site_id][days] += n
        overall[days] += n
    return {site_id: _median(histogram) for site_id, histogram in by_site.items()}, _median(overall)


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

    The period's counts are read from the lattice of every report of the pilot (its kept cells), which
    disclosure control audits as a whole: the same cells whichever report is asked for.
    """
    _without_jit()
    today = today or timezone.localdate()
    period = period_of_pilot(pilot, period, today=today)
    sites = list(pilot.sites.select_related("provider", "host_organisation").order_by("name", "pk"))
    site_ids = [s.pk for s in sites]
    provider_ids = sorted({s.provider_id for s in sites})
    host_ids = sorted({s.host_organisation_id for s in sites})
    lattice = lattice_of(pilot, site_ids, today, cells_in_force(pilot, site_ids))
    in_lattice = lattice.period_of(period)
    by_site = {s.pk: figures_of(lattice.counts(in_lattice, s.pk), lattice.source_codes) for s in sites}
    site_medians, overall_median = _medians(consent_days_in(pilot, in_lattice))
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
