"""Reporting periods: parsing `2026-Q3`, `2026-07`, `2026` or from/to dates, and stepping through a pilot.

The calendar arithmetic is python-dateutil's (relativedelta for period ends, rrule for stepping), so month
lengths, leap years and quarter boundaries are never worked out by hand.
"""

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from dateutil.parser import isoparse
from dateutil.relativedelta import relativedelta
from dateutil.rrule import MONTHLY, rrule
from django.core.exceptions import ValidationError
from django.utils import timezone

from colocation.models import Cadence

# Bounds a period must fall within: wide enough for any pilot, narrow enough that date arithmetic never
# overflows and a typing slip (20026) is caught.
FIRST_YEAR, LAST_YEAR = 2000, 2099

ACCEPTED_FORMS = (
    "Give period as a year (2026), a quarter (2026-Q3) or a month (2026-07), "
    "or instead give from and to as dates (from=2026-07-01&to=2026-09-30); "
    f"years {FIRST_YEAR} to {LAST_YEAR}."
)

_YEAR = re.compile(r"^(\d{4})$")
_QUARTER = re.compile(r"^(\d{4})-[Qq]([1-4])$")
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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


def _check_year(value: int, field: str) -> None:
    if not FIRST_YEAR <= value <= LAST_YEAR:
        raise ValidationError({field: f"{value} is outside the years reports cover. {ACCEPTED_FORMS}"})


def _parse_label(text: str) -> Period:
    text = text.strip()
    if match := _YEAR.match(text):
        _check_year(int(match[1]), "period")
        return year(int(match[1]))
    if match := _QUARTER.match(text):
        _check_year(int(match[1]), "period")
        return quarter(int(match[1]), int(match[2]))
    if match := _MONTH.match(text):
        _check_year(int(match[1]), "period")
        return month(int(match[1]), int(match[2]))
    raise ValidationError({"period": f"{text[:40]!r} is not a period. {ACCEPTED_FORMS}"})


def _parse_date(value, field: str) -> date:
    if isinstance(value, datetime):
        value = value.date()
    if isinstance(value, date):
        _check_year(value.year, field)
        return value
    text = str(value).strip()
    # isoparse alone would also take "2026" or "2026-07" as a date: insist on a whole day here.
    if not _DATE.match(text):
        raise ValidationError({field: f"{text[:40]!r} is not a date: give YYYY-MM-DD. {ACCEPTED_FORMS}"})
    try:
        parsed = isoparse(text).date()
    except ValueError:
        raise ValidationError({field: f"{text!r} is not a day of the calendar. {ACCEPTED_FORMS}"}) from None
    _check_year(parsed.year, field)
    return parsed


def parse_period(period=None, *, start=None, end=None) -> Period:
    """The period a report covers, from a label or from/to dates; a ValidationError naming the accepted forms.

    `start` and `end` are the `from` and `to` of the API (both inclusive).
    """
    if period is not None and not isinstance(period, str):
        raise ValidationError({"period": f"Give period as text. {ACCEPTED_FORMS}"})
    period = period.strip() if isinstance(period, str) else period
    start = start.strip() if isinstance(start, str) else start
    end = end.strip() if isinstance(end, str) else end
    if period and (start or end):
        raise ValidationError({"period": f"Give either period or from and to, not both. {ACCEPTED_FORMS}"})
    if period:
        return _parse_label(period)
    if not start and not end:
        raise ValidationError({"period": f"A period is required. {ACCEPTED_FORMS}"})
    errors = {}
    if not start:
        errors["from"] = f"from is required with to. {ACCEPTED_FORMS}"
    if not end:
        errors["to"] = f"to is required with from. {ACCEPTED_FORMS}"
    if errors:
        raise ValidationError(errors)
    first, last = _parse_date(start, "from"), _parse_date(end, "to")
    if last < first:
        raise ValidationError({"to": f"to ({last.isoformat()}) is before from ({first.isoformat()})."})
    return Period(f"{first.isoformat()}/{last.isoformat()}", first, last)


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
