"""The compliance report's lattice cells, kept as records are written, so a national pilot's report reads a few
thousand rows instead of its referrals.

consent.reports.lattice explains the lattice: for a pilot, each site and calendar month received, the count and
record-key sum of every cell (what the referrals are; and, as at the end of the month, the quarter, the year and
the pilot, each plain count and each status). Counted from a national pilot's referrals that took seconds per
request. So what one referral adds to its pilot's cells is worked out here from its flags row (`referral_cells`,
the one definition) and added to LatticeCell rows in the transaction of every intake and record written
(`refresh_report_rows`, which consent.services calls, refreshes the flags row and then the cells).
consent.reports.metrics counts the same cells from the records in grouped SQL; the recount_report_cells command
compares the two, and consent.reports.cells rebuilds a pilot's cells when its dates or sites change.

"As at the end of the pilot" is as at its last day: no record may be dated in the future (consent.services), so
every fact recorded by today has come by the end of the pilot to date, and the cells need not know today.
"""

from collections.abc import Iterable, Mapping
from datetime import date, datetime

from django.db import connection
from django.utils import timezone

from consent.models import INVOLUNTARY_PATHWAYS, LatticeCell, Referral, VoluntarinessFlags
from consent.selectors import status_from_flags
from consent.voluntariness_flags import FLAG_FIELDS, FLAGS_OF, RULE_FLAG_TIMES, refresh_voluntariness_flags

# The levels a period's counts are as at the end of; the last is consent.reports.periods.PILOT_TO_DATE.
LEVELS = ("month", "quarter", "year", "pilot")

# Each plain count as at a period's end: the flags-row time that must have come by then.
COUNT_TIMES = {
    "explicit_consent": "explicit_consent_at",
    "declined": "declined_on",
    "withdrawals": "withdrawal_at",
    "withdrawals_citing_pressure": "pressured_withdrawal_at",
    "felt_not_free_to_stop": "not_free_to_stop_at",
    "employment_goal_raised_by_benefits_agency": "goal_by_agency_at",
    "intake_check_recorded": "intake_check_at",
}
FLAG_TIMES = tuple(sorted({time for time, _ in RULE_FLAG_TIMES.values()} | set(COUNT_TIMES.values())))
# The median's cells: days from referral to first consent, for referrals consented (explicitly) by the level's end.
CONSENT_DAYS = "consent_days"
# What a referral is, whatever the period.
KIND_FIELDS = ("site_id", "referred_on", "pathway", "how_heard", "source_of_referral", "record_key")


def path_name(path: tuple) -> str:
    """A cell's path as stored: its parts joined by '|' (codes, slugs and day counts never hold one)."""
    return "|".join(str(part) for part in path)


def path_of(name: str) -> tuple:
    return tuple(name.split("|"))


def level_ends(first_day: date, ends_on: date) -> dict[str, date]:
    """For a month received, the last month of its month, quarter, year and the pilot, clipped to the pilot's end."""
    last = ends_on.replace(day=1)
    quarter_end = date(first_day.year, 3 * ((first_day.month - 1) // 3) + 3, 1)
    return {
        "month": first_day,
        "quarter": min(quarter_end, last),
        "year": min(date(first_day.year, 12, 1), last),
        "pilot": last,
    }


def status_when(came: Mapping[str, bool], mandated: bool) -> str:
    """The status (consent.selectors.STATUS_RULE) of referrals whose flags' times have or have not come."""
    flags = {name: came[time] == reached for name, (time, reached) in RULE_FLAG_TIMES.items()}
    flags["v_mandated_pathway"] = mandated
    return status_from_flags(flags)


def local_day(value: date | datetime) -> date:
    """The day (in the clinic's time zone) a flag's time fell on; a decline is a day already."""
    return timezone.localtime(value).date() if isinstance(value, datetime) else value


def levels_held(first_day: date, ends_on: date, month: date | None) -> list[str]:
    """The levels (LEVELS) at whose end a fact of this month has come, for referrals received in first_day's month."""
    if month is None:
        return []
    return [level for level, last_month in level_ends(first_day, ends_on).items() if month <= last_month]


def status_and_count_cells(first_day: date, ends_on: date, months: Mapping[str, date | None], mandated: bool) -> list[tuple]:
    """Each level's status and plain-count cells of referrals received in first_day's month whose flags' times fell
    in `months` (FLAG_TIMES -> month, None if not by the pilot's end): one referral's, or a group's alike."""
    cells = []
    for level, last_month in level_ends(first_day, ends_on).items():
        came = {time: month is not None and month <= last_month for time, month in months.items()}
        cells.append((level, "voluntariness", status_when(came, mandated)))
        cells.extend((level, name) for name, time in COUNT_TIMES.items() if came[time])
    return cells


def referral_cells(kind: Mapping, flags: Mapping, ends_on: date) -> list[str]:
    """The cells one referral counts in, in a pilot ending on `ends_on` that received it: the one definition.

    kind: the referral's KIND_FIELDS; flags: its VoluntarinessFlags fields (all None for a row not yet written).
    A fact after the pilot's last day is not counted in it at all.
    """
    first_day = kind["referred_on"].replace(day=1)
    cells = [
        ("referrals_received",),
        ("by_pathway", kind["pathway"]),
        ("by_how_heard", kind["how_heard"]),
        ("by_source_of_referral", kind["source_of_referral"]),
    ]
    days = {time: local_day(flags[time]) if flags.get(time) is not None else None for time in FLAG_TIMES}
    months = {time: day.replace(day=1) if day is not None and day <= ends_on else None for time, day in days.items()}
    cells += status_and_count_cells(first_day, ends_on, months, kind["pathway"] in INVOLUNTARY_PATHWAYS)
    if flags.get("consent_at"):
        # The earliest consent in force is at or before the explicit one, so it has come by then too.
        consent_days = (local_day(flags["consent_at"]) - kind["referred_on"]).days
        cells += [(level, CONSENT_DAYS, consent_days) for level in levels_held(first_day, ends_on, months["explicit_consent_at"])]
    return [path_name(path) for path in cells]


def _state(referral_id) -> tuple[dict, dict, list[tuple[int, date]]]:
    """A referral's kind, its flags (all None without a row) and the pilots that received it: one query."""
    pilot = "site__pilots__"
    rows = list(
        Referral.objects.filter(pk=referral_id)
        .values(*KIND_FIELDS, *(f"voluntariness_flags__{name}" for name in FLAG_FIELDS),
                f"{pilot}id", f"{pilot}starts_on", f"{pilot}ends_on")
        .order_by(f"{pilot}id")
    )  # fmt: skip
    kind = {name: rows[0][name] for name in KIND_FIELDS}
    flags = {name: rows[0][f"voluntariness_flags__{name}"] for name in FLAG_FIELDS}
    received = kind["referred_on"]
    pilots = [
        (row[f"{pilot}id"], row[f"{pilot}ends_on"])
        for row in rows
        if row[f"{pilot}id"] is not None and row[f"{pilot}starts_on"] <= received <= row[f"{pilot}ends_on"]
    ]
    return kind, flags, pilots


def _flags_now(referral_id) -> dict:
    return VoluntarinessFlags.objects.filter(referral_id=referral_id).values(*FLAG_FIELDS).first() or dict.fromkeys(FLAG_FIELDS)


def cells_of(kind: Mapping, flags: Mapping, pilots: Iterable[tuple[int, date]]) -> dict[tuple, int]:
    """(pilot, site, month, path) -> 1 for every cell a referral counts in, in every pilot that received it."""
    first_day = kind["referred_on"].replace(day=1)
    return {
        (pilot_id, kind["site_id"], first_day, path): 1
        for pilot_id, ends_on in pilots
        for path in referral_cells(kind, flags, ends_on)
    }


def refresh_report_rows(referral_id, *, written=None, new_referral: bool = False) -> None:
    """Rewrite what the report reads of a referral after a write: its flags row, then its pilots' lattice cells.

    Call it in the transaction of every intake and record written or superseded (`written`: the record's model).
    Three queries besides the flags' own (the referral as it was, its flags as they are, one statement moving
    its counts); a record that changes no flag (a discharge) costs none.
    """
    if written is not None and written not in FLAGS_OF:
        return
    kind, before, pilots = _state(referral_id)
    refresh_voluntariness_flags(referral_id, written=written, new_referral=new_referral)
    if not pilots:
        return  # received outside every pilot's dates, or at a site in none: no report counts it
    after = before if new_referral else _flags_now(referral_id)
    if after == before and not new_referral:
        return
    counted_before = {} if new_referral else cells_of(kind, before, pilots)
    keep_lattice_cells(counted_before, cells_of(kind, after, pilots), kind["record_key"])


def keep_lattice_cells(before: dict[tuple, int], after: dict[tuple, int], record_key: int) -> None:
    """Move a referral's counts from the cells it counted in to those it counts in now: one statement, or none."""
    changes = {cell: after.get(cell, 0) - before.get(cell, 0) for cell in before.keys() | after.keys()}
    add_to_cells({cell: (n, n * record_key) for cell, n in changes.items() if n})


def add_to_cells(changes: Mapping[tuple, tuple[int, int]]) -> None:
    """Add (count, key sum) to each (pilot, site, month, path) cell, creating the cells missing: one statement.

    The rows are sorted so two transactions touching the same cells lock them in the same order (no deadlock).
    """
    if not changes:
        return
    table = connection.ops.quote_name(LatticeCell._meta.db_table)
    rows = sorted(changes.items())
    values = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(rows))
    params = []
    for (pilot_id, site_id, first_day, path), (n, key_sum) in rows:
        params += [pilot_id, site_id, first_day, path, n, key_sum]
    # Our own quoted table name; every value is a parameter.
    sql = (
        f"INSERT INTO {table} (pilot_id, site_id, month, path, n, key_sum) VALUES {values} "  # noqa: S608
        f"ON CONFLICT (pilot_id, site_id, month, path) DO UPDATE "
        f"SET n = {table}.n + excluded.n, key_sum = {table}.key_sum + excluded.key_sum"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
