"""Reporting periods: the standard forms only, clipped to the pilot, the messages for the others, and stepping."""

from datetime import date
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError

from consent.reports.periods import ACCEPTED_FORMS, Period, parse_period, period_of_pilot, steps


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


@pytest.mark.parametrize(
    "value",
    ["2026-Q5", "2026-13", "26-Q3", "Q3 2026", "1999", "2100-Q1", "", "2026-07-15", "2026-07-01/2026-07-31", 2026,
     ["2026-Q3"], None],
)  # fmt: skip
def test_it_refuses_anything_but_a_standard_period_naming_the_accepted_forms(value):
    with pytest.raises(ValidationError) as raised:
        parse_period(value)
    assert ACCEPTED_FORMS in raised.value.message_dict["period"][0]


PILOT = SimpleNamespace(starts_on=date(2026, 2, 15), ends_on=date(2026, 11, 10))


@pytest.mark.parametrize(
    ("label", "start", "end"),
    [
        ("2026-Q1", date(2026, 2, 15), date(2026, 3, 31)),  # clipped to the pilot's start
        ("2026-Q3", date(2026, 7, 1), date(2026, 9, 30)),  # inside: unchanged
        ("2026-11", date(2026, 11, 1), date(2026, 11, 10)),  # clipped to its end
        ("2026", date(2026, 2, 15), date(2026, 11, 10)),
    ],
)
def test_it_clips_a_standard_period_to_the_pilots_dates(label, start, end):
    assert period_of_pilot(PILOT, label) == Period(label, start, end)


def test_the_pilot_to_date_runs_from_its_start_to_today_or_its_end():
    assert period_of_pilot(PILOT, "pilot", today=date(2026, 6, 30)) == Period("pilot", date(2026, 2, 15), date(2026, 6, 30))
    assert period_of_pilot(PILOT, " Pilot ", today=date(2027, 1, 5)) == Period("pilot", date(2026, 2, 15), date(2026, 11, 10))


@pytest.mark.parametrize("label", ["2026-01", "2026-12", "2025", "2027-Q1"])
def test_it_refuses_a_period_outside_the_pilot_naming_its_dates(label):
    with pytest.raises(ValidationError) as raised:
        period_of_pilot(PILOT, label)
    assert "2026-02-15" in raised.value.message_dict["period"][0] and "2026-11-10" in raised.value.message_dict["period"][0]


def test_it_refuses_the_pilot_to_date_before_the_pilot_starts():
    with pytest.raises(ValidationError, match="not started"):
        period_of_pilot(PILOT, "pilot", today=date(2026, 1, 1))


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


def test_a_period_made_up_in_code_is_taken_by_its_label_only():
    made_up = Period("2026-Q3", date(2026, 7, 15), date(2026, 7, 15))
    assert period_of_pilot(PILOT, made_up) == Period("2026-Q3", date(2026, 7, 1), date(2026, 9, 30))
    with pytest.raises(ValidationError):
        period_of_pilot(PILOT, Period("2026-07-15/2026-07-15", date(2026, 7, 15), date(2026, 7, 15)))
