"""Concurrent writers on PostgreSQL leave a consistent history with no lost write.

Each scenario runs real requests on threads (each with its own database connection), released together by
a barrier, over committed data. Whatever order the database lets them through in, the outcome must be one
a single writer at a time could have produced: the service locks the referral (SELECT ... FOR UPDATE)
where a rule reads the status and then writes it, and the access log locks its chain head.
"""

import threading
from datetime import date

import pytest
from django.db import connection

from consent.access.log import verify_chain
from consent.access.models import AccessEvent, Action
from consent.models import ConsentRecord, Referral, ReferralStatus, Withdrawal
from consent.selectors import with_voluntariness
from tests.conftest import api_client, give_consent, make_referral, postgres_only
from tests.factories import ACKNOWLEDGED

# Transactional (committed data that every thread sees) through the `transactional_db` fixture, requested in the
# order conftest asks so the append-only triggers are out of the way for the flush between tests.
pytestmark = [postgres_only]

ROUNDS = 4  # referrals raced on, per scenario: more chances for the requests to overlap


def run_together(*calls):
    """Run each call on its own thread, started together; return their results in order."""
    barrier = threading.Barrier(len(calls))
    results: list = [None] * len(calls)
    errors: list = []

    def worker(index, call):
        try:
            barrier.wait(timeout=30)
            results[index] = call()
        except Exception as error:  # noqa: BLE001 - re-raised below on the test's thread
            errors.append(error)
        finally:
            connection.close()  # this thread's own connection

    threads = [threading.Thread(target=worker, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    return results


@pytest.fixture
def two_therapists(append_only_relaxed_for_flush, transactional_db, world, drop_append_only_triggers_at_teardown):
    """The world with a second therapist assigned to `rounds` active (consented) referrals."""
    referrals = []
    for n in range(ROUNDS):
        referral = make_referral(world.therapist, world.site, local_reference=f"RACE-{n}", referred_on=date(2026, 9, 1))
        give_consent(world.therapist, referral, world.template)
        response = api_client(world.lead).post(f"/api/v1/referrals/{referral.pk}/assignments/", {"therapist": "unassigned"})
        assert response.status_code == 201, response.content
        referrals.append(referral)
    world.raced = referrals
    return world


def withdraw(user, referral, reason="no_longer_wanted"):
    body = {"withdrawn_at": "2026-10-01T09:00:00Z", "reason": reason}
    return lambda: api_client(user).post(f"/api/v1/referrals/{referral.pk}/withdrawals/", body, format="json")


def consent_again(user, referral, template):
    body = {"template": template.pk, "method": "written", "given_at": "2026-09-20T10:00:00Z", "scopes": ["treatment"],
            "acknowledgements": dict(ACKNOWLEDGED)}  # fmt: skip
    return lambda: api_client(user).post(f"/api/v1/referrals/{referral.pk}/consents/", body, format="json")


def assert_log_consistent():
    verification = verify_chain()
    assert verification.verified, verification.first_mismatch
    for chain_id, head in verification.heads.items():
        seqs = list(AccessEvent.objects.filter(chain_id=chain_id).order_by("seq").values_list("seq", flat=True))
        assert seqs == list(range(1, head["seq"] + 1))  # no gap, no duplicate: no event lost


def test_two_withdrawals_at_once_record_exactly_one(two_therapists):
    w = two_therapists
    for referral in w.raced:
        first, second = run_together(withdraw(w.therapist, referral), withdraw(w.unassigned_therapist, referral, "other"))
        assert sorted([first.status_code, second.status_code]) == [201, 400], (first.content, second.content)
        refused = first if first.status_code == 400 else second
        assert "withdrawn" in refused.json()["errors"]["referral"][0]
        assert Withdrawal.objects.filter(referral=referral).count() == 1
        referral.refresh_from_db()
        assert referral.status == ReferralStatus.WITHDRAWN
    # Each attempt was logged as it was let through: one allowed withdrawal event per referral written.
    assert AccessEvent.objects.filter(action=Action.WITHDRAWAL, outcome="allowed", status=200).count() >= ROUNDS
    assert_log_consistent()


def test_consent_and_withdrawal_at_once_leave_a_history_one_writer_could_have_made(two_therapists):
    w = two_therapists
    for referral in w.raced:
        consent, withdrawal = run_together(
            consent_again(w.therapist, referral, w.template), withdraw(w.unassigned_therapist, referral)
        )
        assert withdrawal.status_code == 201, withdrawal.content
        referral.refresh_from_db()
        consents = ConsentRecord.objects.filter(referral=referral).count()
        assert Withdrawal.objects.filter(referral=referral).count() == 1
        if consent.status_code == 201:
            # Consent first, then the withdrawal: both kept, and the episode ends withdrawn.
            assert consents == 2
        else:
            # Withdrawal first: the episode has ended, so the consent is refused and nothing of it is written.
            assert consent.status_code == 400 and "withdrawn" in consent.json()["errors"]["referral"][0]
            assert consents == 1
        assert referral.status == ReferralStatus.WITHDRAWN
        # The computed voluntariness reads the same committed history.
        assert with_voluntariness(Referral.objects.filter(pk=referral.pk)).get().voluntariness_status in ("unknown", "voluntary")
    assert_log_consistent()


def test_a_lead_assigning_while_a_therapist_reads_loses_neither(two_therapists):
    w = two_therapists
    readers = 3
    for referral in w.raced:
        calls = [lambda r=referral: api_client(w.therapist).get(f"/api/v1/referrals/{r.pk}/") for _ in range(readers)]
        calls.append(
            lambda r=referral: api_client(w.lead).post(f"/api/v1/referrals/{r.pk}/assignments/", {"therapist": "thanet-lead"})
        )
        *reads, assignment = run_together(*calls)
        assert all(read.status_code == 200 for read in reads)
        assert assignment.status_code == 201, assignment.content
        assert "thanet-lead" in assignment.json()["assigned"]
        # The assignment holds: the newly assigned lead opens the referral without break-glass.
        assert api_client(w.other_team_lead).get(f"/api/v1/referrals/{referral.pk}/").status_code == 200
        reads_logged = AccessEvent.objects.filter(referral_id=referral.pk, action=Action.READ, actor_id=w.therapist.pk).count()
        assert reads_logged == readers
        assert (
            AccessEvent.objects.filter(referral_id=referral.pk, action=Action.GRANT, purpose="assigned thanet-lead").count() == 1
        )
    assert_log_consistent()
