"""Reporting periods: the accepted forms, the messages for the others, and stepping through a pilot."""

from datetime import date

import pytest
from django.core.exceptions import ValidationError

from consent.reports.periods import ACCEPTED_FORMS, Period, parse_period, steps


@pytest.mark.parametrize(
    ("text", "label", "start", "end"),
    [
        ("2026-Q3", "2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
        ("2026-q1", "2026-Q1", date(2026, 1, 1), date(2026, 3, 31)),
        ("2026-Q4", "2026-Q4", date(2026, 10, 1), date(2026, 12, 31)),
        ("2026-07", "2026-07", date(2026, 7, 1), date(2026, 7, 31)),
        ("2028-02", "2028-02", date(2028, 2, 1), date(2028, 2, 29)),  # a leap year
        ("2026-02", "2026-02", date(2026, 2, 1), date(2026, 2, 28)),
        ("2026", "2026", date(2026, 1, 1), date(2026, 12, 31)),
        (" 2026-Q3 ", "2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),
    ],
)
def test_it_parses_years_quarters_and_months(text, label, start, end):
    assert parse_period(text) == Period(label, start, end)


def test_it_parses_from_and_to_dates_inclusive():
    period = parse_period(start="2026-07-15", end="2026-08-14")
    assert (period.start, period.end) == (date(2026, 7, 15), date(2026, 8, 14))
    assert period.label == "2026-07-15/2026-08-14"
    assert parse_period(start="2026-07-15", end="2026-07-15").start == date(2026, 7, 15)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"period": "2026-Q5"}, "period"),
        ({"period": "2026-13"}, "period"),
        ({"period": "26-Q3"}, "period"),
        ({"period": "Q3 2026"}, "period"),
        ({"period": "1999"}, "period"),
        ({"period": "2100-Q1"}, "period"),
        ({}, "period"),
        ({"start": "2026-07-01"}, "to"),
        ({"end": "2026-07-01"}, "from"),
        ({"start": "2026-07", "end": "2026-08-01"}, "from"),
        ({"start": "2026-02-30", "end": "2026-03-01"}, "from"),
        ({"start": "2026-09-01", "end": "2026-08-01"}, "to"),
        ({"period": "2026", "start": "2026-01-01", "end": "2026-02-01"}, "period"),
        ({"period": 2026}, "period"),
        ({"period": ["2026-Q3"]}, "period"),
        ({"start": 20260701, "end": "2026-07-02"}, "from"),
    ],
)
def test_it_refuses_anything_else_naming_the_field_and_the_accepted_forms(kwargs, field):
    with pytest.raises(ValidationError) as raised:
        parse_period(kwargs.pop("period", None), **kwargs)
    messages = raised.value.message_dict
    assert field in messages
    if field != "to" or "before" not in messages[field][0]:
        assert ACCEPTED_FORMS in messages[field][0]


def test_it_steps_through_a_pilot_by_quarter_clipped_to_its_dates():
    buckets = steps(date(2026, 2, 15), date(2026, 8, 10), "quarterly")
    assert buckets == [
        Period("2026-Q1", date(2026, 2, 15), date(2026, 3, 31)),
        Period("2026-Q2", date(2026, 4, 1), date(2026, 6, 30)),
        Period("2026-Q3", date(2026, 7, 1), date(2026, 8, 10)),
    ]


def test_it_steps_by_month_across_a_year_end_and_a_leap_february():
    buckets = steps(date(2027, 12, 1), date(2028, 3, 31), "monthly")
    assert [b.label for b in buckets] == ["2027-12", "2028-01", "2028-02", "2028-03"]
    assert buckets[2].end == date(2028, 2, 29)


def test_it_has_no_steps_for_an_empty_range():
    assert steps(date(2026, 5, 1), date(2026, 4, 30), "monthly") == []
