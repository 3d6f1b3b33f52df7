"""A pilot's lattice cells: counted from the records, kept as records are written, and read by the report.

consent.lattice_cells keeps each pilot's cells (consent.models.LatticeCell) as intakes and records are written,
one referral's counts at a time. Here the same cells are counted from the records in three grouped queries
(counted_cells): a pilot's cells are rebuilt from that count when the pilot's dates or sites are not those its
cells were counted for (KeptLattice), and the recount_report_cells command compares kept and counted.

Aggregate-only access to client rows, as in consent.reports.metrics: only counts per site and month leave here.
"""

from datetime import date, datetime

from django.db import connection, transaction
from django.db.models import (
    Case,
    Count,
    DateField,
    DurationField,
    ExpressionWrapper,
    F,
    Q,
    QuerySet,
    Sum,
    When,
)
from django.db.models.functions import TruncDate, TruncMonth
from django.utils import timezone

from colocation.models import Pilot
from consent.lattice_cells import CONSENT_DAYS, FLAG_TIMES, levels_held, path_name, status_and_count_cells
from consent.models import HowHeard, LatticeCell, Pathway, Referral
from consent.reports.lattice import LatticePeriod
from consent.reports.models import KeptLattice
from consent.reports.periods import end_of_day
from consent.voluntariness_flags import mandated_pathway_flag


def referrals_in(site_ids: list[int], start: date, end: date) -> QuerySet:
    """Every referral received at these sites from start to end inclusive: no status or pathway excluded."""
    return Referral.objects.filter(site_id__in=site_ids, referred_on__gte=start, referred_on__lte=end)


def _month_of_flag(field: str, ends_on: date) -> Case:
    """The calendar month (in the clinic's time zone) a flag's time fell in, or null if none by the pilot's end.

    "Held at the end of a month, quarter or year" is then "its month is at or before that period's last month":
    the pilot's last day clips every period that holds it, and nothing after it is counted at all.
    """
    path = f"voluntariness_flags__{field}"
    if field.endswith("_on"):
        return Case(When(**{f"{path}__lte": ends_on}, then=TruncMonth(path)), default=None, output_field=DateField())
    month_of = TruncMonth(path, output_field=DateField(), tzinfo=timezone.get_current_timezone())
    return Case(When(**{f"{path}__lte": end_of_day(ends_on)}, then=month_of), default=None, output_field=DateField())


def _flag_rows(base: QuerySet, ends_on: date) -> list[dict]:
    """Referrals grouped by site, month received, mandated pathway and the month each flag's time fell in.

    Referrals are grouped by when their facts happened, not by status: a row's flags as at the end of any period
    then follow from its months alone (counted_cells), so one pass serves every period of the pilot.
    """
    months = {f"m|{time}": _month_of_flag(time, ends_on) for time in FLAG_TIMES}
    return list(
        base.annotate(month_received=TruncMonth("referred_on"), mandated=mandated_pathway_flag(), **months)
        .values("site_id", "month_received", "mandated", *months)
        .annotate(n=Count("pk"), key=Sum("record_key"))
        .order_by()
    )


def _kind_rows(base: QuerySet) -> list[dict]:
    """Per site, month received and source: what the referrals are (received, pathway, how heard), with key sums.

    One pass for every count of what referrals are: a source of referral is a group, the rest conditional counts.
    """
    conditions = {"referrals_received": None}
    conditions.update({f"by_pathway:{p}": Q(pathway=p) for p in Pathway.values})
    conditions.update({f"by_how_heard:{h}": Q(how_heard=h) for h in HowHeard.values})
    aggregates = {name: Count("pk", filter=condition) for name, condition in conditions.items()}
    aggregates.update({f"key|{name}": Sum("record_key", filter=condition) for name, condition in conditions.items()})
    return list(
        base.annotate(month_received=TruncMonth("referred_on"))
        .values("site_id", "month_received", "source_of_referral")
        .annotate(**aggregates)
        .order_by()
    )


def _consent_day_rows(base: QuerySet, ends_on: date) -> list[dict]:
    """Referrals explicitly consented by the pilot's end, grouped by site, month received, the month of that
    consent and the days from referral to the first consent in force (the median's values)."""
    first_consent = TruncDate("voluntariness_flags__consent_at", tzinfo=timezone.get_current_timezone())
    return list(
        base.annotate(
            month_received=TruncMonth("referred_on"),
            explicit_month=_month_of_flag("explicit_consent_at", ends_on),
            consent_day=first_consent,
        )
        .filter(explicit_month__isnull=False)
        .annotate(days=ExpressionWrapper(F("consent_day") - F("referred_on"), output_field=DurationField()))
        .values("site_id", "month_received", "explicit_month", "days")
        .annotate(n=Count("pk"), key=Sum("record_key"))
        .order_by()
    )


def _first_day(value) -> date:
    """TruncMonth gives a date on both databases; a datetime only where a backend widens it."""
    return value.date() if isinstance(value, datetime) else value


def _add(cells: dict, site_id: int, first_day: date, path: tuple, n: int, key_sum: int | None) -> None:
    if n:
        cell = cells.setdefault((site_id, first_day, path_name(path)), [0, 0])
        cell[0] += n
        cell[1] += key_sum or 0


def counted_cells(pilot: Pilot, site_ids: list[int]) -> dict[tuple, list[int]]:
    """The pilot's lattice cells counted from the records: (site, month, path) -> [count, key sum], non-zero only.

    Three grouped queries over the pilot's referrals, whatever its size; what consent.lattice_cells keeps as
    records are written must equal it (the recount_report_cells command), and a pilot's cells are rebuilt from it.
    """
    cells: dict[tuple, list[int]] = {}
    base = referrals_in(site_ids, pilot.starts_on, pilot.ends_on)
    for row in _kind_rows(base):
        site_id, first_day = row.pop("site_id"), _first_day(row.pop("month_received"))
        source = row.pop("source_of_referral")
        _add(
            cells, site_id, first_day, ("by_source_of_referral", source), row["referrals_received"], row["key|referrals_received"]
        )
        for name, n in row.items():
            if not name.startswith("key|"):
                _add(cells, site_id, first_day, tuple(name.split(":")), n, row[f"key|{name}"])
    for row in _flag_rows(base, pilot.ends_on):
        site_id, first_day = row["site_id"], _first_day(row["month_received"])
        months = {time: row[f"m|{time}"] and _first_day(row[f"m|{time}"]) for time in FLAG_TIMES}
        for path in status_and_count_cells(first_day, pilot.ends_on, months, bool(row["mandated"])):
            _add(cells, site_id, first_day, path, row["n"], row["key"])
    for row in _consent_day_rows(base, pilot.ends_on):
        site_id, first_day = row["site_id"], _first_day(row["month_received"])
        for level in levels_held(first_day, pilot.ends_on, _first_day(row["explicit_month"])):
            _add(cells, site_id, first_day, (level, CONSENT_DAYS, row["days"].days), row["n"], row["key"])
    return cells


def _definition(pilot: Pilot, site_ids: list[int]) -> dict:
    """What a pilot's cells depend on besides the records: its dates and its sites."""
    return {"starts_on": pilot.starts_on, "ends_on": pilot.ends_on, "site_ids": ",".join(map(str, sorted(site_ids)))}


@transaction.atomic
def rebuild_cells(pilot: Pilot, site_ids: list[int] | None = None) -> int:
    """Count a pilot's cells again from the records and keep them; returns how many cells it has.

    Writers are held off the cells table while it runs (PostgreSQL; SQLite has one writer anyway): a write
    counted here must not also be added by its own transaction, nor one not counted be lost. A write waiting
    meanwhile then moves its referral's counts from the state counted here, which is what it expects.
    """
    if site_ids is None:
        site_ids = list(pilot.sites.values_list("pk", flat=True))
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Our own quoted table name.
            cursor.execute(f"LOCK TABLE {connection.ops.quote_name(LatticeCell._meta.db_table)} IN SHARE ROW EXCLUSIVE MODE")  # noqa: S608
    LatticeCell.objects.filter(pilot=pilot).delete()
    cells = counted_cells(pilot, site_ids)
    LatticeCell.objects.bulk_create(
        [
            LatticeCell(pilot=pilot, site_id=site_id, month=first_day, path=path, n=n, key_sum=key_sum)
            for (site_id, first_day, path), (n, key_sum) in cells.items()
        ],
        batch_size=5000,
    )
    KeptLattice.objects.update_or_create(pilot=pilot, defaults={**_definition(pilot, site_ids), "counted_at": timezone.now()})
    return len(cells)


def _kept_definition(pilot: Pilot) -> dict | None:
    return KeptLattice.objects.filter(pilot=pilot).values("starts_on", "ends_on", "site_ids").first()


def count_if_changed(pilot: Pilot, site_ids: list[int]) -> bool:
    """Count the pilot's cells from the records if its dates or sites are not those they were counted for (or they
    never were); whether it did. One query when nothing changed."""
    if _kept_definition(pilot) == _definition(pilot, site_ids):
        return False
    rebuild_cells(pilot, site_ids)
    return True


def cells_in_force(pilot: Pilot, site_ids: list[int]) -> list[tuple]:
    """The pilot's kept cells (site, month, path, count, key sum), the median's aside, counted first if the pilot
    changed (count_if_changed): two queries when nothing changed."""
    count_if_changed(pilot, site_ids)
    return list(
        LatticeCell.objects.filter(pilot=pilot)
        .exclude(n=0)
        .exclude(path__contains=f"|{CONSENT_DAYS}|")
        .values_list("site_id", "month", "path", "n", "key_sum")
        # The unique index's order: no sort, and the same rows always come in the same order (the lattice's digest).
        .order_by("site_id", "month", "path")
    )


def consent_days_in(pilot: Pilot, period: LatticePeriod) -> list[tuple[int, int, int]]:
    """(site, days from referral to first consent, referrals) of the referrals received in the period and
    explicitly consented by its end: what its medians are taken from."""
    rows = (
        LatticeCell.objects.filter(pilot=pilot, month__in=period.months, path__startswith=f"{period.level}|{CONSENT_DAYS}|")
        .exclude(n=0)
        .values_list("site_id", "path", "n")
        .order_by()
    )
    return [(site_id, int(path.rsplit("|", 1)[1]), n) for site_id, path, n in rows]


def cell_differences(pilot: Pilot) -> list[tuple]:
    """(site, month, path, kept, counted) for every cell whose kept count or key sum differs from the records'.

    A pilot whose dates or sites changed since its cells were counted is counted first, as its next report would
    (count_if_changed): what is compared is what a report would read.
    """
    site_ids = list(pilot.sites.values_list("pk", flat=True))
    count_if_changed(pilot, site_ids)
    counted = counted_cells(pilot, site_ids)
    kept = {
        (site_id, first_day, path): [n, key_sum]
        for site_id, first_day, path, n, key_sum in LatticeCell.objects.filter(pilot=pilot)
        .exclude(n=0, key_sum=0)
        .values_list("site_id", "month", "path", "n", "key_sum")
    }
    return [
        (*cell, kept.get(cell), counted.get(cell))
        for cell in sorted(kept.keys() | counted.keys(), key=str)
        if kept.get(cell) != counted.get(cell)
    ]
