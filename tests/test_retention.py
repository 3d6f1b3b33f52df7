"""apply_retention erases the identifiers of clients past the retention period, and only theirs; the log stays whole."""

from datetime import date

import pytest
from dateutil.relativedelta import relativedelta
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import override_settings
from django.utils import timezone

from consent import services
from consent.access.log import AccessContext, verify_chain
from consent.access.models import AccessEvent, Action
from consent.models import Client, Referral
from consent.retention import DEFAULT_RETENTION_YEARS, RetentionPolicy, apply_retention, retention_policy
from tests.conftest import intake_check, make_referral

pytestmark = pytest.mark.django_db


def last_contact(client: Client) -> date:
    """A client's last contact computed the slow way, in Python, to check the SQL against."""
    days = []
    for referral in Referral.objects.filter(client=client).prefetch_related("consents", "withdrawals", "voluntariness_checks"):
        days.append(referral.referred_on)
        days += [timezone.localtime(c.given_at).date() for c in referral.consents.all()]
        days += [timezone.localtime(w.withdrawn_at).date() for w in referral.withdrawals.all()]
        days += [timezone.localtime(c.checked_at).date() for c in referral.voluntariness_checks.all()]
        if hasattr(referral, "discharge"):
            days.append(referral.discharge.discharged_on)
        if hasattr(referral, "decline"):
            days.append(referral.decline.declined_on)
    return max(days)


def test_the_default_policy_is_twenty_years_for_psychological_therapy_records(settings):
    del settings.RETENTION_YEARS_AFTER_DISCHARGE
    assert retention_policy() == RetentionPolicy(years=DEFAULT_RETENTION_YEARS) == RetentionPolicy(years=20)


def test_the_period_is_configurable_and_counted_in_calendar_years(settings):
    settings.RETENTION_YEARS_AFTER_DISCHARGE = 8
    policy = retention_policy()
    assert policy.years == 8
    assert policy.cutoff(date(2034, 3, 1)) == date(2026, 3, 1)
    # relativedelta: a leap day goes back to the 28th of February, not into March.
    assert policy.cutoff(date(2028, 2, 29)) == date(2020, 2, 29)
    assert RetentionPolicy(years=1).cutoff(date(2028, 2, 29)) == date(2027, 2, 28)


@pytest.fixture
def old_and_recent(world):
    """Clients whose last contact was just over, just under and well within 20 years ago."""
    today = timezone.localdate()
    cutoff = today - relativedelta(years=20)
    long_gone = make_referral(world.therapist, world.site, local_reference="OLD-1", nhs_number="9434765870",
                              year_of_birth=1950, referred_on=cutoff - relativedelta(years=3))  # fmt: skip
    just_past = make_referral(world.therapist, world.site, local_reference="OLD-2", referred_on=cutoff - relativedelta(days=1))
    # Referred long ago, but checked (a contact) on the cutoff day itself: still within the period.
    recent_contact = make_referral(
        world.therapist, world.site, local_reference="KEEP-1", referred_on=cutoff - relativedelta(years=1)
    )
    intake_check(world.therapist, recent_contact, day=cutoff)
    # One old referral and one recent one for the same client: kept, their last contact is recent.
    returning = make_referral(world.therapist, world.site, local_reference="KEEP-2", referred_on=cutoff - relativedelta(years=2))
    make_referral(world.therapist, world.site, local_reference="KEEP-2", referred_on=today - relativedelta(days=3))
    return {
        "erase": [long_gone.client, just_past.client],
        "keep": [recent_contact.client, returning.client, world.referral.client],
    }


def test_it_erases_only_the_identifiers_of_clients_past_the_period(world, old_and_recent, capsys):
    before = AccessEvent.objects.count()
    call_command("apply_retention", "--apply", "--actor", world.dpo.username)
    for client in old_and_recent["erase"]:
        client.refresh_from_db()
        assert (client.local_reference, client.nhs_number, client.year_of_birth) == ("", "", None)
        assert client.identifiers_erased_at is not None
        # The pseudonymous records stay for the reports.
        assert Referral.objects.filter(client=client).count() == 1
    for client in old_and_recent["keep"]:
        client.refresh_from_db()
        assert client.local_reference and client.identifiers_erased_at is None
    assert world.referral.client.nhs_number == "9434765919"
    # One event per client erased, on the provider's chain, by the DPO who ran it; and the chain verifies.
    events = AccessEvent.objects.filter(action=Action.RETENTION)
    assert AccessEvent.objects.count() == before + 2 == before + events.count()
    assert {e.client_pseudonym for e in events} == {c.pk for c in old_and_recent["erase"]}
    assert {(e.actor_name, e.chain_id, e.outcome) for e in events} == {("dpo", world.kent.pk, "allowed")}
    assert "OLD-1" not in "".join(e.purpose for e in events)
    assert verify_chain().verified
    assert "erased the identifiers of 2 client(s)" in capsys.readouterr().out


def test_a_second_run_finds_nothing_more_to_erase(world, old_and_recent):
    apply_retention()
    events = AccessEvent.objects.count()
    assert apply_retention().erased == 0
    assert AccessEvent.objects.count() == events


def test_a_dry_run_counts_and_writes_nothing(world, old_and_recent, capsys):
    events = AccessEvent.objects.count()
    call_command("apply_retention", "--dry-run")
    assert "Dry run: would erase the identifiers of 2 client(s)" in capsys.readouterr().out
    assert AccessEvent.objects.count() == events
    assert not Client.objects.filter(identifiers_erased_at__isnull=False).exists()


def test_an_unattended_run_is_logged_as_the_job(world, old_and_recent):
    apply_retention()
    assert set(AccessEvent.objects.filter(action=Action.RETENTION).values_list("actor_name", "actor_id")) == {
        ("apply_retention", None)
    }
    assert verify_chain().verified


def test_it_needs_a_mode_and_a_real_actor(world):
    with pytest.raises(CommandError):
        call_command("apply_retention")
    with pytest.raises(CommandError, match="No active account"):
        call_command("apply_retention", "--apply", "--actor", "nobody")


@override_settings(RETENTION_YEARS_AFTER_DISCHARGE=1)
def test_on_the_demo_data_it_erases_exactly_the_clients_past_the_period_and_the_log_still_verifies(capsys):
    """The demo covers a year, so a one-year policy leaves some clients past the period and others within it."""
    call_command("seed_demo", "--quiet", "--password", "demo-pass-for-tests")
    cutoff = retention_policy().cutoff(timezone.localdate())
    expected = {c.pk for c in Client.objects.all() if last_contact(c) < cutoff}
    kept = Client.objects.exclude(pk__in=expected)
    assert expected and kept.exists(), "the demo should give clients on both sides of the cutoff"
    events_before = AccessEvent.objects.count()

    call_command("apply_retention", "--apply")
    erased = set(Client.objects.filter(identifiers_erased_at__isnull=False).values_list("pk", flat=True))
    assert erased == expected
    assert not Client.objects.filter(pk__in=erased).exclude(local_reference="", nhs_number="", year_of_birth=None).exists()
    assert not kept.filter(local_reference="").exists()
    assert AccessEvent.objects.count() == events_before + len(expected)
    capsys.readouterr()
    call_command("verify_access_log")
    assert "verified: the access log is intact" in capsys.readouterr().out


def test_a_discharge_counts_as_the_last_contact(world):
    cutoff = timezone.localdate() - relativedelta(years=20)
    referral = make_referral(
        world.therapist, world.site, local_reference="DISCHARGED", referred_on=cutoff - relativedelta(years=2)
    )
    assert apply_retention(dry_run=True).erased == 1
    services.discharge_referral(
        context=AccessContext.for_command(world.therapist, "test"), referral_id=referral.pk, discharged_on=cutoff,
        reason="no_contact",
    )  # fmt: skip
    assert apply_retention(dry_run=True).erased == 0
