"""Concurrent writers on PostgreSQL: one organisation's chain stays whole, and other organisations never wait."""

import threading

from django.db import connection, transaction

from consent.access.log import AccessContext, EventDraft, record_access, verify_chain
from consent.access.models import AccessEvent, Action, ChainHead, Outcome
from tests.conftest import postgres_only

# Each test is transactional (real commits, seen across connections) by requesting `transactional_db` in its
# arguments, between the two conftest fixtures that lift the append-only triggers for the flush after it and
# put them back. A django_db(transaction=True) marker would set the database up before those fixtures, so the
# triggers would be back before the flush and refuse it.
THREADS = 8
TRANSACTIONS_PER_THREAD = 10
EVENTS_PER_TRANSACTION = 3


def _drafts(world, chain, referral, n):
    return [
        EventDraft(chain=chain, action=Action.READ, outcome=Outcome.ALLOWED, status=200, object_type="referral",
                   object_id=str(referral.pk), client_pseudonym=referral.client_id, referral_id=referral.pk)
        for _ in range(n)
    ]  # fmt: skip


def _eight_users(world) -> list:
    return [world.therapist, world.lead, world.unassigned_therapist, world.other_team_lead, world.dpo, world.admin,
            world.therapist, world.lead]  # fmt: skip


def _writer(world, user, start: threading.Barrier):
    """A thread's work: wait for the others, then TRANSACTIONS_PER_THREAD transactions of events on Kent's chain."""

    def write():
        start.wait()
        for _ in range(TRANSACTIONS_PER_THREAD):
            with transaction.atomic():
                record_access(AccessContext.for_command(user, "concurrency test"),
                              _drafts(world, world.kent, world.referral, EVENTS_PER_TRANSACTION))  # fmt: skip

    return write


def _in_threads(targets):
    """Run each target in its own thread (its own database connection); re-raise the first failure."""
    failures = []

    def run(target):
        try:
            target()
        except Exception as error:  # noqa: BLE001 - handed back to the test below
            failures.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise failures[0]


@postgres_only
def test_eight_writers_of_one_organisation_leave_a_chain_that_verifies_with_no_event_lost(
    append_only_relaxed_for_flush, transactional_db, drop_append_only_triggers_at_teardown, world
):
    before = AccessEvent.objects.filter(chain=world.kent).count()
    start = threading.Barrier(THREADS)

    _in_threads([_writer(world, user, start) for user in _eight_users(world)])

    written = THREADS * TRANSACTIONS_PER_THREAD * EVENTS_PER_TRANSACTION
    events = AccessEvent.objects.filter(chain=world.kent)
    assert events.count() == before + written
    assert sorted(events.values_list("seq", flat=True)) == list(range(1, before + written + 1))
    result = verify_chain(organisation_ids=[world.kent.pk])
    assert result.verified, result.first_mismatch
    assert result.events_checked == before + written
    head = ChainHead.objects.get(organisation=world.kent)
    assert (head.seq, head.head_hash) == (before + written, events.order_by("-seq").first().hash)


@postgres_only
def test_a_writer_of_another_organisation_does_not_wait_for_a_held_chain(
    append_only_relaxed_for_flush, transactional_db, drop_append_only_triggers_at_teardown, world
):
    kent_locked, release = threading.Event(), threading.Event()
    medway_done = threading.Event()
    finished_while_held = []

    def hold_kent():
        with transaction.atomic():
            record_access(AccessContext.for_command(world.therapist, "holds the Kent chain"),
                          _drafts(world, world.kent, world.referral, 1))  # fmt: skip
            kent_locked.set()
            # Keeps Kent's chain-head row locked until the Medway writer has finished (or, if it were blocked
            # behind this lock, gives up so the test fails instead of hanging).
            finished_while_held.append(release.wait(timeout=120))

    def write_medway():
        kent_locked.wait()
        with transaction.atomic():
            record_access(AccessContext.for_command(world.other_provider_therapist, "medway"),
                          _drafts(world, world.medway, world.medway_referral, 2))  # fmt: skip
        medway_done.set()
        release.set()

    _in_threads([hold_kent, write_medway])

    assert finished_while_held == [True]
    assert medway_done.is_set()
    assert verify_chain(organisation_ids=[world.kent.pk, world.medway.pk]).verified


@postgres_only
def test_verifications_and_reports_during_eight_writers_always_say_verified(
    append_only_relaxed_for_flush, transactional_db, drop_append_only_triggers_at_teardown, world
):
    """Each verification walks to the head its own reads show; events appended meanwhile are never a mismatch.

    Verifiers run inside a transaction as the report does in a request (READ COMMITTED on PostgreSQL): before
    each walk was bounded by the head it read first, a report under load said the log failed verification.
    """
    from consent.reports.report import compliance_report, log_verification

    writers_done = threading.Event()
    start = threading.Barrier(THREADS + 2)
    verdicts, reports = [], []

    def verifier(full: bool):
        def verify():
            start.wait()
            while not writers_done.is_set() or len(verdicts) < 4:
                with transaction.atomic():
                    if full:
                        result = verify_chain(organisation_ids=[world.kent.pk])
                        verdicts.append((result.verified, result.first_mismatch))
                    else:
                        verdicts.append((log_verification({world.kent.pk})[world.kent.pk], None))
                        reports.append(compliance_report(world.pilot, "pilot")["totals"]["access_log_verified"])

        return verify

    def all_writers():
        _in_threads([_writer(world, user, start) for user in _eight_users(world)])
        writers_done.set()

    _in_threads([all_writers, verifier(full=True), verifier(full=False)])

    assert len(verdicts) >= 4
    assert [v for v in verdicts if not v[0]] == []
    assert reports and all(reports)
    assert verify_chain(organisation_ids=[world.kent.pk]).verified
