"""Bare aggregate SQL for the figures of a pilot's compliance report: the report operation's baseline.

Written as a person would write it by hand against the tables, without the ORM, disclosure control, rendering
or the access-log verification: per-referral flags from the child tables (EXISTS), then

1. one GROUP BY (site, status, pathway, how heard, source) carrying the plain counts, from which every
   per-site and total breakdown is added up;
2. the middle rows of days to consent per site and overall (window functions), for the medians;
3. the series by the pilot's cadence, each bucket's status as at the end of that bucket;
4. the benefits-agency access attempts in the period.
"""

from datetime import UTC, datetime, time

from django.db import connection
from django.utils import timezone

from colocation.models import Pilot, Site
from consent.access.models import AccessEvent
from consent.models import ConsentRecord, Decline, Referral, VoluntarinessCheck, Withdrawal
from consent.reports.periods import end_of_day, parse_period, steps


def _t(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _p(value):
    """A parameter as the database stores it (Django keeps UTC text on SQLite)."""
    if connection.vendor == "sqlite" and hasattr(value, "tzinfo") and value.tzinfo is not None:
        return str(value.astimezone(UTC).replace(tzinfo=None))
    return value


def _flags(as_of: str) -> str:
    """Per-referral voluntariness flags as SQL, with the records known at `as_of` (an SQL expression)."""
    checks = f"SELECT 1 FROM {_t(VoluntarinessCheck)} c WHERE c.referral_id = r.id AND c.checked_at <= {as_of} AND NOT EXISTS (SELECT 1 FROM {_t(VoluntarinessCheck)} s WHERE s.supersedes_id = c.id)"
    withdrawals = f"SELECT 1 FROM {_t(Withdrawal)} w WHERE w.referral_id = r.id AND w.withdrawn_at <= {as_of} AND NOT EXISTS (SELECT 1 FROM {_t(Withdrawal)} s WHERE s.supersedes_id = w.id)"
    consents = (
        f"SELECT 1 FROM {_t(ConsentRecord)} k WHERE k.referral_id = r.id AND k.given_at <= {as_of}"
        f" AND k.attendance_is_optional AND k.no_effect_on_benefits AND k.service_separate_from_jobcentre"
        f" AND k.nothing_shared_with_jobcentre AND k.free_to_withdraw"
        f" AND NOT EXISTS (SELECT 1 FROM {_t(ConsentRecord)} s WHERE s.supersedes_id = k.id)"
    )
    return f"""
        CASE WHEN r.pathway IN ('mandated_assessment', 'benefit_condition') THEN 1 ELSE 0 END AS mandated,
        CASE WHEN EXISTS ({checks} AND c.told_attendance_required) THEN 1 ELSE 0 END AS told_required,
        CASE WHEN EXISTS ({checks} AND c.sanction_mentioned) THEN 1 ELSE 0 END AS sanction,
        CASE WHEN EXISTS ({checks} AND NOT c.feels_free_to_stop) THEN 1 ELSE 0 END AS not_free,
        CASE WHEN EXISTS ({checks} AND c.employment_goal_raised_by = 'benefits_agency') THEN 1 ELSE 0 END AS goal_by_agency,
        CASE WHEN EXISTS ({withdrawals} AND w.reason = 'felt_pressured') THEN 1 ELSE 0 END AS pressured,
        CASE WHEN EXISTS ({withdrawals}) THEN 1 ELSE 0 END AS withdrawn,
        CASE WHEN EXISTS ({consents}) THEN 1 ELSE 0 END AS consented,
        CASE WHEN EXISTS ({checks} AND c.stage = 'intake') THEN 1 ELSE 0 END AS intake_checked"""


STATUS = """CASE WHEN mandated = 1 OR told_required = 1 OR sanction = 1 THEN 'not_voluntary'
                WHEN not_free = 1 OR goal_by_agency = 1 OR pressured = 1 THEN 'concern'
                WHEN consented = 0 OR intake_checked = 0 THEN 'unknown' ELSE 'voluntary' END"""


def _days_to_consent() -> str:
    first = f"(SELECT MIN(k.given_at) FROM {_t(ConsentRecord)} k WHERE k.referral_id = f.id AND k.given_at <= %s)"
    if connection.vendor == "postgresql":
        return f"(({first} AT TIME ZONE 'Europe/London')::date - f.referred_on)"
    return f"CAST(julianday(date({first})) - julianday(f.referred_on) AS INTEGER)"


def figures(pilot_id: int, period_label: str) -> dict:
    """The report's raw figures for one pilot and period, in four queries."""
    pilot = Pilot.objects.get(pk=pilot_id)
    period = parse_period(period_label)
    site_ids = list(Site.objects.filter(pilots=pilot).values_list("pk", flat=True))
    as_of = _p(end_of_day(period.end))
    sites = ", ".join(str(pk) for pk in site_ids)
    received = f"r.site_id IN ({sites}) AND r.referred_on >= %s AND r.referred_on <= %s"
    with connection.cursor() as cursor:
        cursor.execute(
            f"""WITH f AS (SELECT r.id, r.site_id, r.pathway, r.how_heard, r.source_of_referral, r.referred_on,
                           CASE WHEN EXISTS (SELECT 1 FROM {_t(Decline)} x WHERE x.referral_id = r.id AND x.declined_on <= %s)
                                THEN 1 ELSE 0 END AS declined, {_flags("%s")}
                           FROM {_t(Referral)} r WHERE {received})
                SELECT site_id, {STATUS} AS status, pathway, how_heard, source_of_referral, COUNT(*), SUM(consented),
                       SUM(declined), SUM(withdrawn), SUM(pressured), SUM(not_free), SUM(goal_by_agency), SUM(intake_checked)
                FROM f GROUP BY site_id, status, pathway, how_heard, source_of_referral""",
            [period.end, *([as_of] * 8), period.start, period.end],
        )
        counts = cursor.fetchall()
        cursor.execute(
            f"""WITH f AS (SELECT r.id, r.site_id, r.referred_on, {_flags("%s")} FROM {_t(Referral)} r WHERE {received}),
                d AS (SELECT site_id, {_days_to_consent()} AS days FROM f WHERE consented = 1),
                m AS (SELECT site_id, days, ROW_NUMBER() OVER (PARTITION BY site_id ORDER BY days) AS rank,
                             COUNT(*) OVER (PARTITION BY site_id) AS n,
                             ROW_NUMBER() OVER (ORDER BY days) AS rank_all, COUNT(*) OVER () AS n_all FROM d)
                SELECT site_id, days, 2 * rank BETWEEN n AND n + 2, 2 * rank_all BETWEEN n_all AND n_all + 2 FROM m
                WHERE 2 * rank BETWEEN n AND n + 2 OR 2 * rank_all BETWEEN n_all AND n_all + 2""",
            [*([as_of] * 8), period.start, period.end, as_of],
        )
        medians = cursor.fetchall()
        buckets = steps(pilot.starts_on, min(pilot.ends_on, period.end), pilot.cadence)
        label = " ".join(f"WHEN r.referred_on BETWEEN '{b.start}' AND '{b.end}' THEN '{b.label}'" for b in buckets)
        bucket_end = " ".join(
            f"WHEN r.referred_on BETWEEN '{b.start}' AND '{b.end}' THEN '{_p(end_of_day(b.end))}'" for b in buckets
        )
        cursor.execute(
            f"""WITH b AS (SELECT r.*, CASE {label} END AS bucket, CASE {bucket_end} END AS bucket_as_of FROM {_t(Referral)} r
                           WHERE r.site_id IN ({sites}) AND r.referred_on >= %s AND r.referred_on <= %s),
                f AS (SELECT r.bucket, {_flags("r.bucket_as_of" + ("::timestamptz" if connection.vendor == "postgresql" else ""))}
                      FROM b r)
                SELECT bucket, {STATUS} AS status, COUNT(*) FROM f GROUP BY bucket, status ORDER BY bucket""",
            [buckets[0].start, buckets[-1].end],
        )
        series = cursor.fetchall()
        cursor.execute(
            f"""SELECT e.outcome, COUNT(DISTINCT CASE WHEN e.request_id = '' THEN CAST(e.id AS TEXT) ELSE e.request_id END)
                FROM {_t(AccessEvent)} e
                WHERE e.actor_organisation_kind = 'benefits_agency' AND e.occurred_at >= %s AND e.occurred_at <= %s
                  AND e.chain_id IN (SELECT DISTINCT provider_id FROM {_t(Site)} WHERE id IN ({sites}))
                  AND (e.referral_id IN (SELECT id FROM {_t(Referral)} WHERE site_id IN ({sites})) OR e.referral_id IS NULL)
                GROUP BY e.outcome""",
            [_p(timezone.make_aware(datetime.combine(period.start, time.min))), as_of],
        )
        access = cursor.fetchall()
    return {"counts": counts, "medians": medians, "series": series, "access": access}
