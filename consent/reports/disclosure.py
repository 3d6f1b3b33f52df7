"""Disclosure control for published counts: NHS England's HES rule for sub-national statistics.

Primary rule: 0 stays 0, a count from 1 to 7 is withheld (shown as "*"), any larger count is
rounded to the nearest 5. Shares and medians are withheld when they rest on a withheld count.

Secondary rule: a withheld cell must not be recoverable by subtraction. Cells are grouped as a
total plus the parts that add up to it (a row of a table and its row total, a column and its
column total, the row totals and the grand total, the column totals and the grand total). In
every group, counting the total as a member, the number of withheld cells is never exactly one:
one withheld part could be got back as total minus the other parts, and a withheld total with
every part shown could be got back by adding the parts up.

Strategy when a group has exactly one withheld cell:
- withhold the smallest non-zero shown part as well (the earliest one on a tie), because that
  costs the reader the least information;
- if there is no such part (every other part is a true 0, which is always published as 0),
  withhold the total instead.
Only non-zero cells are ever withheld, so a published 0 always means a true 0 and a true 0 is
always published. In a table the groups share cells, so the rule is applied repeatedly until no
group changes; it only ever adds withheld cells, so it stops.

Across reports: the cell-key method (Office for National Statistics). Every referral carries a
stored random record key from 0 to 255 (consent.Referral.record_key). A cell's key is the sum of the
record keys of the referrals it counts, modulo 256, so the same set of referrals always has the same
cell key, in every report, period, site, breakdown and format. A count of 8 or more is published as

    max(10, 5 * round((n + p) / 5)),  p = perturbation(n, cell key), one of -3 to 3,

where the perturbation table looks up ((cell key + 101 n) * 163 mod 256) mod 7 - 3: for every count
the 256 cell keys spread evenly over the seven perturbations (163 is odd, so the lookup is a
permutation of the keys). A published figure is therefore within 5 of the count and a multiple of 5;
a reader who knows this table, but not the secret record keys, learns from a published v only that the
count lies in a range of eleven values (for 10: 8 to 15), and where in it depends on keys they
cannot see. Differencing two reports then subtracts two such ranges, never two exact figures, and the
same set of referrals can never be asked for twice to average its noise away: it publishes the same
figure every time.

Within a report, secondary suppression also withholds another cell where a group's shown figures leave its
withheld cells no room: where the largest sum of the withheld cells a reader can infer from the shown
figures' ranges (counts_published_as) is their true sum (audit.Table.room_exposed). It picks its extra cell
by what is published (the smallest shown figure, then the cell key), never by the raw count, so the choice
tells a reader nothing more. Across reports, consent.reports.audit withholds the cells of every report of a
pilot together and audits them as a reader who differences them would. docs/disclosure-control.md has the
whole method and how it is tested.

Shares are computed from the published figures (numerator and denominator as shown), to 2 decimals,
capped at 1; withheld ("*") when either figure is withheld; None when the shown denominator is 0.
Medians are withheld when the count they rest on is withheld.

Counts of benefits-agency access attempts are events, not referrals: they have no record keys and are
published by the HES rule alone (cell key 0).
"""

from collections import defaultdict
from collections.abc import Hashable, Iterable

STAR = "*"
DISCLOSURE_CONTROL = (
    "counts 1-7 shown as *, others rounded to a multiple of 5 within 5 of the count (ONS cell-key method: "
    "the same referrals always give the same figure); * also covers counts withheld so that others cannot be "
    "worked out by subtraction; shares are computed from the figures as shown"
)

# The HES rule: counts from 1 up to this value are withheld.
SMALLEST_SHOWN = 8
ROUND_TO = 5
# The cell-key method: record keys are 0..RECORD_KEY_MODULUS-1 and cell keys are sums modulo it.
RECORD_KEY_MODULUS = 256
# Perturbations run from -PERTURBATION_REACH to +PERTURBATION_REACH.
PERTURBATION_REACH = 3
# The smallest figure a count of 8 or more is published as.
SMALLEST_PUBLISHED = 10


def _check_count(n: int, name: str = "count") -> None:
    """Reject anything but a non-negative int, so a bad figure never leaves the server half-controlled."""
    # bool is an int subclass, but True as a count is always a caller's mistake.
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"{name} must be an int, got {type(n).__name__}")
    if n < 0:
        raise ValueError(f"{name} must not be negative, got {n}")


def _is_primary(n: int) -> bool:
    """Whether the primary rule withholds this count."""
    return 0 < n < SMALLEST_SHOWN


def _round(n: int) -> int:
    """Round to the nearest 5, halves up (an int is never exactly halfway, so halves never arise)."""
    return ROUND_TO * ((n + ROUND_TO // 2) // ROUND_TO)


def suppress_count(n: int) -> int | str:
    """Apply the primary rule to one count: 0 -> 0, 1-7 -> "*", otherwise the nearest multiple of 5."""
    _check_count(n)
    if n == 0:
        return 0
    if _is_primary(n):
        return STAR
    return _round(n)


def cell_key(key_sum: int) -> int:
    """The cell key of a set of referrals from the sum of their record keys."""
    return key_sum % RECORD_KEY_MODULUS


def perturbation(n: int, key: int) -> int:
    """The perturbation table: the fixed perturbation, -3 to 3, of a count n in a cell with this cell key."""
    spread = 2 * PERTURBATION_REACH + 1
    return ((key + 101 * n) * 163 % RECORD_KEY_MODULUS) % spread - PERTURBATION_REACH


def publish_count(n: int, key: int) -> int | str:
    """The published figure of a count with its cell key: 0 -> 0, 1-7 -> "*", otherwise perturbed and rounded to 5.

    A function of the count and the cell key only, so of the set of referrals counted: the same set gives the
    same figure in every report.
    """
    _check_count(n)
    if n == 0:
        return 0
    if _is_primary(n):
        return STAR
    return max(SMALLEST_PUBLISHED, _round(n + perturbation(n, cell_key(key))))


def counts_published_as(shown: int) -> range:
    """Every count that some cell key publishes as this figure: what a reader who knows the table can infer."""
    if shown == 0:
        return range(0, 1)
    reach = ROUND_TO // 2 + PERTURBATION_REACH
    low = SMALLEST_SHOWN if shown == SMALLEST_PUBLISHED else shown - reach
    return range(low, shown + reach + 1)


def share_of_published(numerator_shown: int | str, denominator_shown: int | str) -> float | str | None:
    """A share from the figures as published, to 2 decimals and at most 1; "*" if either is withheld.

    None when the published denominator is 0 (there is no share to show). Nothing finer than the published
    figures goes into it, so it gives away nothing they do not.
    """
    if STAR in (numerator_shown, denominator_shown):
        return STAR
    if denominator_shown == 0:
        return None
    return round(min(1.0, numerator_shown / denominator_shown), 2)


def suppress_share(
    numerator: int,
    denominator: int,
    *,
    numerator_shown: int | str,
    denominator_shown: int | str,
) -> float | str | None:
    """Share numerator/denominator to 2 decimals from the raw figures; "*" if either count is withheld.

    None when the denominator is 0 (there is no share to show). The shown figures are what the
    report publishes for the numerator and denominator, so secondary suppression is honoured too.
    """
    if denominator == 0:
        return None
    if numerator_shown == STAR or denominator_shown == STAR:
        return STAR
    # Raw figures, not the rounded ones: rounding both sides could shift the share a lot.
    return round(numerator / denominator, 2)


def suppress_median(value: float | None, *, resting_on: int | str) -> float | str | None:
    """The median as given, or "*" when the count it rests on is withheld."""
    # Withheld first: a missing median must not hint at how small the hidden count is.
    if resting_on == STAR:
        return STAR
    return value


def _enforce(
    values: dict[Hashable, int],
    groups: Iterable[tuple[Hashable, list[Hashable]]],
    rank=None,
    exempt: frozenset = frozenset(),
    exposed=None,
) -> set[Hashable]:
    """Return the keys to withhold: primary cells, plus secondary ones until no group gives one away.

    A group gives a cell away when exactly one of its cells is withheld, or when `exposed(total, parts,
    withheld)` says the published figures around its withheld cells leave them no room (see
    audit.Table.room_exposed). Cells in `exempt` are never withheld as secondary cells (they are published
    elsewhere as they stand).
    """
    groups = list(groups)
    withheld = {key for key, n in values.items() if _is_primary(n)}
    # A group is looked at again only once one of its cells has been withheld since it last was: what it decides
    # depends on nothing else, so skipping the others withholds exactly the same cells, in the same order, as
    # sweeping them all (which took seconds on a national pilot's lattice of thousands of groups).
    groups_of = defaultdict(list)
    for index, (total_key, part_keys) in enumerate(groups):
        for key in (total_key, *part_keys):
            groups_of[key].append(index)
    stale = [True] * len(groups)
    changed = True
    while changed:
        changed = False
        for index, (total_key, part_keys) in enumerate(groups):
            if not stale[index]:
                continue
            stale[index] = False
            members = [total_key, *part_keys]
            stars = sum(key in withheld for key in members)
            if stars == 0 or (stars != 1 and not (exposed and exposed(total_key, part_keys, withheld))):
                continue
            extra = _pick_secondary(values, withheld, total_key, part_keys, rank, exempt)
            if extra is not None:
                withheld.add(extra)
                for other in groups_of[extra]:
                    stale[other] = True
                changed = True
    return withheld


def _pick_secondary(
    values: dict[Hashable, int],
    withheld: set[Hashable],
    total_key: Hashable,
    part_keys: list[Hashable],
    rank=None,
    exempt: frozenset = frozenset(),
) -> Hashable | None:
    """The cell to withhold next in a group with exactly one withheld cell, or None if none will do (a cell in
    `exempt` never will)."""
    candidates = [key for key in part_keys if key not in withheld and key not in exempt and values[key] > 0]
    if candidates:
        # min() keeps the first of equal ranks, so the choice is deterministic in part order.
        return min(candidates, key=rank or (lambda key: values[key]))
    if total_key not in withheld and total_key not in exempt and values[total_key] > 0:
        return total_key
    # Only a withheld total with all-zero parts gets here, which needs parts that do not add up
    # to the total; the unlisted remainder then keeps the total from being derived.
    return None


def suppress_group(total: int, parts: dict[str, int]) -> tuple[int | str, dict[str, int | str]]:
    """Primary and secondary suppression for one total and its parts; returns (shown total, shown parts).

    The parts must not add up to more than the total. If they add up to less (some of the total
    is not broken down), the rule is still applied to the listed parts as if they were complete,
    which can only withhold more, never less.
    """
    _check_count(total, "total")
    for name, n in parts.items():
        _check_count(n, f"part {name!r}")
    if sum(parts.values()) > total:
        raise ValueError(f"parts add up to {sum(parts.values())}, more than the total {total}")

    total_key = ("total",)
    values: dict[Hashable, int] = {total_key: total}
    values.update({("part", name): n for name, n in parts.items()})
    withheld = _enforce(values, [(total_key, [("part", name) for name in parts])])

    def shown(key: Hashable) -> int | str:
        return STAR if key in withheld else suppress_count(values[key])

    return shown(total_key), {name: shown(("part", name)) for name in parts}


def suppress_table(rows: dict[str, dict[str, int]]) -> dict:
    """Primary and secondary suppression for a 2D table of counts, across rows, columns and margins.

    rows maps a row key (e.g. a site) to {category: raw count}; a category missing from a row
    counts as 0. Totals are computed here from the raw counts, so every group adds up exactly.
    Returns {"rows": {row: {category: shown}}, "row_totals": {row: shown},
    "column_totals": {category: shown}, "grand_total": shown}.
    """
    # Categories in first-seen order, so the output keeps the caller's column order.
    categories = list(dict.fromkeys(cat for row in rows.values() for cat in row))
    for row_key, row in rows.items():
        for cat, n in row.items():
            _check_count(n, f"count at {row_key!r}, {cat!r}")

    values: dict[Hashable, int] = {}
    for row_key, row in rows.items():
        for cat in categories:
            values[("cell", row_key, cat)] = row.get(cat, 0)
        values[("row", row_key)] = sum(row.values())
    for cat in categories:
        values[("column", cat)] = sum(row.get(cat, 0) for row in rows.values())
    values[("grand",)] = sum(values[("row", row_key)] for row_key in rows)

    groups: list[tuple[Hashable, list[Hashable]]] = []
    for row_key in rows:
        groups.append((("row", row_key), [("cell", row_key, cat) for cat in categories]))
    for cat in categories:
        groups.append((("column", cat), [("cell", row_key, cat) for row_key in rows]))
    # The margins are groups too: the row totals add up to the grand total, and so do the column totals.
    groups.append((("grand",), [("row", row_key) for row_key in rows]))
    groups.append((("grand",), [("column", cat) for cat in categories]))

    withheld = _enforce(values, groups)

    def shown(key: Hashable) -> int | str:
        return STAR if key in withheld else suppress_count(values[key])

    return {
        "rows": {row_key: {cat: shown(("cell", row_key, cat)) for cat in categories} for row_key in rows},
        "row_totals": {row_key: shown(("row", row_key)) for row_key in rows},
        "column_totals": {cat: shown(("column", cat)) for cat in categories},
        "grand_total": shown(("grand",)),
    }


def withheld_cells(
    values: dict[Hashable, int],
    groups: Iterable[tuple[Hashable, list[Hashable]]],
    rank=None,
    exempt: frozenset = frozenset(),
    exposed=None,
) -> set[Hashable]:
    """The cells to publish as "*" for any set of counts and (total, parts) groups, sharing cells freely.

    For a report whose tables share their margins (several breakdowns of the same per-site totals), so one
    enforcement covers them all and a cell is withheld everywhere it appears or nowhere.
    """
    for key, n in values.items():
        _check_count(n, f"count at {key!r}")
    return _enforce(values, groups, rank, frozenset(exempt), exposed)


def shown_count(n: int, *, withheld: bool) -> int | str:
    """The published form of a count: "*" when withheld (primary or secondary), else the primary rule."""
    return STAR if withheld else suppress_count(n)
