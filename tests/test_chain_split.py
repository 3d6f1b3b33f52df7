"""A long chain verified in stretches by several workers: the same verdict, the same first bad event, as one walk.

The stretches are walked in turn on the test's own connection on both databases (the splitting and the joining at
the boundaries are what is tested there), and in worker processes with connections of their own on PostgreSQL,
where the events must be committed for the workers to see them (`transactional_db`, as in
tests/test_chain_concurrency.py).
"""

import threading

import pytest
from django.db import connection, transaction

from consent.access import log
from consent.access.log import AccessContext, EventDraft, record_access, verify_chain
from consent.access.models import AccessEvent, Action, Outcome
from tests.conftest import behind_the_triggers, postgres_only

WORKERS = 3


def _write_events(world, writes=3, events_each=10):
    for _ in range(writes):
        drafts = [EventDraft(chain=world.kent, action=Action.READ, outcome=Outcome.ALLOWED, status=200,
                             object_type="referral", object_id=str(world.referral.pk),
                             client_pseudonym=world.referral.client_id, referral_id=world.referral.pk)
                  for _ in range(events_each)]  # fmt: skip
        with transaction.atomic():
            record_access(AccessContext.for_command(world.therapist, "split test"), drafts)


def _first_of_second_stretch(world) -> int:
    """The sequence number where the second of WORKERS stretches of Kent's whole chain begins."""
    head = log.ChainHead.objects.get(organisation=world.kent).seq
    return -(-head // WORKERS) + 1


def _event(world, seq) -> AccessEvent:
    return AccessEvent.objects.get(chain=world.kent, seq=seq)


def _in_one_piece(world, **kwargs) -> dict:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log, "_workers_for", lambda events: 1)
        return verify_chain(organisation_ids=[world.kent.pk], **kwargs).as_dict()


def _split_here(monkeypatch):
    """Split every chain into WORKERS stretches, walked in turn on this connection instead of in processes."""
    monkeypatch.setattr(log, "_workers_for", lambda events: WORKERS)
    monkeypatch.setattr(log, "_in_workers", log._here)


# Each case changes the log behind the application's back and says which event must be named (by sequence number,
# relative to b, the first event of the second stretch) and what its problem is.
TAMPERING = {
    "content inside the second stretch": ("UPDATE access_accessevent SET purpose = 'edited' WHERE chain_id = %s AND seq = %s", 2, 2, "does not match its hash"),
    "content of the first event of a stretch": ("UPDATE access_accessevent SET status = 500 WHERE chain_id = %s AND seq = %s", 0, 0, "does not match its hash"),
    "link of the first event of a stretch": ("UPDATE access_accessevent SET prev_hash = repeat('f', 64) WHERE chain_id = %s AND seq = %s", 0, 0, "does not link"),
    "the first event of a stretch deleted": ("DELETE FROM access_accessevent WHERE chain_id = %s AND seq = %s", 0, 1, "expected sequence number"),
    "the last event of a stretch deleted": ("DELETE FROM access_accessevent WHERE chain_id = %s AND seq = %s", -1, 0, "expected sequence number"),
    "a whole stretch deleted": ("DELETE FROM access_accessevent WHERE chain_id = %s AND seq >= %s AND seq < %s * 2 - 1", 0, None, "expected sequence number"),
}  # fmt: skip


def _tamper(world, case) -> tuple[int, str]:
    """Apply a case; (the sequence number it must be named at, the words of its problem)."""
    sql, at, named, words = TAMPERING[case]
    b = _first_of_second_stretch(world)
    params = [world.kent.pk, b + at] if "%s * 2" not in sql else [world.kent.pk, b, b]
    with behind_the_triggers(), connection.cursor() as cursor:
        cursor.execute(sql, params)
    return (b + named if named is not None else 2 * b - 1), words


def test_a_chain_split_into_stretches_verifies_as_one_walk_does(world, monkeypatch):
    _write_events(world)
    published = _event(world, _first_of_second_stretch(world) + 1).hash
    whole = _in_one_piece(world, against=published)

    _split_here(monkeypatch)
    split = verify_chain(organisation_ids=[world.kent.pk], against=published).as_dict()

    assert split == whole
    assert split["verified"] is True and split["against_found"] is True
    assert split["events_checked"] == AccessEvent.objects.filter(chain=world.kent).count()


@pytest.mark.parametrize("case", TAMPERING)
def test_tampering_in_a_later_stretch_or_at_a_boundary_is_named_as_one_walk_names_it(world, monkeypatch, case):
    _write_events(world)
    seq, words = _tamper(world, case)
    whole = _in_one_piece(world)

    _split_here(monkeypatch)
    split = verify_chain(organisation_ids=[world.kent.pk]).as_dict()

    assert split == whole
    assert split["verified"] is False
    assert split["first_mismatch"]["event_id"] == _event(world, seq).pk
    assert words in split["first_mismatch"]["problem"]


def test_of_two_changed_events_in_different_stretches_the_earlier_is_named(world, monkeypatch):
    _write_events(world)
    b = _first_of_second_stretch(world)
    with behind_the_triggers(), connection.cursor() as cursor:
        cursor.execute("UPDATE access_accessevent SET purpose = 'edited' WHERE chain_id = %s AND seq IN (%s, %s)",
                       [world.kent.pk, b + 1, 2 * b])  # fmt: skip

    _split_here(monkeypatch)
    split = verify_chain(organisation_ids=[world.kent.pk]).as_dict()

    assert split == _in_one_piece(world)
    assert split["first_mismatch"]["event_id"] == _event(world, b + 1).pk


def test_short_chains_and_chains_in_a_transaction_are_walked_in_this_process(world, settings):
    settings.ACCESS_LOG_VERIFY_WORKERS = WORKERS
    assert log._workers_for(log.SPLIT_FROM_EVENTS - 1) == 1
    # The test runs inside a transaction, where other connections cannot see what it wrote.
    assert log._workers_for(10 * log.SPLIT_FROM_EVENTS) == 1


def test_workers_are_one_per_cpu_by_default_and_never_more_than_the_cpus(settings, monkeypatch):
    monkeypatch.setattr(log, "_usable_cpus", lambda: 4)
    settings.ACCESS_LOG_VERIFY_WORKERS = 0
    assert log._worker_count() == 4
    settings.ACCESS_LOG_VERIFY_WORKERS = 2
    assert log._worker_count() == 2
    settings.ACCESS_LOG_VERIFY_WORKERS = 16
    assert log._worker_count() == 4
    monkeypatch.setattr(log, "_usable_cpus", lambda: 1)
    settings.ACCESS_LOG_VERIFY_WORKERS = 0
    assert log._worker_count() == 1


# ---- in worker processes (PostgreSQL) ----------------------------------------------------------------------


@pytest.fixture
def workers(settings, monkeypatch) -> list:
    """Every chain split between WORKERS processes; the list records each split actually walked in processes."""
    settings.ACCESS_LOG_VERIFY_WORKERS = WORKERS
    monkeypatch.setattr(log, "SPLIT_FROM_EVENTS", 1)
    monkeypatch.setattr(log, "_usable_cpus", lambda: WORKERS)  # as many workers as asked, on any machine
    walked, in_workers = [], log._in_workers

    def recorded(chain_id, bounds, against):
        stretches = in_workers(chain_id, bounds, against)
        walked.append(bounds)
        return stretches

    monkeypatch.setattr(log, "_in_workers", recorded)
    return walked


@postgres_only
def test_worker_processes_verify_a_chain_and_name_tampering_at_a_boundary_as_one_walk(
    append_only_relaxed_for_flush, transactional_db, drop_append_only_triggers_at_teardown, world, workers
):
    _write_events(world)
    head = log.ChainHead.objects.get(organisation=world.kent).seq

    intact = verify_chain(organisation_ids=[world.kent.pk]).as_dict()

    assert intact == _in_one_piece(world)
    assert intact["verified"] is True and intact["events_checked"] == head
    assert len(workers) == 1 and len(workers[0]) == WORKERS
    # The second change comes before the first in the chain, so it is the one named.
    for case in ("content inside the second stretch", "link of the first event of a stretch"):
        seq, words = _tamper(world, case)
        split = verify_chain(organisation_ids=[world.kent.pk]).as_dict()
        assert split == _in_one_piece(world)
        assert split["first_mismatch"]["event_id"] == _event(world, seq).pk and words in split["first_mismatch"]["problem"]
    assert len(workers) == 3


@postgres_only
def test_worker_processes_verify_while_writers_append(
    append_only_relaxed_for_flush, transactional_db, drop_append_only_triggers_at_teardown, world, workers
):
    """Every worker reads up to the head read at the start: events appended meanwhile are never a mismatch."""
    _write_events(world)
    verdicts, done = [], threading.Event()

    def write():
        try:
            _write_events(world, writes=20, events_each=5)
        finally:
            done.set()
            connection.close()

    writer = threading.Thread(target=write)
    writer.start()
    while not done.is_set() or len(verdicts) < 3:
        result = verify_chain(organisation_ids=[world.kent.pk])
        verdicts.append((result.verified, result.first_mismatch))
    writer.join()

    assert [v for v in verdicts if not v[0]] == []
    assert len(workers) == len(verdicts)
    assert verify_chain(organisation_ids=[world.kent.pk]).events_checked == AccessEvent.objects.filter(chain=world.kent).count()
