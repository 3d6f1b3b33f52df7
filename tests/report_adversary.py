"""A reader who wants a withheld count back, and random pilot worlds to try it on (used by the property tests).

`pilot_world` builds a pilot's referrals in Python (no database), each with its site, month, pathway, source,
how heard, voluntariness status, flags and a random record key, exactly as consent.Referral stores them.
`all_reports` publishes, through the real report.publish, every report a reader may ask for: every month,
quarter and year the pilot touches, clipped to its dates, and the pilot to date. Everything in such a world
happens on the day of the referral, so the counts as at the end of a period (consent, checks, withdrawals)
add up across periods exactly: the relations a reader can count on in any pilot (they only grow) are as tight
here as they can ever be.

`Adversary` is the reader: see its docstring for the strategy.
"""

import math
import random
from dataclasses import dataclass, field
from datetime import date
from types import SimpleNamespace

from colocation.models import Site
from consent.reports.disclosure import STAR, counts_published_as
from consent.reports.lattice import LEVELS, PilotLattice, pilot_periods
from consent.reports.metrics import ACCESS_COUNTS, SIMPLE_COUNTS, PilotFigures, figures_of, series_of, site_totals
from consent.reports.periods import Period, month, quarter, year
from consent.reports.report import publish
from consent.selectors import Voluntariness

PATHWAYS = ("self_referral", "signposted_by_work_coach", "mandated_assessment", "benefit_condition")
SOURCES = ("B1", "M5", "A1")
HOW = ("work_coach_suggested", "leaflet_or_poster", "gp", "friend_or_family", "found_themselves", "other")
BREAKDOWNS = {
    "by_pathway": PATHWAYS,
    "by_source_of_referral": SOURCES,
    "by_how_heard": HOW,
    "voluntariness": Voluntariness.ALL,
}
FLAGS = tuple(SIMPLE_COUNTS)
INF = float("inf")
# Counts of what referrals are (received, pathway, source, how heard) add up exactly across periods. Counts as at
# the end of a period (consent, checks, declines, withdrawals) only grow: a quarter's is at least the sum of its
# months'. Voluntariness statuses as at the end of a period have no such relation (a status can change).
ADDS_UP = {"referrals_received", *(f"{b}/{c}" for b, cats in BREAKDOWNS.items() if b != "voluntariness" for c in cats)}
GROWS = set(FLAGS)


@dataclass
class Referral:
    site: int
    month: tuple[int, int]
    pathway: str
    source: str
    how: str
    status: str
    flags: frozenset
    key: int


@dataclass
class World:
    sites: list[int]
    months: list[tuple[int, int]]
    cadence: str
    referrals: list[Referral] = field(default_factory=list)

    @property
    def starts_on(self) -> date:
        return date(*self.months[0], 1)

    @property
    def ends_on(self) -> date:
        return month(*self.months[-1]).end


def _pick(rng: random.Random, weighted: dict):
    return rng.choices(list(weighted), weights=list(weighted.values()))[0]


def pilot_world(rng: random.Random, *, sites: int, months: int, start: tuple[int, int], cadence: str, busy: float) -> World:
    """A pilot of `sites` sites over `months` calendar months from `start`; about `busy` x a small site's referrals."""
    first_year, first_month = start
    calendar = [(first_year + (first_month - 1 + i) // 12, (first_month - 1 + i) % 12 + 1) for i in range(months)]
    world = World(sites=list(range(1, sites + 1)), months=calendar, cadence=cadence)
    # Small pilots: many months with a handful of referrals, some with none, a few busier.
    sizes = {0: 3, 1: 3, 2: 3, 3: 2, 4: 2, 5: 2, 6: 1, 7: 1, 8: 2, 9: 2, 10: 1, 12: 1, 15: 1, 20: 1, 30: 1}
    for site in world.sites:
        for when in calendar:
            for _ in range(round(_pick(rng, sizes) * busy)):
                pathway = _pick(rng, {"self_referral": 12, "signposted_by_work_coach": 4, "mandated_assessment": 1,
                                      "benefit_condition": 1})  # fmt: skip
                status = _pick(rng, {"voluntary": 10, "concern": 2, "not_voluntary": 1, "unknown": 3})
                if pathway in ("mandated_assessment", "benefit_condition") and status != "unknown":
                    status = "not_voluntary"
                flags = set()
                if status != "unknown" or rng.random() < 0.3:
                    flags.add("explicit_consent")
                if status != "unknown" or ("explicit_consent" in flags and rng.random() < 0.5):
                    flags.add("intake_check_recorded")
                if status == "unknown" and "explicit_consent" not in flags and rng.random() < 0.3:
                    flags.add("declined")
                if "explicit_consent" in flags and rng.random() < 0.15:
                    flags.add("withdrawals")
                    if status == "concern" and rng.random() < 0.5:
                        flags.add("withdrawals_citing_pressure")
                if status == "concern" and rng.random() < 0.4:
                    flags.add("felt_not_free_to_stop")
                if status in ("concern", "not_voluntary") and rng.random() < 0.3:
                    flags.add("employment_goal_raised_by_benefits_agency")
                world.referrals.append(
                    Referral(
                        site=site, month=when, pathway=pathway,
                        source=_pick(rng, {"B1": 10, "M5": 1, "A1": 2}),
                        how=_pick(rng, {h: w for h, w in zip(HOW, (3, 3, 2, 2, 4, 1), strict=True)}),
                        status=status, flags=frozenset(flags), key=rng.randrange(256),
                    )
                )  # fmt: skip
    return world


def lattice_of(world: World) -> PilotLattice:
    """The pilot's lattice as consent.lattice_cells and consent.reports.cells count it, from the world's referrals (no database)."""
    lattice = PilotLattice(periods=pilot_periods(world.starts_on, world.ends_on, world.ends_on), site_ids=world.sites,
                           source_codes=list(SOURCES))  # fmt: skip
    for r in world.referrals:
        first_day = date(*r.month, 1)
        paths = [("referrals_received",), ("by_pathway", r.pathway), ("by_source_of_referral", r.source),
                 ("by_how_heard", r.how)]  # fmt: skip
        # Everything happens on the day of the referral: as at the end of any period holding it, the same.
        for level in LEVELS:
            paths += [(level, "voluntariness", r.status), *((level, flag) for flag in r.flags)]
        for path in paths:
            lattice.add(r.site, first_day, path, 1, r.key)
    return lattice


def standard_periods(world: World) -> list[Period]:
    """Every period a reader may ask for: months, quarters and years the pilot touches, clipped, and the pilot."""
    wanted = []
    for y, m in world.months:
        wanted += [month(y, m), quarter(y, (m - 1) // 3 + 1), year(y)]
    clipped = []
    for p in dict.fromkeys(wanted):
        clipped.append(Period(p.label, max(p.start, world.starts_on), min(p.end, world.ends_on)))
    clipped.append(Period("pilot", world.starts_on, world.ends_on))
    return clipped


def months_of(world: World, period: Period) -> frozenset:
    return frozenset(m for m in world.months if period.start <= date(*m, 1) <= period.end)


def figures_for(world: World, period: Period, lattice: PilotLattice | None = None) -> PilotFigures:
    """The report's raw figures for one period, assembled from the lattice as metrics.pilot_figures does."""
    lattice = lattice or lattice_of(world)
    in_lattice = lattice.period_of(period)
    by_site = {s: figures_of(lattice.counts(in_lattice, s), lattice.source_codes) for s in world.sites}
    total = site_totals(by_site, lattice.source_codes)
    for figures in (*by_site.values(), total):
        figures.median_days_to_consent = 1.0 if figures.counts["explicit_consent"] else None
    sites = [
        SimpleNamespace(pk=s, name=f"Site {s}", provider=SimpleNamespace(name="Provider"), provider_id=1,
                        separation_last_reviewed=date(2026, 1, 1), **dict.fromkeys(Site.SEPARATION_FIELDS, True))
        for s in world.sites
    ]  # fmt: skip
    pilot = SimpleNamespace(pk=1, name="Pilot", cadence=world.cadence, starts_on=world.starts_on, ends_on=world.ends_on)
    return PilotFigures(pilot=pilot, period=period, sites=sites, by_site=by_site, total=total,
                        series=series_of(pilot, lattice, period), source_codes=list(SOURCES), lattice=lattice)  # fmt: skip


def all_reports(world: World) -> list[dict]:
    lattice = lattice_of(world)
    return [publish(figures_for(world, period, lattice), {1: True}) for period in standard_periods(world)]


def true_count(world: World, months: frozenset, scope, metric: str) -> int:
    chosen = [r for r in world.referrals if r.month in months and (scope == "total" or r.site == scope)]
    if metric == "referrals_received":
        return len(chosen)
    if "/" in metric:
        breakdown, category = metric.split("/")
        attribute = {"by_pathway": "pathway", "by_source_of_referral": "source", "by_how_heard": "how",
                     "voluntariness": "status"}[breakdown]  # fmt: skip
        return sum(getattr(r, attribute) == category for r in chosen)
    if metric in ACCESS_COUNTS:
        return 0
    return sum(metric in r.flags for r in chosen)


class Adversary:
    """A reader with every report of a pilot, who knows exactly how they are made but not the record keys.

    Strategy. Every count of every report is a variable, named by (the months it covers, the site or "total",
    the metric); a count published in several reports, or one set of referrals reached by two periods (a
    quarter clipped to one month of the pilot is that month), is one variable. The reader starts each
    variable at what its publication allows: a published 0 is exactly 0; a "*" is at least 1 (a count of 1-7
    or one withheld to stop subtraction, which the reader cannot tell apart); a published figure v is any
    count that some cell key publishes as v (disclosure.counts_published_as, the documented table). It then
    writes down every exact relation the reports' structure gives:

    - nested periods: every count of what referrals are (received, pathway, source, how heard) of a quarter,
      year and the pilot to date is the sum of its months', every year's the sum of its quarters' and the
      pilot's the sum of its years'; a count as at the end of a period (consent, checks, declines, withdrawals,
      and those whose voluntariness is known) is at least the sum of its months' (it only grows), which in
      these worlds holds with equality, the tightest it can be; voluntariness statuses, which can change,
      are tied across periods only through those;
    - sites: every count of the pilot is the sum of that count over the sites;
    - breakdowns: referrals received is the sum of each breakdown (pathway, source, how heard, voluntariness);
    - parts of a whole: every plain count is at most the referrals received, a withdrawal citing pressure is a
      withdrawal, and everyone whose status is voluntary consented and had an intake check (not everyone with
      a known status: a mandated pathway is not voluntary whatever was recorded);
    - "differences": for each of those sums it adds the complement (the whole less one part) as a variable of
      its own, so a count got by subtracting one report from another is a target like any published one;
    - shares: a share is checked against the published figures it is said to come from; a share that is not
      their ratio is taken as a ratio of the true counts, num/den within half a hundredth of it.

    Then it tightens every bound from every relation (interval constraint propagation over integers: a part is
    at least the whole's lower bound less the other parts' upper bounds, at most the whole's upper bound less
    the other parts' lower bounds; a whole is between the sums of its parts' bounds), over and over until
    nothing moves. It wins if some variable whose true count is 1 to 7 ends with its lower and upper bounds
    equal: that count has been worked out exactly.
    """

    # What a published figure says about the count behind it: the documented table.
    published_range = staticmethod(counts_published_as)

    def __init__(self, world: World, reports: list[dict]):
        self.world = world
        self.index: dict[tuple, int] = {}
        self.lo: list[float] = []
        self.hi: list[float] = []
        self.equalities: list[tuple[int, list[int]]] = []
        self.at_most: list[tuple[int, int]] = []
        self.at_least_sum: list[tuple[int, list[int]]] = []
        self.ratios: list[tuple[int, int, float]] = []
        self.metrics = ["referrals_received", *(f"{b}/{c}" for b, cats in BREAKDOWNS.items() for c in cats), *FLAGS]
        self.month_sets = {frozenset([m]) for m in world.months}
        for report in reports:
            self._read(report)
        self._relations()

    # -- reading the reports ------------------------------------------------------------------------------

    def var(self, months: frozenset, scope, metric: str) -> int:
        name = (months, scope, metric)
        if name not in self.index:
            self.index[name] = len(self.lo)
            self.lo.append(0)
            self.hi.append(INF)
        return self.index[name]

    def _bound(self, variable: int, shown) -> None:
        if shown == STAR:
            low, high = 1, INF
        else:
            assert type(shown) is int, shown
            allowed = self.published_range(shown)
            low, high = allowed.start, allowed.stop - 1
        self.lo[variable] = max(self.lo[variable], low)
        self.hi[variable] = min(self.hi[variable], high)

    def _read_scope(self, months: frozenset, scope, published: dict) -> None:
        self._bound(self.var(months, scope, "referrals_received"), published["referrals_received"])
        for breakdown, categories in BREAKDOWNS.items():
            for category in categories:
                self._bound(self.var(months, scope, f"{breakdown}/{category}"), published[breakdown][category])
        self._bound(self.var(months, scope, "voluntariness/voluntary"), published["remained_voluntary"])
        for flag in FLAGS:
            self._bound(self.var(months, scope, flag), published[flag])
        self._share(months, scope, published, "explicit_consent_share", "explicit_consent", "referrals_received")
        self._share(months, scope, published, "remained_voluntary_share", "voluntariness/voluntary", "explicit_consent")
        # A true 0 stays 0: a "0 or withheld" key missing would be a bug in the report, so insist on it.
        for name in ACCESS_COUNTS:
            assert published[name] == 0

    def _share(self, months, scope, published, share_key, numerator, denominator) -> None:
        share = published[share_key]
        num = published["remained_voluntary"] if numerator == "voluntariness/voluntary" else published[numerator]
        den = published[denominator]
        if share in (STAR, None):
            return
        if isinstance(num, int) and isinstance(den, int) and den and share == round(min(1.0, num / den), 2):
            return  # the ratio of the published figures: nothing the figures do not already say
        self.ratios.append((self.var(months, scope, numerator), self.var(months, scope, denominator), share))

    def _read(self, report: dict) -> None:
        period = Period(report["period"]["label"], date.fromisoformat(report["period"]["start"]),
                        date.fromisoformat(report["period"]["end"]))  # fmt: skip
        months = months_of(self.world, period)
        self.month_sets.add(months)
        self._read_scope(months, "total", report["totals"])
        for site in report["sites"]:
            self._read_scope(months, site["site"]["id"], site)
        for point in report["series"]:
            bucket = months_of(self.world, Period(point["period"], date.fromisoformat(point["start"]),
                                                  date.fromisoformat(point["end"])))  # fmt: skip
            self.month_sets.add(bucket)
            self._bound(self.var(bucket, "total", "referrals_received"), point["referrals_received"])
            self._bound(self.var(bucket, "total", "voluntariness/voluntary"), point["remained_voluntary"])

    # -- what the structure says ------------------------------------------------------------------------------

    def _sum(self, whole: int, parts: list[int]) -> None:
        if len(parts) < 2:
            if parts:
                self.equalities.append((whole, parts))
            return
        self.equalities.append((whole, parts))
        if len(parts) > 2:
            # The whole less one part: what differencing two reports gives.
            for part in parts:
                rest = self.var(("rest", whole, part), None, "")
                self.equalities.append((whole, [part, rest]))
                self.equalities.append((rest, [p for p in parts if p != part]))

    def _relations(self) -> None:
        scopes = ["total", *self.world.sites]
        sets = sorted(self.month_sets, key=lambda s: (len(s), sorted(s)))
        for months in sets:
            for scope in scopes:
                for metric in self.metrics:
                    self.var(months, scope, metric)
                known = [self.var(months, scope, f"voluntariness/{s}") for s in ("voluntary", "concern", "not_voluntary")]
                self.equalities.append((self.var(("known", months, scope), None, ""), known))
        for months in sets:
            self._across_time(months, sets, scopes)
            self._within_a_period(months, scopes)

    def _across_time(self, months: frozenset, sets: list[frozenset], scopes: list) -> None:
        """A period against the smaller published periods that tile it."""
        singles = [frozenset([m]) for m in sorted(months)]
        inner = [s for s in sets if s < months and len(s) > 1]
        tilings = [singles, *self._tilings(months, inner)] if len(months) > 1 else []
        for scope in scopes:
            for metric in self.metrics:
                whole = self.var(months, scope, metric)
                for tiling in tilings:
                    parts = [self.var(s, scope, metric) for s in tiling]
                    if metric in ADDS_UP:
                        self._sum(whole, parts)
                    elif metric in GROWS:
                        self.at_least_sum.append((whole, parts))
            # Those known at the end of each month are still known at the end of the period.
            for tiling in tilings:
                self.at_least_sum.append((self.var(("known", months, scope), None, ""),
                                          [self.var(("known", s, scope), None, "") for s in tiling]))  # fmt: skip

    def _within_a_period(self, months: frozenset, scopes: list) -> None:
        """Sites add up to the total; breakdowns to the referrals received; flags stay within their whole."""
        for metric in self.metrics:
            self._sum(self.var(months, "total", metric), [self.var(months, s, metric) for s in self.world.sites])
        for scope in scopes:
            received = self.var(months, scope, "referrals_received")
            for breakdown, categories in BREAKDOWNS.items():
                self._sum(received, [self.var(months, scope, f"{breakdown}/{c}") for c in categories])
            for flag in FLAGS:
                self.at_most.append((self.var(months, scope, flag), received))
            pressured, withdrawn = (self.var(months, scope, f) for f in ("withdrawals_citing_pressure", "withdrawals"))
            self.at_most.append((pressured, withdrawn))
            # Voluntary needs explicit consent and an intake check. (Not every known status does: a mandated
            # pathway is not voluntary whatever was recorded, so "known" is not bounded by the consents.)
            voluntary = self.var(months, scope, "voluntariness/voluntary")
            for flag in ("explicit_consent", "intake_check_recorded"):
                self.at_most.append((voluntary, self.var(months, scope, flag)))

    @staticmethod
    def _tilings(months: frozenset, inner: list[frozenset]) -> list[list[frozenset]]:
        """Ways to cover the months exactly with the largest smaller published periods (quarters, years)."""
        tilings = []
        for size in sorted({len(s) for s in inner}, reverse=True):
            pieces = [s for s in inner if len(s) == size or len(s) < size]
            chosen, covered = [], set()
            for piece in sorted(pieces, key=len, reverse=True):
                if not piece & covered:
                    chosen.append(piece)
                    covered |= piece
            if covered == months and len(chosen) > 1 and chosen not in tilings:
                tilings.append(chosen)
        return tilings

    # -- working it out --------------------------------------------------------------------------------------

    def _tighten(self, variable: int, low, high) -> bool:
        changed = False
        if low > self.lo[variable]:
            self.lo[variable] = low
            changed = True
        if high < self.hi[variable]:
            self.hi[variable] = high
            changed = True
        return changed

    def propagate(self, rounds: int = 200) -> None:
        lo, hi = self.lo, self.hi
        for _ in range(rounds):
            changed = False
            for whole, parts in self.equalities:
                low_sum = sum(lo[p] for p in parts)
                high_sum = sum(hi[p] for p in parts)
                changed |= self._tighten(whole, low_sum, high_sum)
                for p in parts:
                    others_high = high_sum - hi[p] if hi[p] != INF else sum(hi[q] for q in parts if q != p)
                    others_low = low_sum - lo[p]
                    low = lo[whole] - others_high if others_high != INF else 0
                    high = hi[whole] - others_low
                    changed |= self._tighten(p, max(low, 0), high)
            for whole, parts in self.at_least_sum:
                # whole >= sum of parts: the whole is at least their lower bounds; a part at most the whole's upper
                # bound less the others' lower bounds.
                low_sum = sum(lo[p] for p in parts)
                changed |= self._tighten(whole, low_sum, hi[whole])
                for p in parts:
                    changed |= self._tighten(p, lo[p], hi[whole] - (low_sum - lo[p]))
            for small, big in self.at_most:
                changed |= self._tighten(small, lo[small], hi[big])
                changed |= self._tighten(big, lo[small], hi[big])
            for num, den, share in self.ratios:
                # round(num / den, 2) == share: num / den lies within half a hundredth of it.
                low_share, high_share = max(share - 0.005, 0), share + 0.005
                changed |= self._tighten(num, math.ceil(lo[den] * low_share - 1e-9), hi[den] * high_share // 1)
                high_den = hi[num] / low_share // 1 if low_share > 0 else INF
                changed |= self._tighten(den, math.ceil(lo[num] / high_share - 1e-9), high_den)
            if not changed:
                return

    def true_of(self, variable: int) -> int:
        """The true count behind any variable, helpers included (only for checking the reader's soundness)."""
        name = self._names[variable]
        if name[1] is not None:
            return true_count(self.world, *name)
        helper = name[0]
        if helper[0] == "rest":
            return self.true_of(helper[1]) - self.true_of(helper[2])
        months, scope = helper[1], helper[2]
        return sum(true_count(self.world, months, scope, f"voluntariness/{s}") for s in ("voluntary", "concern", "not_voluntary"))

    @property
    def names(self) -> dict[int, tuple]:
        return {variable: name for name, variable in self.index.items()}

    def pinned_small_counts(self) -> list[tuple]:
        """Every named count from 1 to 7 whose bounds met; asserts the reader never concluded anything false."""
        names = self._names = self.names
        pinned = []
        for variable in range(len(self.lo)):
            true = self.true_of(variable)
            assert self.lo[variable] <= true <= self.hi[variable], (names[variable], true, self.lo[variable], self.hi[variable])
            if self.lo[variable] == self.hi[variable] and 1 <= true <= 7:
                pinned.append((names[variable], true))
        return pinned
