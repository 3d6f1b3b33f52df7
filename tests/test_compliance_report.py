"""The pilot compliance report: every figure of a hand-counted pilot, raw and then as published."""

import json
from datetime import date

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from consent import services
from consent.access.log import AccessContext
from consent.models import Referral
from consent.reports.metrics import pilot_figures
from consent.reports.periods import parse_period
from consent.reports.report import compliance_report
from tests.conftest import PASSWORD, api_client, give_consent, intake_check, make_referral
from tests.factories import at
from tests.helpers import bulk_referrals, fix_record_keys

STAR = "*"
Q4 = parse_period("2026-Q4")


def _ctx(user):
    return AccessContext.for_command(user, "test")


def _consented(user, site, template, *, referred_on, consent_on=None, check=True, **referral):
    r = make_referral(user, site, referred_on=referred_on, **referral)
    give_consent(user, r, template, given_on=consent_on or referred_on)
    if check:
        intake_check(user, r, day=consent_on or referred_on)
    return r


@pytest.fixture
def counted(world):
    """A pilot counted by hand (2026-Q4). Kent's site gets 20 referrals, Medway's 3; see the comments."""
    t, kent, tpl = world.therapist, world.site, world.template
    # Out of the period, never counted in Q4: the world's two referrals (2026-09-14) and one before the pilot.
    make_referral(t, kent, referred_on=date(2025, 12, 31))
    # W: voluntary, consent the same day (0 days).
    w = _consented(t, kent, tpl, referred_on=date(2026, 10, 1))
    # A x10: found the service themselves, consent 2 days later, voluntary.
    for _ in range(10):
        _consented(t, kent, tpl, referred_on=date(2026, 10, 1), consent_on=date(2026, 10, 3), how_heard="found_themselves")
    # B: signposted by a work coach, consent after 5 days, then withdrew citing pressure: concern.
    b = _consented(t, kent, tpl, referred_on=date(2026, 10, 3), consent_on=date(2026, 10, 8),
                   pathway="signposted_by_work_coach", how_heard="work_coach_suggested")  # fmt: skip
    services.record_withdrawal(context=_ctx(t), referral_id=b.pk, withdrawn_at=at(date(2026, 10, 20)), reason="felt_pressured")
    # C: mandated assessment, recorded honestly: not voluntary (0 days).
    _consented(t, kent, tpl, referred_on=date(2026, 10, 10), pathway="mandated_assessment", how_heard="work_coach_suggested")
    # D: Jobcentre Plus referred the person (M5), no consent yet: unknown.
    make_referral(t, kent, referred_on=date(2026, 10, 20), source_of_referral="M5", how_heard="work_coach_suggested")
    # E: declined after explanation: unknown.
    e = make_referral(t, kent, referred_on=date(2026, 11, 2), how_heard="gp")
    services.record_decline(context=_ctx(t), referral_id=e.pk, declined_on=date(2026, 11, 2))
    # F: benefit condition, from a GP (A1), consent after 1 day; the check found attendance said to be required,
    # the client not free to stop and an employment goal raised by the benefits agency: not voluntary.
    f = make_referral(
        t, kent, referred_on=date(2026, 11, 5), pathway="benefit_condition", source_of_referral="A1", how_heard="gp"
    )
    give_consent(t, f, tpl, given_on=date(2026, 11, 6))
    intake_check(t, f, day=date(2026, 11, 6), told_attendance_required=True, feels_free_to_stop=False,
                 employment_goal_raised_by="benefits_agency")  # fmt: skip
    # G: withdrew because it was no longer wanted (1 day to consent): still voluntary.
    g = _consented(t, kent, tpl, referred_on=date(2026, 10, 5), consent_on=date(2026, 10, 6), how_heard="friend_or_family")
    services.record_withdrawal(context=_ctx(t), referral_id=g.pk, withdrawn_at=at(date(2026, 10, 15)), reason="no_longer_wanted")
    # H: discharged after completing (0 days): voluntary.
    h = _consented(t, kent, tpl, referred_on=date(2026, 10, 5))
    services.discharge_referral(context=_ctx(t), referral_id=h.pk, discharged_on=date(2026, 11, 10), reason="completed")
    # I: awaiting consent: unknown.
    make_referral(t, kent, referred_on=date(2026, 11, 20), how_heard="other")
    # L: voluntary (0 days).
    _consented(t, kent, tpl, referred_on=date(2026, 11, 12))
    # Medway: three voluntary self-referrals, consent the same day.
    for _ in range(3):
        _consented(world.other_provider_therapist, world.medway_site, tpl, referred_on=date(2026, 10, 15))
    # A work coach tries to open W (refused, one event) and to list referrals (refused, one event on each of
    # the two co-located providers' chains, one attempt).
    coach = api_client(world.work_coach)
    assert coach.get(f"/api/v1/referrals/{w.pk}/").status_code == 404
    # Signing in (and failing to) is logged on the providers' chains but touches no client data.
    sign_in = "/api/v1/auth/token/"
    assert api_client().post(sign_in, {"username": "workcoach", "password": PASSWORD}, format="json").status_code == 200
    assert api_client().post(sign_in, {"username": "workcoach", "password": "wrong-password"}, format="json").status_code == 400
    assert coach.get("/api/v1/referrals/").status_code == 403
    # Every record key 1, so that a cell's key is its count and each published figure can be worked out by hand.
    fix_record_keys(1)
    return world


KENT_RAW = {
    "referrals_received": 20,
    "by_pathway": {"self_referral": 17, "signposted_by_work_coach": 1, "mandated_assessment": 1, "benefit_condition": 1},
    "by_source_of_referral": {"B1": 18, "M5": 1, "A1": 1},
    "by_how_heard": {"work_coach_suggested": 3, "leaflet_or_poster": 3, "gp": 2, "friend_or_family": 1,
                     "found_themselves": 10, "other": 1},
    "voluntariness": {"voluntary": 14, "concern": 1, "not_voluntary": 2, "unknown": 3},
    "counts": {"explicit_consent": 17, "declined": 1, "withdrawals": 2, "withdrawals_citing_pressure": 1,
               "felt_not_free_to_stop": 1, "employment_goal_raised_by_benefits_agency": 1, "intake_check_recorded": 17,
               "benefits_agency_access_allowed": 0, "benefits_agency_access_denied": 1},
    # Days to consent: 0 x4 (W, C, H, L), 1 x2 (F, G), 2 x10 (A), 5 (B): the 9th of 17 is 2.
    "median_days_to_consent": 2,
}  # fmt: skip
MEDWAY_RAW = {
    "referrals_received": 3,
    "by_pathway": {"self_referral": 3, "signposted_by_work_coach": 0, "mandated_assessment": 0, "benefit_condition": 0},
    "by_source_of_referral": {"B1": 3, "M5": 0, "A1": 0},
    "by_how_heard": {"work_coach_suggested": 0, "leaflet_or_poster": 3, "gp": 0, "friend_or_family": 0,
                     "found_themselves": 0, "other": 0},
    "voluntariness": {"voluntary": 3, "concern": 0, "not_voluntary": 0, "unknown": 0},
    "counts": {"explicit_consent": 3, "declined": 0, "withdrawals": 0, "withdrawals_citing_pressure": 0,
               "felt_not_free_to_stop": 0, "employment_goal_raised_by_benefits_agency": 0, "intake_check_recorded": 3,
               "benefits_agency_access_allowed": 0, "benefits_agency_access_denied": 0},
    "median_days_to_consent": 0,
}  # fmt: skip
TOTAL_RAW = {
    "referrals_received": 23,
    "by_pathway": {"self_referral": 20, "signposted_by_work_coach": 1, "mandated_assessment": 1, "benefit_condition": 1},
    "by_source_of_referral": {"B1": 21, "M5": 1, "A1": 1},
    "by_how_heard": {"work_coach_suggested": 3, "leaflet_or_poster": 6, "gp": 2, "friend_or_family": 1,
                     "found_themselves": 10, "other": 1},
    "voluntariness": {"voluntary": 17, "concern": 1, "not_voluntary": 2, "unknown": 3},
    # The list attempt is on two chains but is one attempt: the detail attempt plus the list attempt.
    "counts": {"explicit_consent": 20, "declined": 1, "withdrawals": 2, "withdrawals_citing_pressure": 1,
               "felt_not_free_to_stop": 1, "employment_goal_raised_by_benefits_agency": 1, "intake_check_recorded": 20,
               "benefits_agency_access_allowed": 0, "benefits_agency_access_denied": 2},
    # 0 x7, 1 x2, 2 x10, 5: the 10th and 11th of 20 are both 2.
    "median_days_to_consent": 2,
}  # fmt: skip


def _raw(figures):
    return {
        "referrals_received": figures.referrals_received,
        "by_pathway": figures.by_pathway,
        "by_source_of_referral": figures.by_source_of_referral,
        "by_how_heard": figures.by_how_heard,
        "voluntariness": figures.voluntariness,
        "counts": figures.counts,
        "median_days_to_consent": figures.median_days_to_consent,
    }


def test_it_counts_every_figure_of_a_hand_counted_pilot(counted):
    figures = pilot_figures(counted.pilot, Q4)
    assert _raw(figures.by_site[counted.site.pk]) == KENT_RAW
    assert _raw(figures.by_site[counted.medway_site.pk]) == MEDWAY_RAW
    assert _raw(figures.total) == TOTAL_RAW
    assert figures.total.remained_voluntary == 17
    # Quarterly series from the pilot's start: Q3 holds the world's two referrals (neither consented).
    series = [(p.period.label, p.referrals_received, p.remained_voluntary) for p in figures.series]
    assert series == [("2026-Q1", 0, 0), ("2026-Q2", 0, 0), ("2026-Q3", 2, 0), ("2026-Q4", 23, 17)]


def documented_rule(n: int, key: int) -> int | str:
    """The rule as docs/disclosure-control.md states it, written out again here, not imported."""
    if n == 0:
        return 0
    if n <= 7:
        return STAR
    perturbation = ((key + 101 * n) * 163 % 256) % 7 - 3
    return max(10, 5 * int((n + perturbation) / 5 + 0.5))


def test_the_documented_rule_by_hand():
    # 23 with key 23: (23 + 2323) * 163 = 382398, mod 256 = 190, mod 7 = 1: perturbation -2, 21 -> 20.
    assert documented_rule(23, 23) == 20
    # 20 with key 20: (20 + 2020) * 163 = 332520, mod 256 = 232, mod 7 = 1: perturbation -2, 18 -> 20.
    assert documented_rule(20, 20) == 20
    # 12 with key 12: (12 + 1212) * 163 = 199512, mod 256 = 88, mod 7 = 4: perturbation +1, 13 -> 15.
    assert documented_rule(12, 12) == 15
    # 8 with key 0: (808 * 163) mod 256 = 120, mod 7 = 1: perturbation -2, 6 -> 5, but never below 10.
    assert documented_rule(8, 0) == 10


def _flat(scope: dict) -> dict:
    cells = {}
    for key, value in scope.items():
        if isinstance(value, dict) and key not in ("site", "separation"):
            cells.update({(key, category): n for category, n in value.items()})
        elif key not in ("site", "separation", "access_log_verified") and not key.endswith(("_share", "median_days_to_consent")):
            cells[(key,)] = value
    return cells


def _raw_cells(raw: dict) -> dict:
    cells = {("referrals_received",): raw["referrals_received"], ("remained_voluntary",): raw["voluntariness"]["voluntary"]}
    for breakdown in ("by_pathway", "by_source_of_referral", "by_how_heard", "voluntariness"):
        cells.update({(breakdown, category): n for category, n in raw[breakdown].items()})
    cells.update({(name,): n for name, n in raw["counts"].items()})
    return cells


def _check_scope(published: dict, raw: dict) -> set:
    """Every figure is the documented rule's (key = count here), or "*" withheld as a second cell; returns those."""
    second = set()
    for path, n in _raw_cells(raw).items():
        shown = _flat(published)[path]
        # Access attempts are events, not referrals: no record keys, the HES rule with cell key 0.
        expected = documented_rule(n, 0 if path[0].startswith("benefits_agency_access") else n)
        if shown == STAR and expected != STAR:
            second.add(path)
        else:
            assert shown == expected, (path, n, shown, expected)
    # Shares from the figures as shown (withheld with them), never from the raw counts.
    received, consent, remained = (
        _flat(published)[(k,)] for k in ("referrals_received", "explicit_consent", "remained_voluntary")
    )
    assert published["explicit_consent_share"] == (STAR if STAR in (consent, received) else round(min(1, consent / received), 2))
    assert published["remained_voluntary_share"] == (
        STAR if STAR in (remained, consent) else round(min(1, remained / consent), 2)
    )
    assert published["median_days_to_consent"] == (STAR if consent == STAR else raw["median_days_to_consent"])
    return second


def test_it_publishes_the_hand_counted_pilot_by_the_documented_rule(counted):
    response = api_client(counted.reviewer).get(f"/api/v1/pilots/{counted.pilot.pk}/compliance-report/?period=2026-Q4")
    assert response.status_code == 200
    report = response.json()
    assert report["pilot"] == {"id": counted.pilot.pk, "name": "Canterbury pilot", "cadence": "quarterly"}
    assert {k: report["period"][k] for k in ("label", "start", "end")} == {
        "label": "2026-Q4",
        "start": "2026-10-01",
        "end": "2026-12-31",
    }
    assert "not counted" in report["period"]["counted"]
    assert (
        "cell-key" in report["disclosure_control"]
        and "withheld so that others cannot be worked out" in report["disclosure_control"]
    )
    totals = report["totals"]
    # By hand: 23 referrals, key 23, published 20; 20 consents published 20; 17 voluntary (key 17:
    # (17 + 1717) * 163 mod 256 = 18, mod 7 = 4, perturbation +1: 18) published 20.
    assert (totals["referrals_received"], totals["explicit_consent"], totals["remained_voluntary"]) == (20, 20, 20)
    # Shares of the published figures: 20/20 both, where the raw counts (20/23, 17/20) would give more away.
    assert totals["explicit_consent_share"] == 1.0 and totals["remained_voluntary_share"] == 1.0
    kent, medway = report["sites"]  # ordered by name
    assert kent["site"] == {"id": counted.site.pk, "name": "Canterbury Jobcentre clinic", "provider": "Kent talking therapies"}
    second = {
        "total": _check_scope(totals, TOTAL_RAW),
        "kent": _check_scope(kent, KENT_RAW),
        "medway": _check_scope(medway, MEDWAY_RAW),
    }
    # Second cells withheld so that Medway's 3 cannot be worked out as the total less Kent: Kent's 20 received
    # (and with it the other figures in which Medway is small and Kent is not).
    assert ("referrals_received",) in second["kent"]
    assert second["total"] == set() and second["medway"] == set()
    assert kent["separation"] == {
        "separate_room_or_floor": True, "separate_entrance": True, "separate_signage_and_publicity": True,
        "separate_it_and_records": True, "no_benefits_agency_staff_in_sessions": True, "last_reviewed": "2026-05-01",
    }  # fmt: skip
    assert report["series"] == [
        {"period": "2026-Q1", "start": "2026-01-01", "end": "2026-03-31", "referrals_received": 0, "remained_voluntary": 0},
        {"period": "2026-Q2", "start": "2026-04-01", "end": "2026-06-30", "referrals_received": 0, "remained_voluntary": 0},
        {"period": "2026-Q3", "start": "2026-07-01", "end": "2026-09-30", "referrals_received": STAR, "remained_voluntary": 0},
        # The last step is the period itself: the same cells as the totals.
        {"period": "2026-Q4", "start": "2026-10-01", "end": "2026-12-31", "referrals_received": 20, "remained_voluntary": 20},
    ]
    verdicts = {p["key"]: p["verdict"] for p in report["principles"]}
    assert verdicts == {"voluntary_participation": "not met", "no_information_sharing": "met", "client_led_goals": "not met",
                        "appropriate_environment": "met", "free_to_withdraw": "not met", "honest_counting": "met"}  # fmt: skip
    evidence = {p["key"]: p["evidence"] for p in report["principles"]}
    assert evidence["honest_counting"] == {"referrals_received": 20, "declined": STAR, "counted_without_exclusions": True}
    assert evidence["voluntary_participation"]["remained_voluntary"] == 20


def test_it_counts_the_status_as_it_stood_at_the_end_of_the_period(world):
    """Consent and a check recorded after the period do not change that period's report."""
    t = world.therapist
    late_consent = make_referral(t, world.site, referred_on=date(2026, 9, 29))
    give_consent(t, late_consent, world.template, given_on=date(2026, 10, 2))
    late_sanction = make_referral(t, world.site, referred_on=date(2026, 9, 10))
    give_consent(t, late_sanction, world.template)
    intake_check(t, late_sanction)
    intake_check(t, late_sanction, day=date(2026, 10, 5), stage="during_therapy", sanction_mentioned=True)

    q3 = pilot_figures(world.pilot, parse_period("2026-Q3")).by_site[world.site.pk]
    assert q3.referrals_received == 3  # with the world's referral of 2026-09-14
    assert q3.counts["explicit_consent"] == 1
    assert q3.voluntariness == {"voluntary": 1, "concern": 0, "not_voluntary": 0, "unknown": 2}

    whole_year = pilot_figures(world.pilot, parse_period("2026")).by_site[world.site.pk]
    assert whole_year.counts["explicit_consent"] == 2
    assert whole_year.voluntariness == {"voluntary": 0, "concern": 0, "not_voluntary": 1, "unknown": 2}


PATHWAYS = ("self_referral", "signposted_by_work_coach", "mandated_assessment", "benefit_condition")


def test_it_counts_every_referral_in_the_period_whatever_its_status_or_pathway(world):
    t, tpl = world.therapist, world.template
    made = []
    for index, pathway in enumerate(PATHWAYS):
        day = date(2026, 10, 1 + index)
        made.append(make_referral(t, world.site, referred_on=day, pathway=pathway))  # awaiting consent
        active = make_referral(t, world.site, referred_on=day, pathway=pathway, source_of_referral="M5")
        give_consent(t, active, tpl)
        made.append(active)
        declined = make_referral(t, world.site, referred_on=day, pathway=pathway, how_heard="gp")
        services.record_decline(context=_ctx(t), referral_id=declined.pk, declined_on=day)
        made.append(declined)
        withdrawn = make_referral(t, world.site, referred_on=day, pathway=pathway)
        give_consent(t, withdrawn, tpl)
        services.record_withdrawal(context=_ctx(t), referral_id=withdrawn.pk, withdrawn_at=at(day, 15), reason="other")
        made.append(withdrawn)
        discharged = make_referral(t, world.site, referred_on=day, pathway=pathway)
        services.discharge_referral(context=_ctx(t), referral_id=discharged.pk, discharged_on=day, reason="no_contact")
        made.append(discharged)
    # The first and last days of the period count; the days either side do not.
    made.append(make_referral(t, world.site, referred_on=date(2026, 10, 1)))
    make_referral(t, world.site, referred_on=date(2026, 9, 30))
    statuses = set(Referral.objects.filter(pk__in=[r.pk for r in made]).values_list("status", flat=True))
    assert statuses == {"awaiting_consent", "active", "declined", "withdrawn", "discharged"}

    figures = pilot_figures(world.pilot, parse_period("2026-Q4"))
    assert figures.by_site[world.site.pk].referrals_received == len(made) == 21
    assert figures.total.referrals_received == 21
    assert figures.by_site[world.site.pk].by_pathway == {p: 5 + (p == "self_referral") for p in PATHWAYS}
    for breakdown in ("by_pathway", "by_source_of_referral", "by_how_heard", "voluntariness"):
        assert sum(getattr(figures.total, breakdown).values()) == 21, breakdown


def _queries_for_report(world) -> tuple[int, dict]:
    fix_record_keys(0)
    with CaptureQueriesContext(connection) as captured:
        report = compliance_report(world.pilot, parse_period("2026-Q3"))
    return len(captured.captured_queries), report


def test_it_costs_the_same_number_of_queries_for_10_and_1000_referrals(world):
    bulk_referrals(world, 10)
    small, small_report = _queries_for_report(world)
    bulk_referrals(world, 990)
    large, large_report = _queries_for_report(world)
    assert small == large
    # 10 bulk referrals + the world's two (12); then 1,002. Every record key 0 here, so each cell key is 0.
    assert small_report["totals"]["referrals_received"] == documented_rule(12, 0)
    assert large_report["totals"]["referrals_received"] == documented_rule(1002, 0)
    assert large_report["totals"]["by_pathway"]["mandated_assessment"] == documented_rule(333, 0)


def test_the_command_prints_the_suppressed_report_in_each_format(counted, tmp_path, capsys):
    call_command("compliance_report", "--pilot", str(counted.pilot.pk), "--period", "2026-Q4")
    report = json.loads(capsys.readouterr().out)
    assert (
        report["totals"]
        == api_client(counted.reviewer)
        .get(f"/api/v1/pilots/{counted.pilot.pk}/compliance-report/?period=2026-Q4")
        .json()["totals"]
    )
    target = tmp_path / "report.csv"
    call_command("compliance_report", "--pilot", str(counted.pilot.pk), "--period", "2026-Q4", "--format", "csv",
                 "--output", str(target))  # fmt: skip
    text = target.read_text()
    assert "figures,All sites,referrals_received,,20" in text
    assert "figures,Canterbury Jobcentre clinic,referrals_received,,*" in text
    call_command("compliance_report", "--pilot", str(counted.pilot.pk), "--period", "2026-Q4", "--format", "html")
    assert "<svg" in capsys.readouterr().out


def test_the_command_explains_a_bad_period(world):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=r"2026-Q3"):
        call_command("compliance_report", "--pilot", str(world.pilot.pk), "--period", "Q3-2026")
    with pytest.raises(CommandError, match="No pilot"):
        call_command("compliance_report", "--pilot", "999999", "--period", "2026-Q3")
