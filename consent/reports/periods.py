"""Reporting periods: the closed set a report may be asked for, clipped to the pilot, and stepping through a pilot.

A report covers one standard period only: a calendar year (`2026`), quarter (`2026-Q3`) or month (`2026-07`),
or the pilot to date (`pilot`), always clipped to the pilot's own dates. Arbitrary windows are refused:
narrow from/to windows let a reader difference reports down to single days and recover withheld counts.

The calendar arithmetic is python-dateutil's (relativedelta for period ends, rrule for stepping), so month
lengths, leap years and quarter boundaries are never worked out by hand.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta
from dateutil.rrule import MONTHLY, rrule
from django.core.exceptions import ValidationError
from django.utils import timezone

from colocation.models import Cadence

# Bounds a period must fall within: wide enough for any pilot, narrow enough that date arithmetic never
# overflows and a typing slip (20026) is caught.
FIRST_YEAR, LAST_YEAR = 2000, 2099

PILOT_TO_DATE = "pilot"
ACCEPTED_FORMS = (
    "Give period as a year (2026), a quarter (2026-Q3), a month (2026-07) or the pilot to date (pilot); "
    f"years {FIRST_YEAR} to {LAST_YEAR}. Reports cover these standard periods only, clipped to the pilot's dates: "
    "other windows (from/to) are not accepted, so that reports cannot be differenced to recover withheld counts."
)

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


@dataclass(frozen=True)
class Period:
    """A closed range of calendar days with the label it is reported under."""

    label: str
    start: date
    end: date

    def as_dict(self) -> dict:
        return {"label": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}

    def contains(self, other: "Period") -> bool:
        return self.start <= other.start and other.end <= self.end


def end_of_day(day: date) -> datetime:
    """The last instant of a day in the current time zone: records up to then count as at that day."""
    next_midnight = timezone.make_aware(datetime.combine(day + timedelta(days=1), time.min))
    return next_midnight - timedelta(microseconds=1)


def month(year: int, number: int) -> Period:
    start = date(year, number, 1)
    return Period(f"{year}-{number:02d}", start, start + relativedelta(months=1, days=-1))


def quarter(year: int, number: int) -> Period:
    start = date(year, 3 * (number - 1) + 1, 1)
    return Period(f"{year}-Q{number}", start, start + relativedelta(months=3, days=-1))


def year(number: int) -> Period:
    return Period(str(number), date(number, 1, 1), date(number, 12, 31))


def _check_year(value: int) -> None:
    if not FIRST_YEAR <= value <= LAST_YEAR:
        raise ValidationError({"period": f"{value} is outside the years reports cover. {ACCEPTED_FORMS}"})


def parse_period(text) -> Period:
    """The calendar period a label names (a year, quarter or month); a ValidationError naming the accepted forms.

    The pilot to date depends on the pilot: see period_of_pilot.
    """
    if not isinstance(text, str):
        raise ValidationError({"period": f"Give period as text. {ACCEPTED_FORMS}" if text is not None else
                               f"A period is required. {ACCEPTED_FORMS}"})  # fmt: skip
    text = text.strip()
    if not text:
        raise ValidationError({"period": f"A period is required. {ACCEPTED_FORMS}"})
    if match := _YEAR.match(text):
        _check_year(int(match[1]))
        return year(int(match[1]))
    if match := _QUARTER.match(text):
        _check_year(int(match[1]))
        return quarter(int(match[1]), int(match[2]))
    if match := _MONTH.match(text):
        _check_year(int(match[1]))
        return month(int(match[1]), int(match[2]))
    raise ValidationError({"period": f"{text[:40]!r} is not a standard period. {ACCEPTED_FORMS}"})


def period_of_pilot(pilot, period, *, today: date | None = None) -> Period:
    """The period a pilot's report covers: a standard period (or its label) clipped to the pilot's dates.

    `pilot` (the pilot to date) runs from the pilot's start to today or its end, whichever is first. A period
    that does not overlap the pilot at all is refused, naming the pilot's dates.
    """
    pilot_dates = f"the pilot runs from {pilot.starts_on.isoformat()} to {pilot.ends_on.isoformat()}"
    if isinstance(period, Period):
        # Only its label counts: a Period made up in code with other dates is not a report's period either.
        period = period.label
    if isinstance(period, str) and period.strip().lower() == PILOT_TO_DATE:
        today = today or timezone.localdate()
        if today < pilot.starts_on:
            raise ValidationError({"period": f"The pilot has not started yet: {pilot_dates}."})
        return Period(PILOT_TO_DATE, pilot.starts_on, min(pilot.ends_on, today))
    calendar = parse_period(period)
    start, end = max(calendar.start, pilot.starts_on), min(calendar.end, pilot.ends_on)
    if end < start:
        raise ValidationError({"period": f"{calendar.label} is outside the pilot's dates: {pilot_dates}."})
    return Period(calendar.label, start, end)


def steps(start: date, end: date, cadence: str) -> list[Period]:
    """The calendar months or quarters that overlap start..end, each clipped to it, in order."""
    if end < start:
        return []
    interval = 3 if cadence == Cadence.QUARTERLY else 1
    first_month = 3 * ((start.month - 1) // 3) + 1 if interval == 3 else start.month
    anchor = datetime(start.year, first_month, 1)
    buckets = []
    for begins in rrule(MONTHLY, interval=interval, dtstart=anchor, until=datetime.combine(end, time.min)):
        whole = quarter(begins.year, (begins.month - 1) // 3 + 1) if interval == 3 else month(begins.year, begins.month)
        buckets.append(Period(whole.label, max(whole.start, start), min(whole.end, end)))
    return buckets
