"""The report's lattice cells, kept as records are written: equal to the records' count after every kind of write,
counted again when a pilot's dates or sites change, and recounted by a command that fails on any difference."""

import statistics
from datetime import date

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils.timezone import localtime

from consent import services
from consent.access.log import AccessContext
from consent.lattice_cells import LEVELS
from consent.models import ACKNOWLEDGEMENTS, LatticeCell, Referral
from consent.reports.cells import cell_differences, counted_cells, rebuild_cells
from consent.reports.metrics import pilot_figures
from consent.reports.models import KeptLattice
from consent.reports.periods import PILOT_TO_DATE, parse_period
from tests.conftest import at, give_consent, intake_check, make_referral
from tests.factories import PilotFactory, SiteFactory


def _ctx(user):
    return AccessContext.for_command(user, "test")


def _kept(pilot) -> dict:
    return {
        (site_id, month, path): [n, key_sum]
        for site_id, month, path, n, key_sum in LatticeCell.objects.filter(pilot=pilot)
        .exclude(n=0, key_sum=0)
        .values_list("site_id", "month", "path", "n", "key_sum")
    }


def _site_ids(pilot) -> list[int]:
    return list(pilot.sites.values_list("pk", flat=True))


@pytest.fixture
def written(world):
    """Referrals over several months with every kind of record, corrections among them, through the services."""
    t, tpl = world.therapist, world.template
    for day in (date(2026, 3, 30), date(2026, 6, 15), date(2026, 9, 1), date(2026, 9, 14)):
        consented = make_referral(t, world.site, referred_on=day, source_of_referral="M5")
        give_consent(t, consented, tpl, given_on=date(2026, day.month + 1, 2))  # consent the month after
        intake_check(t, consented, day=date(2026, day.month + 1, 3))
        pressured = make_referral(t, world.site, referred_on=day, pathway="mandated_assessment", how_heard="gp")
        give_consent(t, pressured, tpl)
        wrong = intake_check(t, pressured, sanction_mentioned=True)
        intake_check(t, pressured, day=day, supersedes=wrong.pk)  # corrected: the sanction taken back
        services.record_withdrawal(
            context=_ctx(t), referral_id=pressured.pk, withdrawn_at=at(date(2026, 11, 1)), reason="felt_pressured"
        )
        declined = make_referral(t, world.site, referred_on=day)
        services.record_decline(context=_ctx(t), referral_id=declined.pk, declined_on=day)
        told = make_referral(t, world.site, referred_on=day)
        intake_check(t, told, told_attendance_required=True, employment_goal_raised_by="benefits_agency")
    return world


def test_the_cells_kept_by_every_write_equal_the_records_count(written):
    pilot = written.pilot
    assert _kept(pilot) == counted_cells(pilot, _site_ids(pilot))
    assert cell_differences(pilot) == []
    kept = _kept(pilot)
    march = date(2026, 3, 1)
    site = written.site.pk
    assert kept[(site, march, "referrals_received")][0] == 4
    # One consented the day received (30 March), one on 2 April: by the end of March and of its quarter one, by
    # the end of the year both.
    assert kept[(site, march, "month|explicit_consent")][0] == kept[(site, march, "quarter|explicit_consent")][0] == 1
    assert kept[(site, march, "year|explicit_consent")][0] == 2
    # The sanction was corrected away; the pressured withdrawal of November counts as at the year's end only.
    assert (site, march, "year|withdrawals_citing_pressure") in kept
    assert (site, march, "quarter|withdrawals_citing_pressure") not in kept


def test_every_level_is_counted_and_the_pilot_level_is_the_pilot_to_date():
    assert LEVELS[-1] == PILOT_TO_DATE


def test_a_fact_after_the_pilot_s_last_day_is_not_counted_in_it(world):
    pilot = world.pilot
    pilot.ends_on = date(2026, 9, 15)
    pilot.save()
    unknown = (world.site.pk, date(2026, 9, 1), "pilot|voluntariness|unknown")
    before = _kept(pilot).get(unknown, [0])[0]
    referral = make_referral(world.therapist, world.site, referred_on=date(2026, 9, 10))
    give_consent(world.therapist, referral, world.template, given_on=date(2026, 9, 20))  # after the pilot's end
    kept = _kept(pilot)
    assert (world.site.pk, date(2026, 9, 1), "pilot|explicit_consent") not in kept
    assert kept[unknown][0] == before + 1
    assert cell_differences(pilot) == []


def test_a_site_in_two_pilots_counts_in_both(world):
    other = PilotFactory(name="Kent-wide pilot", starts_on=date(2026, 9, 1), ends_on=date(2027, 8, 31))
    other.sites.set([world.site])
    rebuild_cells(other)
    referral = make_referral(world.therapist, world.site, referred_on=date(2026, 9, 2))
    give_consent(world.therapist, referral, world.template)
    before_other = make_referral(world.therapist, world.site, referred_on=date(2026, 8, 31))
    give_consent(world.therapist, before_other, world.template)
    assert _kept(other)[(world.site.pk, date(2026, 9, 1), "year|explicit_consent")][0] == 1
    assert not any(month == date(2026, 8, 1) for _, month, _ in _kept(other))
    assert _kept(world.pilot)[(world.site.pk, date(2026, 8, 1), "referrals_received")][0] == 1
    assert cell_differences(other) == [] and cell_differences(world.pilot) == []


def test_a_pilot_whose_dates_or_sites_changed_is_counted_again_by_its_next_report(written):
    pilot = written.pilot
    before = pilot_figures(pilot, parse_period("2026"))
    pilot.starts_on = date(2026, 4, 1)
    pilot.save()
    after = pilot_figures(pilot, parse_period("2026"))
    assert after.total.referrals_received == before.total.referrals_received - 4  # March's four are outside it now
    new_site = SiteFactory(name="Dover clinic", host_organisation=written.agency, provider=written.kent)
    pilot.sites.add(new_site)
    make_referral(written.therapist, new_site, referred_on=date(2026, 9, 1))
    with_site = pilot_figures(pilot, parse_period("2026"))
    assert with_site.by_site[new_site.pk].referrals_received == 1
    assert KeptLattice.objects.get(pilot=pilot).starts_on == date(2026, 4, 1)
    assert cell_differences(pilot) == []


def test_a_write_moves_its_counts_in_one_statement(written):
    referral = make_referral(written.therapist, written.site, referred_on=date(2026, 9, 20))
    with CaptureQueriesContext(connection) as captured:
        give_consent(written.therapist, referral, written.template)
    cell_writes = [q["sql"] for q in captured.captured_queries if LatticeCell._meta.db_table in q["sql"]]
    assert len(cell_writes) == 1 and cell_writes[0].startswith("INSERT")
    assert cell_differences(written.pilot) == []


def _median_from_records(pilot, site, period) -> float | None:
    """Days from referral to first consent in force, for referrals received in the period and explicitly consented
    by its end, worked out one referral at a time."""
    days = []
    for referral in Referral.objects.filter(site=site, referred_on__gte=period.start, referred_on__lte=period.end):
        consents = [c for c in referral.consents.filter(superseded_by__isnull=True)]
        explicit = [c.given_at for c in consents if all(getattr(c, a) for a in ACKNOWLEDGEMENTS)]
        if explicit and localtime(min(explicit)).date() <= period.end:
            days.append((localtime(min(c.given_at for c in consents)).date() - referral.referred_on).days)
    return statistics.median(days) if days else None


@pytest.mark.parametrize("label", ["2026", "2026-Q3", "2026-09", "2026-Q2"])
def test_the_medians_taken_from_the_kept_cells_are_the_records_medians(written, label):
    period = parse_period(label)
    figures = pilot_figures(written.pilot, period)
    for site in (written.site, written.medway_site):
        expected = _median_from_records(written.pilot, site, period)
        assert figures.by_site.get(site.pk).median_days_to_consent == expected


def test_a_median_counts_only_consents_given_by_the_period_s_end(written):
    # September's referrals of the consenting kind gave consent on 2 October: not in September's median.
    september = pilot_figures(written.pilot, parse_period("2026-09")).by_site[written.site.pk].median_days_to_consent
    year = pilot_figures(written.pilot, parse_period("2026")).by_site[written.site.pk].median_days_to_consent
    assert september == 0
    assert year > 0


def test_the_recount_passes_on_kept_cells(written, capsys):
    call_command("recount_report_cells")
    assert "matches the records" in capsys.readouterr().out


def test_the_recount_fails_naming_a_cell_planted_wrong_and_rebuilds_on_request(written):
    pilot = written.pilot
    planted = LatticeCell.objects.filter(pilot=pilot, path="quarter|explicit_consent").order_by("pk").first()
    LatticeCell.objects.filter(pk=planted.pk).update(n=planted.n + 1)
    LatticeCell.objects.create(pilot=pilot, site=written.site, month=date(2026, 1, 1), path="referrals_received", n=3, key_sum=9)
    with pytest.raises(CommandError) as failure:
        call_command("recount_report_cells")
    message = str(failure.value)
    assert message.startswith("2 report cell(s) differ")
    assert f"site {planted.site_id} {planted.month:%Y-%m} quarter|explicit_consent: kept [{planted.n + 1}," in message
    assert "2026-01 referrals_received: kept [3, 9], counted [0, 0]" in message
    with pytest.raises(CommandError, match="counted again"):
        call_command("recount_report_cells", "--rebuild")
    assert cell_differences(pilot) == []


def test_cells_written_around_the_services_are_found_by_the_recount(written):
    # A referral inserted with the ORM alone (no intake service) is in the records but in no kept cell.
    model = Referral.objects.filter(site=written.site).first()
    model.pk = None
    model.id = None
    model.save()
    differences = cell_differences(written.pilot)
    assert any(
        path == "referrals_received" and kept and counted and counted[0] == kept[0] + 1
        for _, _, path, kept, counted in differences
    )


def test_the_recount_counts_a_pilot_changed_since_its_last_report_first(written, capsys):
    # Adding a site with referrals already recorded: its next report would count the pilot again, so the recount does.
    new_site = SiteFactory(name="Dover clinic", host_organisation=written.agency, provider=written.kent)
    make_referral(written.therapist, new_site, referred_on=date(2026, 9, 1))
    written.pilot.sites.add(new_site)
    call_command("recount_report_cells")
    assert "matches the records" in capsys.readouterr().out
    assert _kept(written.pilot)[(new_site.pk, date(2026, 9, 1), "referrals_received")][0] == 1
