"""Disclosure control (HES rule): primary and secondary suppression, shares and medians."""

from decimal import ROUND_HALF_UP, Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from consent.reports.disclosure import (
    DISCLOSURE_CONTROL,
    STAR,
    suppress_count,
    suppress_group,
    suppress_median,
    suppress_share,
    suppress_table,
)


def expected_rounding(n):
    """Nearest 5, halves up, worked out independently of the module under test."""
    return int((Decimal(n) / 5).quantize(Decimal(1), rounding=ROUND_HALF_UP)) * 5


def assert_published_correctly(true, shown):
    """A shown figure is 0 for a true 0, "*" for 1-7, and otherwise "*" or the true figure rounded to 5."""
    if true == 0:
        assert shown == 0
    elif true <= 7:
        assert shown == STAR
    else:
        assert shown == STAR or shown == expected_rounding(true)
    if shown != STAR:
        assert type(shown) is int
        assert shown % 5 == 0
        assert not 1 <= shown <= 7


def assert_not_derivable(total_shown, parts_shown):
    """The invariant: counting the total as a member, a group never has exactly one withheld cell."""
    withheld = [total_shown, *parts_shown].count(STAR)
    assert withheld != 1, (total_shown, parts_shown)


# Primary rule


def test_it_keeps_zero_as_zero():
    assert suppress_count(0) == 0


@pytest.mark.parametrize("n", range(1, 8))
def test_it_withholds_counts_from_one_to_seven(n):
    assert suppress_count(n) == STAR


@pytest.mark.parametrize(
    ("n", "shown"),
    [
        (8, 10),
        (9, 10),
        (10, 10),
        (11, 10),
        (12, 10),
        (13, 15),
        (14, 15),
        (15, 15),
        (17, 15),
        (18, 20),
        (100, 100),
        (102, 100),
        (103, 105),
    ],
)
def test_it_rounds_larger_counts_to_the_nearest_five(n, shown):
    assert suppress_count(n) == shown


@pytest.mark.parametrize("n", [-1, 2.0, "3", None, True])
def test_it_rejects_anything_but_a_non_negative_int(n):
    with pytest.raises((TypeError, ValueError)):
        suppress_count(n)


def test_it_describes_the_rule():
    # What JSON and CSV say with every report: the HES rule, the cell key, and that * also covers second cells.
    assert DISCLOSURE_CONTROL.startswith("counts 1-7 shown as *, others rounded to a multiple of 5 within 5 of the count")
    assert "cell-key" in DISCLOSURE_CONTROL
    assert "* also covers counts withheld so that others cannot be worked out by subtraction" in DISCLOSURE_CONTROL


# Shares and medians


def test_it_computes_a_share_from_unrounded_figures():
    # Shown as 10 and 35, which would give 0.29; the raw figures give 0.32.
    share = suppress_share(12, 37, numerator_shown=suppress_count(12), denominator_shown=suppress_count(37))
    assert share == 0.32


def test_it_gives_no_share_for_a_zero_denominator():
    assert suppress_share(0, 0, numerator_shown=0, denominator_shown=0) is None


def test_it_shows_a_zero_share_when_the_numerator_is_a_true_zero():
    assert suppress_share(0, 40, numerator_shown=0, denominator_shown=40) == 0.0


def test_it_withholds_a_share_resting_on_a_withheld_numerator():
    assert suppress_share(3, 40, numerator_shown=STAR, denominator_shown=40) == STAR


def test_it_withholds_a_share_resting_on_a_withheld_denominator():
    assert suppress_share(3, 5, numerator_shown=STAR, denominator_shown=STAR) == STAR
    # A secondarily withheld denominator counts too, even though the raw figure is large.
    assert suppress_share(20, 30, numerator_shown=20, denominator_shown=STAR) == STAR


def test_it_withholds_a_median_resting_on_a_withheld_count():
    assert suppress_median(12.5, resting_on=STAR) == STAR
    assert suppress_median(None, resting_on=STAR) == STAR


def test_it_shows_a_median_resting_on_a_shown_count():
    assert suppress_median(12.5, resting_on=20) == 12.5
    assert suppress_median(None, resting_on=0) is None


# Secondary suppression in one group


def test_it_withholds_a_second_part_when_one_part_is_small():
    total, parts = suppress_group(40, {"a": 3, "b": 12, "c": 25})
    assert parts == {"a": STAR, "b": STAR, "c": 25}
    assert total == 40


def test_it_withholds_the_smallest_other_part_and_keeps_zeros():
    total, parts = suppress_group(60, {"a": 0, "b": 30, "c": 2, "d": 10, "e": 18})
    assert parts == {"a": 0, "b": 30, "c": STAR, "d": STAR, "e": 20}
    assert total == 60


def test_it_leaves_a_group_alone_when_two_parts_are_already_small():
    total, parts = suppress_group(40, {"a": 3, "b": 5, "c": 32})
    assert parts == {"a": STAR, "b": STAR, "c": 30}
    assert total == 40


def test_it_withholds_the_total_when_the_other_parts_are_zero():
    # Part of the total is not broken down here, so the total is still large.
    total, parts = suppress_group(20, {"a": 5, "b": 0, "c": 0})
    assert parts == {"a": STAR, "b": 0, "c": 0}
    assert total == STAR


def test_it_withholds_a_small_total_with_its_only_part():
    total, parts = suppress_group(5, {"a": 5, "b": 0})
    assert (total, parts) == (STAR, {"a": STAR, "b": 0})


def test_it_leaves_a_group_without_small_counts_alone():
    total, parts = suppress_group(100, {"a": 0, "b": 8, "c": 92})
    assert (total, parts) == (100, {"a": 0, "b": 10, "c": 90})


def test_it_rejects_parts_that_add_up_to_more_than_the_total():
    with pytest.raises(ValueError):
        suppress_group(10, {"a": 6, "b": 6})


# Secondary suppression in a table


def test_it_suppresses_across_rows_and_columns():
    table = suppress_table({"s1": {"x": 3, "y": 0}, "s2": {"x": 20, "y": 0}})
    # Column x: 3 is withheld, so 20 goes too; row s2 then has only a zero left, so its total goes.
    assert table == {
        "rows": {"s1": {"x": STAR, "y": 0}, "s2": {"x": STAR, "y": 0}},
        "row_totals": {"s1": STAR, "s2": STAR},
        "column_totals": {"x": 25, "y": 0},
        "grand_total": 25,
    }


def test_it_fills_missing_categories_with_zero():
    table = suppress_table({"s1": {"x": 10}, "s2": {"y": 20}})
    assert table["rows"] == {"s1": {"x": 10, "y": 0}, "s2": {"x": 0, "y": 20}}
    assert table["row_totals"] == {"s1": 10, "s2": 20}
    assert table["column_totals"] == {"x": 10, "y": 20}
    assert table["grand_total"] == 30


def test_it_handles_an_empty_table():
    assert suppress_table({}) == {"rows": {}, "row_totals": {}, "column_totals": {}, "grand_total": 0}


# Properties over random tables

# Many zeros and small counts, so primary and secondary suppression both happen often.
counts = st.one_of(st.just(0), st.integers(0, 9), st.integers(0, 60))


@st.composite
def tables(draw):
    n_rows = draw(st.integers(1, 6))
    n_columns = draw(st.integers(1, 6))
    return {f"site{r}": {f"cat{c}": draw(counts) for c in range(n_columns)} for r in range(n_rows)}


@settings(max_examples=300, deadline=None)
@given(tables())
def test_it_never_publishes_a_small_or_derivable_count_in_a_table(rows):
    table = suppress_table(rows)
    categories = list(next(iter(rows.values())))
    row_totals = {r: sum(row.values()) for r, row in rows.items()}
    column_totals = {c: sum(row[c] for row in rows.values()) for c in categories}
    grand_total = sum(row_totals.values())

    # Every published figure follows the primary rule, and zeros are never withheld.
    for r, row in rows.items():
        for c, n in row.items():
            assert_published_correctly(n, table["rows"][r][c])
        assert_published_correctly(row_totals[r], table["row_totals"][r])
    for c in categories:
        assert_published_correctly(column_totals[c], table["column_totals"][c])
    assert_published_correctly(grand_total, table["grand_total"])

    # No withheld figure can be got back by subtraction or addition in its row, column or margin.
    for r in rows:
        assert_not_derivable(table["row_totals"][r], list(table["rows"][r].values()))
    for c in categories:
        assert_not_derivable(table["column_totals"][c], [table["rows"][r][c] for r in rows])
    assert_not_derivable(table["grand_total"], list(table["row_totals"].values()))
    assert_not_derivable(table["grand_total"], list(table["column_totals"].values()))

    # Secondary suppression only ever follows primary suppression.
    figures = [n for row in rows.values() for n in row.values()]
    figures += [*row_totals.values(), *column_totals.values(), grand_total]
    if not any(1 <= n <= 7 for n in figures):
        published = [v for row in table["rows"].values() for v in row.values()]
        published += [*table["row_totals"].values(), *table["column_totals"].values(), table["grand_total"]]
        assert STAR not in published


@settings(max_examples=300, deadline=None)
@given(st.lists(counts, min_size=1, max_size=6), st.integers(0, 20))
def test_it_never_publishes_a_small_or_derivable_count_in_a_group(values, not_broken_down):
    parts = {f"part{i}": n for i, n in enumerate(values)}
    total = sum(values) + not_broken_down
    total_shown, parts_shown = suppress_group(total, parts)

    assert_published_correctly(total, total_shown)
    for name, n in parts.items():
        assert_published_correctly(n, parts_shown[name])
    if not_broken_down == 0:
        assert_not_derivable(total_shown, list(parts_shown.values()))
    else:
        # A withheld total can stand alone only when the parts do not cover it, so the
        # unpublished remainder keeps it hidden; the parts themselves still need company.
        parts_withheld = list(parts_shown.values()).count(STAR)
        assert parts_withheld != 1 or total_shown == STAR
        if total_shown == STAR and parts_withheld == 0:
            assert all(n == 0 for n in values)
