"""The per-referral voluntariness flags the report reads: kept exact by every write, recounted by a command."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from consent import services
from consent.access.log import AccessContext
from consent.models import VoluntarinessFlags
from consent.voluntariness_flags import flag_differences, rebuild_voluntariness_flags
from tests.conftest import at, give_consent, intake_check, make_referral


def _ctx(user):
    return AccessContext.for_command(user, "test")


def test_it_writes_each_fact_with_the_record_that_shows_it(world):
    t = world.therapist
    referral = make_referral(t, world.site, referred_on=date(2026, 9, 1))
    flags = VoluntarinessFlags.objects.get(referral=referral)
    assert [getattr(flags, name) for name in ("consent_at", "intake_check_at", "withdrawal_at", "declined_on")] == [None] * 4
    give_consent(t, referral, world.template, given_on=date(2026, 9, 2))
    intake_check(t, referral, day=date(2026, 9, 3), feels_free_to_stop=False)
    services.record_withdrawal(
        context=_ctx(t), referral_id=referral.pk, withdrawn_at=at(date(2026, 9, 20)), reason="felt_pressured"
    )
    flags.refresh_from_db()
    assert flags.explicit_consent_at == flags.consent_at == at(date(2026, 9, 2))
    assert flags.intake_check_at == flags.not_free_to_stop_at == at(date(2026, 9, 3), 11)
    assert flags.withdrawal_at == flags.pressured_withdrawal_at == at(date(2026, 9, 20))
    assert flags.told_required_at is None and flags.goal_by_agency_at is None


def test_a_correction_takes_the_fact_back(world):
    t = world.therapist
    referral = make_referral(t, world.site, referred_on=date(2026, 9, 1))
    wrong = intake_check(t, referral, day=date(2026, 9, 2), sanction_mentioned=True)
    assert VoluntarinessFlags.objects.get(referral=referral).sanction_at is not None
    services.record_voluntariness_check(
        context=_ctx(t), referral_id=referral.pk, checked_at=at(date(2026, 9, 2), 12), stage="intake",
        told_attendance_required=False, sanction_mentioned=False, feels_free_to_stop=True, goals_set_by_client=True,
        employment_goal_raised_by="nobody", supersedes=wrong.pk,
    )  # fmt: skip
    flags = VoluntarinessFlags.objects.get(referral=referral)
    assert flags.sanction_at is None
    assert flags.intake_check_at == at(date(2026, 9, 2), 12)


def test_a_decline_is_written_with_its_day(world):
    referral = make_referral(world.therapist, world.site, referred_on=date(2026, 9, 1))
    services.record_decline(context=_ctx(world.therapist), referral_id=referral.pk, declined_on=date(2026, 9, 4))
    assert VoluntarinessFlags.objects.get(referral=referral).declined_on == date(2026, 9, 4)


@pytest.fixture
def recorded(world):
    t = world.therapist
    for day in range(1, 6):
        referral = make_referral(t, world.site, referred_on=date(2026, 8, day))
        give_consent(t, referral, world.template)
        intake_check(
            t, referral, goals_set_by_client=day % 2 == 0, employment_goal_raised_by="benefits_agency" if day == 3 else "nobody"
        )
    return world


def test_the_recount_passes_when_every_row_matches_its_records(recorded, capsys):
    call_command("recount_voluntariness_flags")
    assert "match" in capsys.readouterr().out
    assert not flag_differences().exists()


def test_the_recount_fails_naming_a_row_planted_wrong(recorded):
    planted = VoluntarinessFlags.objects.order_by("pk").first()
    VoluntarinessFlags.objects.filter(pk=planted.pk).update(told_required_at=timezone.now() - timedelta(days=1))
    with pytest.raises(CommandError) as failure:
        call_command("recount_voluntariness_flags")
    assert "1 referral(s)" in str(failure.value) and str(planted.pk) in str(failure.value)


def test_the_recount_fails_on_a_fact_moved_or_a_row_missing(recorded):
    rows = list(VoluntarinessFlags.objects.order_by("pk")[:2])
    VoluntarinessFlags.objects.filter(pk=rows[0].pk).update(explicit_consent_at=datetime(2026, 1, 1, tzinfo=UTC))
    VoluntarinessFlags.objects.filter(pk=rows[1].pk).delete()
    assert set(flag_differences().values_list("pk", flat=True)) == {rows[0].pk, rows[1].pk}
    with pytest.raises(CommandError, match="2 referral"):
        call_command("recount_voluntariness_flags")


def test_the_rebuild_writes_every_row_again_from_the_records(recorded):
    before = {row.pk: row.explicit_consent_at for row in VoluntarinessFlags.objects.all()}
    VoluntarinessFlags.objects.all().delete()
    assert rebuild_voluntariness_flags() == len(before)
    assert {row.pk: row.explicit_consent_at for row in VoluntarinessFlags.objects.filter(pk__in=before)} == before
    assert not flag_differences().exists()


def test_retention_erasure_leaves_the_flags_exact(recorded):
    # Erasure removes a client's identifiers, never a record the flags are made of: the rows still match.
    from consent.retention import apply_retention

    apply_retention(today=date(2040, 1, 1))
    assert not flag_differences().exists()


def test_a_referral_without_a_row_gets_one_with_its_next_record(world):
    referral = make_referral(world.therapist, world.site, referred_on=date(2026, 9, 1))
    VoluntarinessFlags.objects.filter(referral=referral).delete()
    give_consent(world.therapist, referral, world.template, given_on=date(2026, 9, 2))
    assert VoluntarinessFlags.objects.get(referral=referral).explicit_consent_at == at(date(2026, 9, 2))
    assert not flag_differences().exists()
