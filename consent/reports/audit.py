"""Which cells the reports of a pilot withhold: the HES rule within each report, then an audit across all of them.

A reader may ask for every report of a pilot (every month, quarter and year and the pilot to date) and combine
them: a quarter less two of its months, a site's pathways against its total, counts that only grow over time.
Bounded noise on a total and on each of its parts can always line up (a quarter published low, its months
high), so rules applied one report at a time let such a chain pin a small count now and then.

So the cells of every report are withheld together, in two passes:

1. Within each report, the HES secondary rule and the room rule of docs/disclosure-control.md section 3
   (disclosure.withheld_cells with `room_exposed`), exactly as a report alone would apply them.
2. The audit: the server plays the reader of docs/disclosure-control.md section 7 against the whole lattice.
   Every cell starts at what its published figure allows (a 0 exactly 0, a "*" at least 1, a figure v any
   count in counts_published_as(v)); every relation the reports' structure guarantees is written down (each
   breakdown adds up to the referrals received, the sites to the pilot, a period's months, quarters or years
   to the period for what referrals are, and at most that for counts as at a period's end, which only grow;
   a part within its whole); and interval constraint propagation tightens every bound until nothing moves.
   If a cell, or the difference of a whole and one of its parts, whose true count is 1 to 7 ends with its
   bounds equal, one more cell of the relation that pinned it is withheld (the shown one with the smallest
   figure, then the smallest cell key: chosen by what is published, never by the raw count) and the audit
   starts again. Withholding only widens bounds, so it ends.

Only relations that hold for the true counts are used, so nothing the audit concludes is false.
"""

from collections import deque
from collections.abc import Hashable, Iterable

from django.core.cache import cache

from consent.reports.disclosure import STAR, counts_published_as, publish_count, withheld_cells
from consent.reports.lattice import PilotLattice
from consent.reports.metrics import figures_of, site_totals
from consent.selectors import Voluntariness

INFINITY = float("inf")
# Bump when the rules change, so no cached audit of the old rules is used.
AUDIT_VERSION = 1
AUDIT_CACHE_SECONDS = 24 * 60 * 60
# Counts of what referrals are add up exactly over the periods that tile a longer one.
LEVEL_FREE = ("referrals_received", "by_pathway", "by_source_of_referral", "by_how_heard")
# Counts as at a period's end that only grow: a later end never counts fewer of the same referrals.
GROWING = (
    ("explicit_consent",),
    ("declined",),
    ("withdrawals",),
    ("withdrawals_citing_pressure",),
    ("felt_not_free_to_stop",),
    ("employment_goal_raised_by_benefits_agency",),
    ("intake_check_recorded",),
    ("voluntariness", Voluntariness.NOT_VOLUNTARY),
    ("known",),
)
# A part never exceeds its whole, within one period and scope.
WITHIN = [(("withdrawals_citing_pressure",), ("withdrawals",))]
WITHIN += [((name,), ("referrals_received",)) for name, *_ in GROWING[:7]]
WITHIN += [(("voluntariness", Voluntariness.VOLUNTARY), (name,)) for name in ("explicit_consent", "intake_check_recorded")]


class Table:
    """Cells (count, cell key), the (total, parts) groups of each report, and the relations across reports."""

    def __init__(self):
        self.values: dict[Hashable, int] = {}
        self.keys: dict[Hashable, int] = {}
        self.groups: list[tuple[Hashable, list[Hashable]]] = []
        self.fixed: set[Hashable] = set()
        # Counts no report publishes (those whose voluntariness is known): the reader knows only their relations.
        self.unpublished: set[Hashable] = set()
        # The paths of each (period, scope)'s cells.
        self.paths: dict[tuple, list[tuple]] = {}
        self.equal: list[tuple[Hashable, list[Hashable]]] = []
        self.at_least: list[tuple[Hashable, list[Hashable]]] = []
        self.at_most: list[tuple[Hashable, Hashable]] = []

    def add(self, cell: Hashable, n: int, key_sum: int) -> None:
        self.values[cell] = n
        self.keys[cell] = key_sum

    def shown(self, cell: Hashable, withheld: set) -> int | str:
        return STAR if cell in withheld else publish_count(self.values[cell], self.keys[cell])

    def rank(self, cell: Hashable):
        """Secondary suppression withholds the cell that publishes the smallest figure, then the smallest cell key."""
        return (publish_count(self.values[cell], self.keys[cell]), self.keys[cell])

    def room_exposed(self, total: Hashable, parts: list[Hashable], withheld: set) -> bool:
        """Whether a group's shown figures pin down the sum of its withheld cells too closely (the room rule).

        A reader bounds the withheld cells' sum by the shown cells' ranges. If the true sum sits exactly at the
        edge of that bound, then once the reader knows the other withheld cells, one of them is exact; so at
        least one count of room is asked for on each side that can be bounded.
        """
        starred = [p for p in parts if p in withheld]
        shown = [p for p in parts if p not in withheld]
        starred_sum = sum(self.values[p] for p in starred)
        ranges = [counts_published_as(self.shown(p, withheld)) for p in shown]
        low_shown, high_shown = sum(r.start for r in ranges), sum(r.stop - 1 for r in ranges)
        if total in withheld:
            room_below = self.values[total] - low_shown - starred_sum
            room_above = (high_shown + starred_sum - self.values[total]) if not starred else 1
            return room_below < 1 or room_above < 1
        if not starred:
            return False
        shown_total = counts_published_as(self.shown(total, withheld))
        room_above = (shown_total.stop - 1) - low_shown - starred_sum
        room_below = starred_sum - (shown_total.start - high_shown)
        return room_above < 1 or (len(starred) == 1 and room_below < 1)

    def within_reports(self) -> set[Hashable]:
        """Pass 1: the HES rule and the room rule in each report's own groups."""
        return withheld_cells(self.values, self.groups, rank=self.rank, exempt=frozenset(self.fixed), exposed=self.room_exposed)

    def withheld(self) -> set[Hashable]:
        """Every cell to publish as "*": pass 1, then the audit across reports until no small count is pinned."""
        withheld = self.within_reports()
        audit = _Audit(self)
        while True:
            more = audit.cells_to_withhold(withheld)
            if not more:
                return withheld
            withheld |= more


class _Audit:
    """Interval constraint propagation over a Table's relations (module docstring, pass 2)."""

    def __init__(self, table: Table):
        self.table = table
        self.cells = list(table.values)
        self.index = {cell: i for i, cell in enumerate(self.cells)}
        self.true = [table.values[cell] for cell in self.cells]
        self.relations: list[tuple[str, int, list[int]]] = []
        for kind, pairs in (("=", table.equal + table.groups), (">=", table.at_least)):
            for whole, parts in pairs:
                self._relate(kind, whole, parts)
        for small, big in table.at_most:
            self._relate("<=", big, [small])
        self.touching: list[list[int]] = [[] for _ in self.cells]
        for r, (_, whole, parts) in enumerate(self.relations):
            for v in {whole, *parts}:
                self.touching[v].append(r)

    def _relate(self, kind: str, whole: Hashable, parts: list[Hashable]) -> None:
        """Keep a relation only if the true counts satisfy it: the audit must never reason from a falsehood."""
        if whole not in self.index or not parts or any(p not in self.index for p in parts) or whole in parts:
            return
        w, ps = self.index[whole], [self.index[p] for p in parts]
        total = sum(self.true[p] for p in ps)
        holds = self.true[w] == total if kind == "=" else self.true[w] >= total
        if holds:
            self.relations.append((kind, w, ps))

    def _start(self, withheld: set) -> tuple[list, list]:
        lo, hi = [], []
        for cell in self.cells:
            shown = STAR if cell in self.table.unpublished else self.table.shown(cell, withheld)
            if cell in self.table.unpublished:
                lo.append(0), hi.append(INFINITY)
            elif shown == STAR:
                lo.append(1), hi.append(INFINITY)
            else:
                allowed = counts_published_as(shown)
                lo.append(allowed.start), hi.append(allowed.stop - 1)
        return lo, hi

    def propagate(self, withheld: set) -> tuple[list, list, list]:
        """Bounds of every cell after propagation, and for each the relation that last tightened it."""
        lo, hi = self._start(withheld)
        cause: list = [[None, None] for _ in self.cells]
        queue, queued = deque(range(len(self.relations))), [True] * len(self.relations)
        while queue:
            r = queue.popleft()
            queued[r] = False
            for v in self._apply(r, lo, hi, cause):
                for other in self.touching[v]:
                    if not queued[other]:
                        queued[other] = True
                        queue.append(other)
        return lo, hi, cause

    def _apply(self, r: int, lo: list, hi: list, cause: list) -> list[int]:
        kind, w, ps = self.relations[r]
        changed = []

        def tighten(v: int, low, high) -> None:
            moved = False
            if low > lo[v]:
                lo[v], cause[v][0], moved = low, r, True
            if high < hi[v]:
                hi[v], cause[v][1], moved = high, r, True
            if moved:
                changed.append(v)

        low_sum = sum(lo[p] for p in ps)
        if kind == "<=":  # whole >= its one part
            tighten(w, lo[ps[0]], INFINITY)
            tighten(ps[0], 0, hi[w])
            return changed
        if kind == ">=":
            tighten(w, low_sum, INFINITY)
            for p in ps:
                tighten(p, 0, hi[w] - (low_sum - lo[p]))
            return changed
        finite = [hi[p] for p in ps if hi[p] != INFINITY]
        unbounded, finite_sum = len(ps) - len(finite), sum(finite)
        tighten(w, low_sum, INFINITY if unbounded else finite_sum)
        for p in ps:
            # The most the other parts can hold: finite only if every one of them is bounded.
            if unbounded == 0:
                others_high = finite_sum - hi[p]
            else:
                others_high = finite_sum if unbounded == 1 and hi[p] == INFINITY else INFINITY
            tighten(p, max(0, lo[w] - others_high), hi[w] - (low_sum - lo[p]))
        return changed

    def cells_to_withhold(self, withheld: set) -> set[Hashable]:
        """The cells to withhold next: one per pinned small count (empty when nothing is pinned)."""
        lo, hi, cause = self.propagate(withheld)
        more = set()
        for v in range(len(self.cells)):
            if lo[v] == hi[v] and 1 <= self.true[v] <= 7:
                more |= self._breaking(v, [c for c in cause[v][::-1] if c is not None], withheld)
        for r, (kind, w, ps) in enumerate(self.relations):
            if kind != "=" or len(ps) < 3:
                continue
            low_sum = sum(lo[p] for p in ps)
            finite = [hi[p] for p in ps if hi[p] != INFINITY]
            unbounded, finite_sum = len(ps) - len(finite), sum(finite)
            for p in ps:
                rest = self.true[w] - self.true[p]
                if not 1 <= rest <= 7:
                    continue
                # The whole less this part, bounded both through the whole and through the other parts.
                if unbounded == 0:
                    others_high = finite_sum - hi[p]
                else:
                    others_high = finite_sum if unbounded == 1 and hi[p] == INFINITY else INFINITY
                rest_low = max(lo[w] - hi[p], low_sum - lo[p])
                rest_high = min(hi[w] - lo[p], others_high)
                if rest_low == rest_high:
                    more |= self._breaking(None, [r], withheld)
        return more

    def _breaking(self, pinned: int | None, relations: list[int], withheld: set) -> set[Hashable]:
        """A shown cell of the relation that pinned a count, to withhold; any shown neighbour if none."""
        unavailable = withheld | self.table.fixed | self.table.unpublished
        for r in relations + (self.touching[pinned] if pinned is not None else []):
            _, w, ps = self.relations[r]
            candidates = [
                self.cells[v] for v in (w, *ps) if v != pinned and self.true[v] > 0 and self.cells[v] not in unavailable
            ]
            if candidates:
                return {min(candidates, key=self.table.rank)}
        return set()


def _tilings(lattice: PilotLattice) -> dict[tuple, list[list[tuple]]]:
    """For each period of the lattice, the ways shorter periods of it cover it: by months, quarters, years."""
    by_key = {p.key: p for p in lattice.periods}
    level_of_months: dict[tuple, dict] = {}
    for period in lattice.periods:
        level_of_months.setdefault(period.level, {})
        for first_day in period.months:
            level_of_months[period.level].setdefault(first_day, period.key)
    tilings = {}
    for period in lattice.periods:
        ways = []
        for level in ("month", "quarter", "year"):
            parts = []
            for first_day in period.months:
                # A month's period at this level: the lattice's period of that level holding it, or (for a
                # quarter or year clipped to the same days as a shorter one) that shorter period.
                key = level_of_months.get(level, {}).get(first_day) or level_of_months["month"].get(first_day)
                if (
                    key not in parts
                    and key != period.key
                    and by_key[key].months
                    and set(by_key[key].months) <= set(period.months)
                ):
                    parts.append(key)
            if (
                len(parts) > 1
                and sorted(m for k in parts for m in by_key[k].months) == sorted(period.months)
                and parts not in ways
            ):
                ways.append(parts)
        tilings[period.key] = ways
    return tilings


def lattice_table(lattice: PilotLattice) -> Table:
    """The Table of every report of a pilot: cells per period and scope, each report's groups, the relations across."""
    table = Table()
    scopes = ["total", *lattice.site_ids]
    for period in lattice.periods:
        by_site = {s: figures_of(lattice.counts(period, s), lattice.source_codes) for s in lattice.site_ids}
        by_scope = {"total": site_totals(by_site, lattice.source_codes), **by_site}
        add_report(table, period.key, by_scope)
    for period_key, ways in _tilings(lattice).items():
        for parts in ways:
            for scope in scopes:
                for path in table.paths[(period_key, scope)]:
                    cell, pieces = (period_key, scope, *path), [(k, scope, *path) for k in parts]
                    if path[0] in LEVEL_FREE:
                        table.equal.append((cell, pieces))
                    elif path in GROWING:
                        table.at_least.append((cell, pieces))
    return table


def withheld_in_pilot(lattice: PilotLattice) -> frozenset[Hashable]:
    """The cells every report of the pilot withholds: the lattice's table, audited (Table.withheld).

    Worked out once per content of the lattice and kept in the cache under its digest: the same counts give
    the same cells whichever report asks, and asking again does not audit again.
    """
    key = f"report-audit:{AUDIT_VERSION}:{lattice.digest()}"
    withheld = cache.get(key)
    if withheld is None:
        table = lattice_table(lattice)
        withheld = frozenset(table.withheld() - table.unpublished)
        cache.set(key, withheld, timeout=AUDIT_CACHE_SECONDS)
    return withheld


def add_report(table: Table, period_key: Hashable, by_scope: dict) -> None:
    """One report's cells (referral counts only) and groups: each breakdown within a scope, each count over sites."""
    for scope, figures in by_scope.items():
        cells = _referral_cells(figures)
        table.paths[(period_key, scope)] = list(cells)
        for path, n in cells.items():
            table.add((period_key, scope, *path), n, figures.keys.get(path, 0))
        voluntariness = [(period_key, scope, "voluntariness", s) for s in Voluntariness.ALL if s != Voluntariness.UNKNOWN]
        table.add((period_key, scope, "known"), sum(table.values[c] for c in voluntariness), 0)
        table.unpublished.add((period_key, scope, "known"))
        table.equal.append(((period_key, scope, "known"), voluntariness))
        for part, whole in WITHIN:
            table.at_most.append(((period_key, scope, *part), (period_key, scope, *whole)))
        received = (period_key, scope, "referrals_received")
        for breakdown in ("by_pathway", "by_source_of_referral", "by_how_heard", "voluntariness"):
            table.groups.append((received, [(period_key, scope, breakdown, key) for key in getattr(figures, breakdown)]))
    sites = [scope for scope in by_scope if scope != "total"]
    if sites:
        for path in _referral_cells(by_scope["total"]):
            table.groups.append(((period_key, "total", *path), [(period_key, site, *path) for site in sites]))


def _referral_cells(figures) -> dict[tuple, int]:
    """Every count of referrals in a scope's figures, by path (access attempts are events: not here)."""
    cells: dict[tuple, int] = {("referrals_received",): figures.referrals_received}
    for breakdown in ("by_pathway", "by_source_of_referral", "by_how_heard", "voluntariness"):
        for key, n in getattr(figures, breakdown).items():
            cells[(breakdown, key)] = n
    for name, *_ in GROWING[:7]:
        cells[(name,)] = figures.counts[name]
    return cells


def withheld_groups(values: dict, groups: Iterable, table: Table | None = None) -> set:
    """The HES rule with the room rule on cells outside the referral lattice (access attempts, cell key 0)."""
    table = table or Table()
    for cell, n in values.items():
        table.add(cell, n, 0)
    table.groups = list(groups)
    return table.within_reports()
