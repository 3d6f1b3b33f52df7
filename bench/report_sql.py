"""Bare aggregate SQL for the figures of a pilot's compliance report: the report operation's baseline.

Written as a person would write it by hand against the tables, without the ORM, disclosure control, rendering
or the access-log verification: per-referral flags from the child tables (EXISTS), then

1. one GROUP BY (site, status, pathway, how heard, source) carrying the plain counts, from which every
   per-site and total breakdown is added up;
2. the middle rows of days to consent per site and overall (window functions), for the medians;
3. the series by the pilot's cadence, each bucket's status as at the end of that bucket;
4. the benefits-agency access attempts in the period (an EXISTS on each event's referral, as a person would
   write it once the IN list of a pilot's referrals overflows memory).

It runs with the report's planner settings (JIT off on PostgreSQL) and reads the raw records, not the report's
flags table: it is the question asked of the records themselves. `mismatches` holds its answer to the report's
own figures (pilot_figures), which the benchmark requires to be equal before it times either.
"""

from datetime import UTC, datetime, time

from django.db import connection, transaction
from django.utils import timezone

from colocation.models import Pilot, Site
from consent.access.models import AccessEvent
from consent.models import ConsentRecord, Decline, Referral, VoluntarinessCheck, Withdrawal
from consent.reports.metrics import REPORT_PLANNER_SETTINGS
from consent.reports.periods import end_of_day, parse_period, steps


def _t(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


def _p(value):
    """A parameter as the database stores it (Django keeps UTC text on SQLite)."""
    if connection.vendor == "sqlite" and hasattr(value, "tzinfo") and value.tzinfo is not None:
        return str(value.astimezone(UTC).replace(tzinfo=None))
    return value


def _ts(expression: str) -> str:
    return f"CAST({expression} AS TIMESTAMP WITH TIME ZONE)" if connection.vendor == "postgresql" else expression


def _flagged() -> str:
    """CTEs after `f` (the referrals counted, each with its `as_of`): every child table read once, grouped by referral."""
    live = "NOT EXISTS (SELECT 1 FROM {table} s WHERE s.supersedes_id = {alias}.id)"
    return f"""
        ck AS (SELECT c.referral_id,
                      MAX(CASE WHEN c.told_attendance_required THEN 1 ELSE 0 END) AS told_required,
                      MAX(CASE WHEN c.sanction_mentioned THEN 1 ELSE 0 END) AS sanction,
                      MAX(CASE WHEN c.feels_free_to_stop THEN 0 ELSE 1 END) AS not_free,
                      MAX(CASE WHEN c.employment_goal_raised_by = 'benefits_agency' THEN 1 ELSE 0 END) AS goal_by_agency,
                      MAX(CASE WHEN c.stage = 'intake' THEN 1 ELSE 0 END) AS intake_checked
               FROM {_t(VoluntarinessCheck)} c JOIN f ON f.id = c.referral_id
               WHERE c.checked_at <= f.as_of AND {live.format(table=_t(VoluntarinessCheck), alias="c")}
               GROUP BY c.referral_id),
        wd AS (SELECT w.referral_id, MAX(CASE WHEN w.reason = 'felt_pressured' THEN 1 ELSE 0 END) AS pressured
               FROM {_t(Withdrawal)} w JOIN f ON f.id = w.referral_id
               WHERE w.withdrawn_at <= f.as_of AND {live.format(table=_t(Withdrawal), alias="w")}
               GROUP BY w.referral_id),
        co AS (SELECT k.referral_id, MIN(k.given_at) AS first_given
               FROM {_t(ConsentRecord)} k JOIN f ON f.id = k.referral_id
               WHERE k.given_at <= f.as_of AND k.attendance_is_optional AND k.no_effect_on_benefits
                 AND k.service_separate_from_jobcentre AND k.nothing_shared_with_jobcentre AND k.free_to_withdraw
                 AND {live.format(table=_t(ConsentRecord), alias="k")}
               GROUP BY k.referral_id),
        v AS (SELECT f.*, CASE WHEN f.pathway IN ('mandated_assessment', 'benefit_condition') THEN 1 ELSE 0 END AS mandated,
                     COALESCE(ck.told_required, 0) AS told_required, COALESCE(ck.sanction, 0) AS sanction,
                     COALESCE(ck.not_free, 0) AS not_free, COALESCE(ck.goal_by_agency, 0) AS goal_by_agency,
                     COALESCE(ck.intake_checked, 0) AS intake_checked, COALESCE(wd.pressured, 0) AS pressured,
                     CASE WHEN wd.referral_id IS NULL THEN 0 ELSE 1 END AS withdrawn,
                     CASE WHEN co.referral_id IS NULL THEN 0 ELSE 1 END AS consented, co.first_given
              FROM f LEFT JOIN ck ON ck.referral_id = f.id LEFT JOIN wd ON wd.referral_id = f.id
                     LEFT JOIN co ON co.referral_id = f.id)"""


STATUS = """CASE WHEN mandated = 1 OR told_required = 1 OR sanction = 1 THEN 'not_voluntary'
                WHEN not_free = 1 OR goal_by_agency = 1 OR pressured = 1 THEN 'concern'
                WHEN consented = 0 OR intake_checked = 0 THEN 'unknown' ELSE 'voluntary' END"""


def _days_to_consent() -> str:
    if connection.vendor == "postgresql":
        return "((first_given AT TIME ZONE 'Europe/London')::date - referred_on)"
    return "CAST(julianday(date(first_given)) - julianday(referred_on) AS INTEGER)"


def figures(pilot_id: int, period_label: str) -> dict:
    """The report's raw figures for one pilot and period, in four queries."""
    pilot = Pilot.objects.get(pk=pilot_id)
    period = parse_period(period_label)
    site_ids = list(Site.objects.filter(pilots=pilot).values_list("pk", flat=True))
    as_of = _p(end_of_day(period.end))
    sites = ", ".join(str(pk) for pk in site_ids)
    received = f"r.site_id IN ({sites}) AND r.referred_on >= %s AND r.referred_on <= %s"
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # The planner settings the report runs with: the same for both sides.
            for statement in REPORT_PLANNER_SETTINGS:
                cursor.execute(statement)
        f = f"""f AS (SELECT r.id, r.site_id, r.pathway, r.how_heard, r.source_of_referral, r.referred_on, {_ts("%s")} AS as_of
                      FROM {_t(Referral)} r WHERE {received})"""
        cursor.execute(
            f"""WITH {f}, {_flagged()},
                s AS (SELECT site_id, {STATUS} AS status, pathway, how_heard, source_of_referral, consented, withdrawn,
                             pressured, not_free, goal_by_agency, intake_checked,
                             CASE WHEN EXISTS (SELECT 1 FROM {_t(Decline)} x WHERE x.referral_id = v.id AND x.declined_on <= %s)
                                  THEN 1 ELSE 0 END AS declined
                      FROM v)
                SELECT site_id, status, pathway, how_heard, source_of_referral, COUNT(*), SUM(consented), SUM(declined),
                       SUM(withdrawn), SUM(pressured), SUM(not_free), SUM(goal_by_agency), SUM(intake_checked)
                FROM s GROUP BY site_id, status, pathway, how_heard, source_of_referral""",
            [as_of, period.start, period.end, period.end],
        )
        counts = cursor.fetchall()
        cursor.execute(
            f"""WITH {f}, {_flagged()},
                d AS (SELECT site_id, {_days_to_consent()} AS days FROM v WHERE consented = 1),
                m AS (SELECT site_id, days, ROW_NUMBER() OVER (PARTITION BY site_id ORDER BY days) AS rank,
                             COUNT(*) OVER (PARTITION BY site_id) AS n,
                             ROW_NUMBER() OVER (ORDER BY days) AS rank_all, COUNT(*) OVER () AS n_all FROM d)
                SELECT site_id, days, 2 * rank BETWEEN n AND n + 2, 2 * rank_all BETWEEN n_all AND n_all + 2 FROM m
                WHERE 2 * rank BETWEEN n AND n + 2 OR 2 * rank_all BETWEEN n_all AND n_all + 2""",
            [as_of, period.start, period.end],
        )
        medians = cursor.fetchall()
        buckets = steps(pilot.starts_on, min(pilot.ends_on, period.end), pilot.cadence)
        label = " ".join(f"WHEN r.referred_on BETWEEN '{b.start}' AND '{b.end}' THEN '{b.label}'" for b in buckets)
        bucket_end = " ".join(
            f"WHEN r.referred_on BETWEEN '{b.start}' AND '{b.end}' THEN '{_p(end_of_day(b.end))}'" for b in buckets
        )
        cursor.execute(
            f"""WITH f AS (SELECT r.id, r.pathway, CASE {label} END AS bucket, {_ts(f"CASE {bucket_end} END")} AS as_of
                           FROM {_t(Referral)} r WHERE r.site_id IN ({sites}) AND r.referred_on >= %s AND r.referred_on <= %s),
                {_flagged()}
                SELECT bucket, {STATUS} AS status, COUNT(*) FROM v GROUP BY bucket, status ORDER BY bucket""",
            [buckets[0].start, buckets[-1].end],
        )
        series = cursor.fetchall()
        access = _access(cursor, sites, period, as_of)
    return {"counts": counts, "medians": medians, "series": series, "access": access}


def _access(cursor, sites: str, period, as_of) -> list[tuple]:
    """The benefits-agency attempts of the period at these sites, by outcome."""
    cursor.execute(
        f"""SELECT e.outcome, COUNT(DISTINCT CASE WHEN e.request_id = '' THEN CAST(e.id AS TEXT) ELSE e.request_id END)
            FROM {_t(AccessEvent)} e
            WHERE e.actor_organisation_kind = 'benefits_agency' AND e.occurred_at >= %s AND e.occurred_at <= %s
              AND e.chain_id IN (SELECT DISTINCT provider_id FROM {_t(Site)} WHERE id IN ({sites}))
              AND (EXISTS (SELECT 1 FROM {_t(Referral)} r WHERE r.id = e.referral_id AND r.site_id IN ({sites}))
                   OR (e.referral_id IS NULL AND e.actor_organisation_id IN
                       (SELECT host_organisation_id FROM {_t(Site)} WHERE id IN ({sites}))))
              AND e.action NOT IN ('sign_in', 'sign_in_failed', 'sign_out')
            GROUP BY e.outcome""",
        [_p(timezone.make_aware(datetime.combine(period.start, time.min))), as_of],
    )
    return cursor.fetchall()


def _by_site(counts) -> dict:
    """Per-site figures from the grouped rows, in the shape of metrics.Figures."""
    sites: dict = {}
    names = ("explicit_consent", "declined", "withdrawals", "withdrawals_citing_pressure", "felt_not_free_to_stop",
             "employment_goal_raised_by_benefits_agency", "intake_check_recorded")  # fmt: skip
    for site_id, status, pathway, heard, source, n, *sums in counts:
        site = sites.setdefault(site_id, {"received": 0, "voluntariness": {}, "by_pathway": {}, "by_how_heard": {},
                                          "by_source_of_referral": {}, "counts": dict.fromkeys(names, 0)})  # fmt: skip
        site["received"] += n
        for key, value in (("voluntariness", status), ("by_pathway", pathway), ("by_how_heard", heard),
                           ("by_source_of_referral", source)):  # fmt: skip
            site[key][value] = site[key].get(value, 0) + n
        for name, value in zip(names, sums, strict=True):
            site["counts"][name] += int(value or 0)
    return sites


def _nonzero(mapping: dict) -> dict:
    return {key: value for key, value in mapping.items() if value}


def mismatches(pilot_id: int, period_label: str) -> list[str]:
    """Where the bare SQL and the report's pilot_figures disagree (empty when every figure is equal)."""
    from consent.reports.metrics import pilot_figures

    raw = figures(pilot_id, period_label)
    ours = pilot_figures(Pilot.objects.get(pk=pilot_id), parse_period(period_label))
    found = []
    sites = _by_site(raw["counts"])
    for site_id, fig in ours.by_site.items():
        bare = sites.get(site_id, {"received": 0, "voluntariness": {}, "by_pathway": {}, "by_how_heard": {},
                                   "by_source_of_referral": {}, "counts": {}})  # fmt: skip
        pairs = [("received", fig.referrals_received, bare["received"])]
        pairs += [(key, _nonzero(getattr(fig, key)), _nonzero(bare[key]))
                  for key in ("voluntariness", "by_pathway", "by_how_heard", "by_source_of_referral")]  # fmt: skip
        pairs += [(name, fig.counts[name], bare["counts"].get(name, 0)) for name in bare["counts"]]
        found += [f"site {site_id} {name}: report {a}, bare SQL {b}" for name, a, b in pairs if a != b]
    site_days, all_days = {}, []
    for site_id, days, site_middle, all_middle in raw["medians"]:
        if site_middle:
            site_days.setdefault(site_id, []).append(days)
        if all_middle:
            all_days.append(days)
    for site_id, fig in ours.by_site.items():
        days = site_days.get(site_id)
        if (sum(days) / len(days) if days else None) != fig.median_days_to_consent:
            found.append(f"site {site_id} median: report {fig.median_days_to_consent}, bare SQL {days}")
    if (sum(all_days) / len(all_days) if all_days else None) != ours.total.median_days_to_consent:
        found.append(f"median: report {ours.total.median_days_to_consent}, bare SQL {all_days}")
    series: dict = {}
    for bucket, status, n in raw["series"]:
        point = series.setdefault(bucket, [0, 0])
        point[0] += n
        point[1] += n if status == "voluntary" else 0
    ours_series = {p.period.label: [p.referrals_received, p.remained_voluntary] for p in ours.series}
    if ours_series != series:
        found.append(f"series: report {ours_series}, bare SQL {series}")
    access = {"benefits_agency_access_allowed": 0, "benefits_agency_access_denied": 0}
    for outcome, n in raw["access"]:
        access["benefits_agency_access_allowed" if outcome == "allowed" else "benefits_agency_access_denied"] += n
    ours_access = {name: ours.total.counts[name] for name in access}
    if ours_access != access:
        found.append(f"benefits-agency attempts: report {ours_access}, bare SQL {access}")
    return found
