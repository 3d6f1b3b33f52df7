"""Every report of a pilot at once: the standard periods a reader may ask for, and their counts per site.

A reader may ask for every month, quarter and year of a pilot and for the pilot to date, and difference them.
Disclosure control can only keep a count from being worked out if it sees every figure those reports publish,
so the report is counted as one lattice: a row of counts per site and calendar month ("atoms", kept as records
are written by consent.lattice_cells and read by metrics.lattice_of), from which every period's figures are added up here.

Counts of what a referral is (received, pathway, source, how heard) are the same whatever the period; counts as
at the end of a period (consent, checks, declines, withdrawals, voluntariness) depend on when that end is, so an
atom holds them once per level (as at the end of its month, its quarter, its year and the pilot to date), each
clipped to the pilot's dates. A cell's count and cell key (the sum of its referrals' record keys) add up over
atoms exactly: a quarter's consents are its months' consents as at the quarter's end.
"""

import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date

from dateutil.relativedelta import relativedelta

from consent.lattice_cells import LEVELS
from consent.reports.periods import PILOT_TO_DATE, Period, month, quarter, year

# The kept cells name the pilot-to-date level as the periods do (consent.lattice_cells cannot import them).
assert LEVELS[-1] == PILOT_TO_DATE


@dataclass(frozen=True)
class LatticePeriod:
    """A standard period clipped to the pilot, its level (which end counts as at) and the months it covers."""

    period: Period
    level: str
    months: tuple[date, ...]

    @property
    def key(self) -> tuple[date, date]:
        """Its cells' name: two periods clipped to the same days (a quarter holding one month of the pilot and
        that month) count the same referrals as at the same end, so they are one set of cells."""
        return (self.period.start, self.period.end)


def months_between(start: date, end: date) -> list[date]:
    """The first days of the calendar months from start's to end's."""
    first, months = start.replace(day=1), []
    while first <= end:
        months.append(first)
        first += relativedelta(months=1)
    return months


def pilot_periods(starts_on: date, ends_on: date, today: date) -> list[LatticePeriod]:
    """Every period a reader may ask for: each month, quarter and year of the pilot's dates, and the pilot to date.

    Months come first, so a quarter or year clipped to the same days as a month is that month's cells.
    """
    months = months_between(starts_on, ends_on)
    calendar = [(month(m.year, m.month), "month") for m in months]
    calendar += [(quarter(m.year, (m.month - 1) // 3 + 1), "quarter") for m in months]
    calendar += [(year(m.year), "year") for m in months]
    if today >= starts_on:
        calendar.append((Period(PILOT_TO_DATE, starts_on, min(ends_on, today)), PILOT_TO_DATE))
    periods: dict[tuple, LatticePeriod] = {}
    for whole, level in calendar:
        clipped = Period(whole.label, max(whole.start, starts_on), min(whole.end, ends_on))
        # A month is inside if it overlaps: it starts by the period's end and its start's month is not before.
        first = clipped.start.replace(day=1)
        inside = tuple(m for m in months if first <= m <= clipped.end)
        periods.setdefault((clipped.start, clipped.end), LatticePeriod(clipped, level, inside))
    return list(periods.values())


@dataclass
class PilotLattice:
    """A pilot's atoms (site, month) -> {cell path: [count, key sum]} and the periods they add up to.

    A path without a level ("referrals_received",), ("by_pathway", p), ... counts what referrals are; a path
    starting with a level, (level, "voluntariness", status) or (level, count name), counts as at that level's end.
    """

    periods: list[LatticePeriod]
    site_ids: list[int]
    atoms: dict[tuple[int, date], dict[tuple, list[int]]] = field(default_factory=lambda: defaultdict(dict))
    source_codes: list[str] = field(default_factory=list)
    # A fingerprint of the rows the atoms were made from, when they were (metrics.lattice_of): the same rows make
    # the same atoms, and hashing them as read costs a tenth of sorting and hashing the atoms.
    rows_digest: str | None = None

    def add(self, site_id: int, first_day: date, path: tuple, n: int, key_sum: int | None) -> None:
        cell = self.atoms[(site_id, first_day)].setdefault(path, [0, 0])
        cell[0] += n
        cell[1] += key_sum or 0

    def digest(self) -> str:
        """A fingerprint of everything the lattice holds: equal lattices publish (and withhold) the same cells."""
        content = (
            [(p.key, p.level, p.months) for p in self.periods],
            self.site_ids,
            self.source_codes,
            self.rows_digest or sorted((atom, sorted(cells.items())) for atom, cells in self.atoms.items()),
        )
        return hashlib.sha256(repr(content).encode()).hexdigest()

    def period_of(self, period: Period) -> LatticePeriod:
        """The lattice's period for a report's (clipped) period."""
        for candidate in self.periods:
            if (candidate.period.start, candidate.period.end) == (period.start, period.end):
                return candidate
        raise KeyError(f"{period.label} ({period.start} to {period.end}) is not a period of this pilot")

    def counts(self, period: LatticePeriod, site_id: int) -> dict[tuple, list[int]]:
        """One site's cells in one period: path (without level) -> [count, key sum], added up over its months."""
        cells: dict[tuple, list[int]] = {}
        for first_day in period.months:
            for path, (n, key_sum) in self.atoms.get((site_id, first_day), {}).items():
                if path[0] in LEVELS:
                    if path[0] != period.level:
                        continue
                    path = path[1:]
                cell = cells.setdefault(path, [0, 0])
                cell[0] += n
                cell[1] += key_sum
        return cells
