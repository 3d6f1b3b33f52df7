"""The same referrals give the same published figure in every report, and a report costs a fixed number of queries."""

from datetime import date

from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.conftest import api_client, give_consent, intake_check, make_referral
from tests.helpers import bulk_referrals, fix_record_keys


def _report(world, period, fmt=""):
    response = api_client(world.reviewer).get(
        f"/api/v1/pilots/{world.pilot.pk}/compliance-report/?period={period}{'&format=' + fmt if fmt else ''}"
    )
    assert response.status_code == 200, response.content
    return response.json() if not fmt else response.content.decode()


def _referrals(world, day, n, *, consented=True, site=None, **fields):
    for _ in range(n):
        referral = make_referral(world.therapist, site or world.site, referred_on=day, **fields)
        if consented:
            give_consent(world.therapist, referral, world.template)
            intake_check(world.therapist, referral)


def test_reports_of_overlapping_periods_agree_on_every_figure_they_share(world):
    world.pilot.cadence = "monthly"
    world.pilot.save()
    _referrals(world, date(2026, 7, 3), 9)
    _referrals(world, date(2026, 8, 20), 12, pathway="signposted_by_work_coach", how_heard="work_coach_suggested")
    _referrals(world, date(2026, 8, 21), 3, consented=False)
    _referrals(world, date(2026, 10, 2), 11)  # Q4 holds only October's referrals
    reports = {p: _report(world, p) for p in ("2026-07", "2026-08", "2026-09", "2026-10", "2026-Q3", "2026-Q4", "2026", "pilot")}
    # Each month is one figure wherever it appears: its own report and every later report's series.
    for label in ("2026-07", "2026-08", "2026-09", "2026-10"):
        own = reports[label]["totals"]
        for other in ("2026-Q4", "2026", "pilot") if label == "2026-10" else ("2026-Q3", "2026-Q4", "2026", "pilot"):
            (point,) = [p for p in reports[other]["series"] if p["period"] == label]
            assert (point["referrals_received"], point["remained_voluntary"]) == (
                own["referrals_received"],
                own["remained_voluntary"],
            ), (label, other)

    # October and Q4 count the same referrals: every figure about them is the same, at every site, in every
    # format. (Benefits-agency attempts are events of their own time, not referrals, so they are left aside.)
    def about_referrals(scope):
        return {k: v for k, v in scope.items() if k != "site" and not k.startswith("benefits_agency_access")}

    for october, q4 in zip([reports["2026-10"]["totals"], *reports["2026-10"]["sites"]],
                           [reports["2026-Q4"]["totals"], *reports["2026-Q4"]["sites"]], strict=True):  # fmt: skip
        assert about_referrals(october) == about_referrals(q4)
    october_csv, q4_csv = (_report(world, p, "csv").splitlines() for p in ("2026-10", "2026-Q4"))

    def figure_rows(rows):
        return [row for row in rows if row.startswith("figures,") and ",benefits_agency_access" not in row]

    assert figure_rows(october_csv) == figure_rows(q4_csv)
    # The year and the pilot to date hold the same referrals too (the pilot runs through 2026).
    assert reports["2026"]["totals"]["referrals_received"] == reports["pilot"]["totals"]["referrals_received"]
    assert reports["2026"]["totals"]["by_pathway"] == reports["pilot"]["totals"]["by_pathway"]


def _queries_of_a_report_request(world) -> int:
    with CaptureQueriesContext(connection) as captured:
        _report(world, "2026-Q3")
    return len(captured.captured_queries)


def test_a_report_request_costs_the_same_queries_at_n_and_n_over_10(world, django_assert_max_num_queries):
    bulk_referrals(world, 100)
    fix_record_keys(7)
    _report(world, "2026-07")  # the first request of a process warms caches (content types and the like)
    at_a_tenth = _queries_of_a_report_request(world)
    bulk_referrals(world, 900)
    with django_assert_max_num_queries(at_a_tenth):
        _report(world, "2026-Q3")
    assert _queries_of_a_report_request(world) == at_a_tenth
