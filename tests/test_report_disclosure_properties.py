"""Properties of the published report over random pilots: nothing small, nothing unrounded, nothing derivable.

The figures are generated directly (no database): publish() is the one function every format goes through,
so what holds for its output holds for JSON, CSV, HTML and snapshots alike.
"""

from datetime import date
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from colocation.models import Site
from consent.reports.disclosure import counts_published_as, publish_count
from consent.reports.metrics import ACCESS_COUNTS, SIMPLE_COUNTS, Figures, PilotFigures, SeriesPoint
from consent.reports.periods import month, quarter
from consent.reports.report import publish
from consent.selectors import Voluntariness

pytestmark = pytest.mark.slow

STAR = "*"
PERIOD = quarter(2026, 3)
PATHWAYS = ("self_referral", "signposted_by_work_coach", "mandated_assessment", "benefit_condition")
SOURCES = ("B1", "M5", "A1")
HOW = ("work_coach_suggested", "leaflet_or_poster", "gp", "friend_or_family", "found_themselves", "other")
BREAKDOWN_KEYS = {
    "by_pathway": PATHWAYS,
    "by_source_of_referral": SOURCES,
    "by_how_heard": HOW,
    "voluntariness": Voluntariness.ALL,
}
COUNT_KEYS = ("explicit_consent", "remained_voluntary", *SIMPLE_COUNTS, *ACCESS_COUNTS)

# Mostly small numbers, so primary and secondary suppression both happen often.
small = st.one_of(st.just(0), st.integers(0, 9), st.integers(0, 40))


@st.composite
def partition(draw, total: int, keys) -> dict:
    cuts = sorted(draw(st.lists(st.integers(0, total), min_size=len(keys) - 1, max_size=len(keys) - 1)))
    bounds = [0, *cuts, total]
    return {key: bounds[i + 1] - bounds[i] for i, key in enumerate(keys)}


@st.composite
def site_figures(draw) -> Figures:
    voluntariness = {key: draw(small) for key in Voluntariness.ALL}
    received = sum(voluntariness.values())
    known = voluntariness["voluntary"] + voluntariness["concern"] + voluntariness["not_voluntary"]
    figures = Figures(
        referrals_received=received,
        by_pathway=draw(partition(received, PATHWAYS)),
        by_source_of_referral=draw(partition(received, SOURCES)),
        by_how_heard=draw(partition(received, HOW)),
        voluntariness=voluntariness,
    )
    figures.counts = {name: draw(st.integers(0, received)) for name in (*SIMPLE_COUNTS, *ACCESS_COUNTS)}
    figures.counts["explicit_consent"] = draw(st.integers(known, received))
    figures.median_days_to_consent = draw(st.one_of(st.none(), st.floats(0, 30)))
    return figures


@st.composite
def pilots(draw) -> PilotFigures:
    n_sites = draw(st.integers(1, 5))
    by_site = {i: draw(site_figures()) for i in range(1, n_sites + 1)}
    total = Figures(by_source_of_referral=dict.fromkeys(SOURCES, 0))
    for figures in by_site.values():
        total.referrals_received += figures.referrals_received
        for breakdown in BREAKDOWN_KEYS:
            for key, n in getattr(figures, breakdown).items():
                getattr(total, breakdown)[key] += n
        for name in figures.counts:
            total.counts[name] += figures.counts[name]
    # Attempts aimed at no referral are only in the total.
    for name in ACCESS_COUNTS:
        total.counts[name] += draw(st.integers(0, 3))
    # A monthly series: three months before the period, then the period's three months, which add up to it.
    inside = draw(partition(total.referrals_received, ("07", "08", "09")))
    series = [SeriesPoint(month(2026, m), draw(small), 0) for m in (4, 5, 6)]
    series += [SeriesPoint(month(2026, int(m)), n, draw(st.integers(0, n))) for m, n in inside.items()]
    sites = [
        SimpleNamespace(pk=i, name=f"Site {i}", provider=SimpleNamespace(name="Provider"), provider_id=1,
                        separation_last_reviewed=date(2026, 5, 1), **dict.fromkeys(Site.SEPARATION_FIELDS, True))
        for i in by_site
    ]  # fmt: skip
    pilot = SimpleNamespace(pk=1, name="Pilot", cadence="monthly")
    return PilotFigures(
        pilot=pilot, period=PERIOD, sites=sites, by_site=by_site, total=total, series=series, source_codes=list(SOURCES)
    )


def _true(figures: Figures, key: str, category: str | None = None) -> int:
    if category is not None:
        return getattr(figures, key)[category]
    if key == "referrals_received":
        return figures.referrals_received
    if key == "remained_voluntary":
        return figures.remained_voluntary
    return figures.counts[key]


def _check_published(true: int, shown) -> None:
    if shown == STAR:
        assert true > 0, "a true 0 must be published as 0"
        return
    assert type(shown) is int
    assert shown % 5 == 0, shown
    assert not 1 <= shown <= 7, shown
    # The cell-key method: within 5 of the count (perturbed by -3..3, then rounded to 5), a true 0 always 0.
    assert true in counts_published_as(shown) and abs(shown - true) <= 5 and (true == 0) == (shown == 0)
    assert not 1 <= true <= 7, f"{true} published as {shown}"


def _scopes(pilot: PilotFigures, report: dict):
    yield pilot.total, report["totals"]
    for site, published in zip(pilot.sites, report["sites"], strict=True):
        yield pilot.by_site[site.pk], published


def _not_derivable(total, parts, *, remainder: bool = False) -> None:
    withheld = [total, *parts].count(STAR)
    if withheld == 1 and remainder and total == STAR:
        return  # the unpublished remainder (attempts aimed at no referral) keeps a lone total hidden
    assert withheld != 1, (total, parts)


@settings(max_examples=300, deadline=None)
@given(pilots())
def test_no_published_count_is_small_unrounded_or_wrong(pilot):
    report = publish(pilot, {1: True})
    for figures, published in _scopes(pilot, report):
        for key in ("referrals_received", *COUNT_KEYS):
            _check_published(_true(figures, key), published[key])
        for breakdown, keys in BREAKDOWN_KEYS.items():
            for category in keys:
                _check_published(_true(figures, breakdown, category), published[breakdown][category])
        # Shares and medians rest on their counts: withheld with them.
        if STAR in (published["explicit_consent"], published["referrals_received"]) and figures.referrals_received:
            assert published["explicit_consent_share"] == STAR
        if STAR in (published["remained_voluntary"], published["explicit_consent"]) and figures.counts["explicit_consent"]:
            assert published["remained_voluntary_share"] == STAR
        if published["explicit_consent"] == STAR:
            assert published["median_days_to_consent"] == STAR
    points = {p.period.label: p for p in pilot.series}
    for shown in report["series"]:
        true = points[shown["period"]]
        _check_published(true.referrals_received, shown["referrals_received"])
        _check_published(true.remained_voluntary, shown["remained_voluntary"])
    for principle in report["principles"]:
        for value in principle["evidence"].values():
            if isinstance(value, int) and not isinstance(value, bool):
                assert value % 5 == 0 and not 1 <= value <= 7


@settings(max_examples=300, deadline=None)
@given(pilots())
def test_no_withheld_count_can_be_derived_from_its_row_or_column(pilot):
    report = publish(pilot, {1: True})
    scopes = [report["totals"], *report["sites"]]
    # Rows: each breakdown of a site (or of the pilot) adds up to its referrals received.
    for published in scopes:
        for breakdown, keys in BREAKDOWN_KEYS.items():
            _not_derivable(published["referrals_received"], [published[breakdown][k] for k in keys])
    # Columns: every count of the pilot is the sum over its sites.
    for key in ("referrals_received", *COUNT_KEYS):
        _not_derivable(report["totals"][key], [site[key] for site in report["sites"]], remainder=key in ACCESS_COUNTS)
    for breakdown, keys in BREAKDOWN_KEYS.items():
        for k in keys:
            _not_derivable(report["totals"][breakdown][k], [site[breakdown][k] for site in report["sites"]])
    # The months inside the period are other reports' figures, as they stand in those reports: differencing
    # them with the period is the adversary's job (test_report_differencing), not one report's suppression.
    # remained_voluntary is the voluntary count under another name: one cell, published once.
    for published in scopes:
        assert published["remained_voluntary"] == published["voluntariness"]["voluntary"]


def test_a_pilot_with_nothing_small_is_published_rounded_with_nothing_withheld():
    """The properties above would hold if everything were withheld; this pins that nothing needless is."""
    figures = Figures(referrals_received=40, by_pathway=dict(zip(PATHWAYS, (20, 10, 10, 0), strict=True)),
                      by_source_of_referral={"B1": 30, "M5": 0, "A1": 10},
                      by_how_heard=dict(zip(HOW, (10, 10, 10, 10, 0, 0), strict=True)),
                      voluntariness={"voluntary": 22, "concern": 0, "not_voluntary": 9, "unknown": 9})  # fmt: skip
    figures.counts.update(explicit_consent=31, intake_check_recorded=31)
    pilot = PilotFigures(
        pilot=SimpleNamespace(pk=1, name="Pilot", cadence="quarterly"), period=PERIOD,
        sites=[SimpleNamespace(pk=1, name="Site", provider=SimpleNamespace(name="P"), provider_id=1,
                               separation_last_reviewed=None, **dict.fromkeys(Site.SEPARATION_FIELDS, True))],
        by_site={1: figures}, total=figures, series=[SeriesPoint(PERIOD, 40, 22)], source_codes=list(SOURCES),
    )  # fmt: skip
    report = publish(pilot, {1: True})
    # No record keys given: every cell key 0, so each figure is publish_count(n, 0).
    assert report["totals"]["voluntariness"] == {
        "voluntary": publish_count(22, 0),
        "concern": 0,
        "not_voluntary": publish_count(9, 0),
        "unknown": publish_count(9, 0),
    }
    shown = report["totals"]
    # Shares from the published figures, not 31/40 and 22/31 from the raw ones.
    assert shown["explicit_consent_share"] == round(shown["explicit_consent"] / shown["referrals_received"], 2)
    assert shown["remained_voluntary_share"] == round(min(1, shown["remained_voluntary"] / shown["explicit_consent"]), 2)
    assert report["series"][0]["referrals_received"] == publish_count(40, 0)
    assert STAR not in str([report["totals"], report["sites"], report["series"]])
