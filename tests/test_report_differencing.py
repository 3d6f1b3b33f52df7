"""No reader can recover a withheld count by differencing reports: an adversary with every report tries.

The adversary and the random pilot worlds are in tests/report_adversary.py; Adversary's docstring states its
strategy. The worlds are built in Python and published through the real report.publish, the one function
every format (JSON, CSV, HTML) and every snapshot goes through.
"""

import random

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from consent.reports import audit, disclosure, report
from tests.report_adversary import Adversary, all_reports, lattice_of, months_of, pilot_world, standard_periods

pytestmark = pytest.mark.slow


@st.composite
def worlds(draw):
    rng = draw(st.randoms(use_true_random=False))
    return pilot_world(
        rng,
        sites=draw(st.integers(1, 3)),
        months=draw(st.integers(2, 14)),
        start=(2026, draw(st.integers(1, 12))),
        cadence=draw(st.sampled_from(["monthly", "quarterly"])),
        busy=draw(st.sampled_from([0.5, 1.0, 1.5, 3.0])),
    )


def seeded_world(seed: int):
    """The world tests/report_adversary.py's evaluation draws for a seed (docs/disclosure-control.md's table)."""
    rng = random.Random(seed)
    return pilot_world(rng, sites=rng.randint(1, 3), months=rng.randint(2, 14), start=(2026, rng.randint(1, 12)),
                       cadence=rng.choice(["monthly", "quarterly"]), busy=rng.choice([0.5, 1, 1.5, 3]))  # fmt: skip


# Worlds where the reader beat disclosure control applied one report at a time (docs/disclosure-control.md):
# 154 and 254 by chains of nested periods (a quarter published low, its months high), 989 even with the lattice's
# consistent first pass, until the audit across reports withheld four more cells.
WORLDS_THE_PER_REPORT_METHOD_LOST = (154, 254, 989)


# Twelve random worlds, as well as the three above. The audit across reports is meant to hold in every world
# (docs/disclosure-control.md: none of 1,000 seeded worlds was lost); the draw is fixed (derandomize) so that CI
# is repeatable; tests/differencing_survey.py tries any number of seeded worlds. A failure is a world to add to
# the examples and a flaw to fix.
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
@example(seeded_world(154))
@example(seeded_world(254))
@example(seeded_world(989))
def test_no_reader_with_every_report_pins_a_count_from_1_to_7(world):
    """Every standard period, every site, every breakdown and share: the adversary never works out a small count."""
    adversary = Adversary(world, all_reports(world))
    adversary.propagate()
    # pinned_small_counts also asserts the adversary never concluded anything false: its bounds hold the truth.
    assert adversary.pinned_small_counts() == []


def _within_each_report_only(lattice):
    """Pass 1 of the audit alone: the HES and room rules report by report, no audit across reports."""
    table = audit.lattice_table(lattice)
    return frozenset(table.within_reports() - table.unpublished)


def test_the_audit_across_reports_is_what_keeps_world_989_safe(monkeypatch):
    """Without pass 2 the reader pins a count in world 989; with it, nothing, at the cost of four more cells."""
    world = seeded_world(989)
    monkeypatch.setattr(report, "withheld_in_pilot", _within_each_report_only)
    adversary = Adversary(world, all_reports(world))
    adversary.propagate()
    assert adversary.pinned_small_counts() != []

    monkeypatch.undo()
    adversary = Adversary(world, all_reports(world))
    adversary.propagate()
    assert adversary.pinned_small_counts() == []
    table = audit.lattice_table(lattice_of(world))
    assert len(table.withheld() - table.within_reports()) == 4


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(worlds())
def test_reports_of_overlapping_periods_agree_on_every_figure_they_share(world):
    """A set of referrals shown in several reports (a month in its own report and in every later series, a
    quarter clipped to the one month of the pilot it holds) has one published figure, or "*", in all of them."""
    shown: dict[tuple, set] = {}
    for period, published in zip(standard_periods(world), all_reports(world), strict=True):
        months = months_of(world, period)
        for scope in [published["totals"], *published["sites"]]:
            site = scope.get("site", {}).get("id", "total")
            shown.setdefault((months, site, "referrals_received"), set()).add(scope["referrals_received"])
            for category, value in scope["by_pathway"].items():
                shown.setdefault((months, site, category), set()).add(value)
        for point in published["series"]:
            bucket = frozenset(m for m in world.months if point["start"] <= f"{m[0]}-{m[1]:02d}-01" <= point["end"])
            shown.setdefault((bucket, "total", "referrals_received"), set()).add(point["referrals_received"])
    for name, values in shown.items():
        # One figure, or "*" everywhere: whether a cell is withheld is decided once for every report of the pilot.
        assert len(values) == 1, (name, values)


SEEDS_THE_OLD_METHOD_LOSES = (20, 25, 27, 29)


def test_the_adversary_is_not_a_straw_man_it_beats_plain_rounding(monkeypatch):
    """Against the HES rule alone (rounding to 5 with no cell key, secondary suppression within each report, no
    audit across reports) the same adversary recovers small counts exactly: 12 of the first 30 random worlds
    when this was written."""
    monkeypatch.setattr(audit, "publish_count", lambda n, key: disclosure.suppress_count(n))
    monkeypatch.setattr(audit.Table, "room_exposed", lambda self, total, parts, withheld: False)
    monkeypatch.setattr(report, "withheld_in_pilot", _within_each_report_only)
    monkeypatch.setattr(
        Adversary, "published_range", staticmethod(lambda v: range(0, 1) if v == 0 else range(max(8, v - 2), v + 3))
    )
    wins = 0
    for seed in SEEDS_THE_OLD_METHOD_LOSES:
        adversary = Adversary(world := seeded_world(seed), all_reports(world))
        adversary.propagate()
        wins += bool(adversary.pinned_small_counts())
    assert wins >= 3
