"""The per-referral voluntariness flags: kept exact as records are written, and read by the compliance report.

consent.selectors.voluntariness_annotations is the rule, asked of the records themselves (one EXISTS per fact);
a referral's API answer uses it. The report asks the same question of whole pilots, where one EXISTS per fact
per referral costs seconds at national scale, so each referral keeps one row of VoluntarinessFlags: for each
fact, the earliest time a record in force shows it. "Some record in force shows it by `as_of`" is then "its
earliest time is at or before `as_of`", one comparison on one joined row.

The row is written from the records by one definition (`_earliest_times`), used three ways: for one referral
by refresh_voluntariness_flags in the transaction of every record written or superseded, for every referral
by rebuild_voluntariness_flags (the migration's backfill, the benchmark's world), and by flag_differences, which
the recount_voluntariness_flags command runs to prove the rows still match the records.
"""

import uuid
from functools import cache

from django.db import connection, transaction
from django.db.models import (
    BooleanField,
    Case,
    F,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)

from consent.models import (
    ACKNOWLEDGEMENTS,
    INVOLUNTARY_PATHWAYS,
    CheckStage,
    ConsentRecord,
    Decline,
    GoalRaisedBy,
    Referral,
    VoluntarinessCheck,
    VoluntarinessFlags,
    Withdrawal,
    WithdrawalReason,
)

FLAG_FIELDS = (
    "consent_at", "explicit_consent_at", "intake_check_at", "told_required_at", "sanction_at", "not_free_to_stop_at",
    "goal_by_agency_at", "withdrawal_at", "pressured_withdrawal_at", "declined_on",
)  # fmt: skip


def _earliest(model, time_field: str, **conditions) -> Subquery:
    """The earliest `time_field` of the outer referral's records in force (not superseded) meeting the conditions."""
    rows = model.objects.filter(referral=OuterRef("pk"), superseded_by__isnull=True, **conditions)
    return Subquery(rows.order_by().values("referral").annotate(earliest=Min(time_field)).values("earliest")[:1])


def _earliest_times() -> dict[str, Subquery]:
    """Each flag of a referral from its records, as expressions on Referral: the one definition of the row."""
    explicit = dict.fromkeys(ACKNOWLEDGEMENTS, True)
    return {
        "consent_at": _earliest(ConsentRecord, "given_at"),
        "explicit_consent_at": _earliest(ConsentRecord, "given_at", **explicit),
        "intake_check_at": _earliest(VoluntarinessCheck, "checked_at", stage=CheckStage.INTAKE),
        "told_required_at": _earliest(VoluntarinessCheck, "checked_at", told_attendance_required=True),
        "sanction_at": _earliest(VoluntarinessCheck, "checked_at", sanction_mentioned=True),
        "not_free_to_stop_at": _earliest(VoluntarinessCheck, "checked_at", feels_free_to_stop=False),
        "goal_by_agency_at": _earliest(VoluntarinessCheck, "checked_at", employment_goal_raised_by=GoalRaisedBy.BENEFITS_AGENCY),
        "withdrawal_at": _earliest(Withdrawal, "withdrawn_at"),
        "pressured_withdrawal_at": _earliest(Withdrawal, "withdrawn_at", reason=WithdrawalReason.FELT_PRESSURED),
        # A decline is one record per referral, never superseded.
        "declined_on": Subquery(Decline.objects.filter(referral=OuterRef("pk")).values("declined_on")[:1]),
    }


# The flags each kind of record can change: a write refreshes only those (all of them when unsaid).
FLAGS_OF = {
    ConsentRecord: ("consent_at", "explicit_consent_at"),
    VoluntarinessCheck: ("intake_check_at", "told_required_at", "sanction_at", "not_free_to_stop_at", "goal_by_agency_at"),
    Withdrawal: ("withdrawal_at", "pressured_withdrawal_at"),
    Decline: ("declined_on",),
}


def _expected(referrals: QuerySet) -> QuerySet:
    """These referrals with the flags their records give, as `expected_<flag>` annotations."""
    return referrals.annotate(**{f"expected_{name}": expression for name, expression in _earliest_times().items()})


def refresh_voluntariness_flags(referral_id, *, written=None, new_referral: bool = False) -> None:
    """Rewrite one referral's flags from its records; call it in the transaction of every record written.

    `written` is the model of the record written or superseded (ConsentRecord, VoluntarinessCheck, Withdrawal,
    Decline): only the flags it can change are worked out again. One query: an UPDATE whose values are the
    subqueries of `_earliest_times`, compiled once per kind of record (building them through the ORM on
    every write cost more than running them). A referral just created has no records yet, so its row is
    inserted empty; a referral without a row (made outside the services) gets one, whole.
    """
    if new_referral:
        VoluntarinessFlags.objects.create(referral_id=referral_id)
        return
    if written is not None and written not in FLAGS_OF:
        return  # A record that changes no flag (a discharge) costs no query.
    sql, params, slot = _refresh_sql(connection.vendor, written)
    key = Referral._meta.pk.get_db_prep_value(referral_id, connection)
    params = [*params[:slot], key, *params[slot + 1 :], key]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        updated = cursor.rowcount
    if not updated:
        values = _expected(Referral.objects.filter(pk=referral_id)).values(*(f"expected_{n}" for n in FLAG_FIELDS)).get()
        VoluntarinessFlags.objects.create(referral_id=referral_id, **{n: values[f"expected_{n}"] for n in FLAG_FIELDS})


# A referral id that is never real, marking where the referral's id goes among the compiled query's parameters.
_SLOT = uuid.UUID(int=0)


@cache
def _refresh_sql(vendor: str, written) -> tuple[str, tuple, int]:
    """(UPDATE ... SET (flags) = (SELECT the flags from the records), parameters, where the referral id goes)."""
    names = FLAGS_OF.get(written, FLAG_FIELDS)
    select = _expected(Referral.objects.filter(pk=_SLOT)).values_list(*(f"expected_{n}" for n in names))
    sql, params = select.query.sql_with_params()
    marker = Referral._meta.pk.get_db_prep_value(_SLOT, connection)
    (slot,) = [i for i, value in enumerate(params) if value == marker]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(VoluntarinessFlags._meta.get_field(n).column) for n in names)
    table = quote(VoluntarinessFlags._meta.db_table)
    # Our own quoted names around SQL that Django compiled; every value stays a parameter.
    return f"UPDATE {table} SET ({columns}) = ({sql}) WHERE referral_id = %s", tuple(params), slot  # noqa: S608


@transaction.atomic
def rebuild_voluntariness_flags() -> int:
    """Every referral's row written again from the records, in two statements; returns the rows written."""
    table = connection.ops.quote_name(VoluntarinessFlags._meta.db_table)
    columns = ", ".join(connection.ops.quote_name(VoluntarinessFlags._meta.get_field(n).column) for n in FLAG_FIELDS)
    select = _expected(Referral.objects.order_by()).values_list("pk", *(f"expected_{n}" for n in FLAG_FIELDS))
    sql, params = select.query.sql_with_params()
    with connection.cursor() as cursor:
        # Quoted names of our own table and columns, and SQL compiled by Django with its parameters apart.
        cursor.execute(f"DELETE FROM {table}")  # noqa: S608
        cursor.execute(f"INSERT INTO {table} (referral_id, {columns}) {sql}", params)  # noqa: S608
        return cursor.rowcount


def _differs(stored: str, expected: str) -> Q:
    """Null-safe inequality, written so SQLite and PostgreSQL read it alike."""
    return (
        Q(**{f"{stored}__isnull": True, f"{expected}__isnull": False})
        | Q(**{f"{stored}__isnull": False, f"{expected}__isnull": True})
        | Q(**{f"{stored}__lt": F(expected)})
        | Q(**{f"{stored}__gt": F(expected)})
    )


def flag_differences() -> QuerySet:
    """The referrals whose flags row is missing or differs from what their records give (empty when exact)."""
    referrals = _expected(Referral.objects.order_by("pk")).alias(
        **{f"stored_{name}": F(f"voluntariness_flags__{name}") for name in FLAG_FIELDS}
    )
    differs = Q(voluntariness_flags__isnull=True)
    for name in FLAG_FIELDS:
        differs |= _differs(f"stored_{name}", f"expected_{name}")
    return referrals.filter(differs)


# Each flag of the status rule read from the flags row: the time it reads, and whether the flag is that time
# having come (True) or not yet (False). consent.lattice_cells.status_when asks it of one referral's or one group's times.
RULE_FLAG_TIMES = {
    "v_told_required": ("told_required_at", True),
    "v_sanction": ("sanction_at", True),
    "v_not_free_to_stop": ("not_free_to_stop_at", True),
    "v_goal_by_agency": ("goal_by_agency_at", True),
    "v_pressured_withdrawal": ("pressured_withdrawal_at", True),
    "v_no_consent": ("explicit_consent_at", False),
    "v_no_intake_check": ("intake_check_at", False),
}


def mandated_pathway_flag() -> Case:
    """The rule's one flag that is no time: a pathway that is not voluntary by its nature."""
    return Case(When(pathway__in=INVOLUNTARY_PATHWAYS, then=Value(True)), default=Value(False), output_field=BooleanField())
