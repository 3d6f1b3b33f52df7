"""Verification streams rows without the ORM: the bytes it hashes are canonical_encoding's, for every kind of event."""

import gc
import uuid
from datetime import UTC, datetime

from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from consent.access import chain_walk, log, triggers
from consent.access.models import AccessEvent
from tests.conftest import behind_the_triggers, make_referral


def _write(world, **changes):
    context = log.AccessContext(user=world.therapist, request_id=uuid.uuid4().hex, method="GET", path="/api/v1/referrals/",
                                **changes.pop("context", {}))  # fmt: skip
    draft = log.EventDraft(chain=world.kent, action="read", outcome="allowed", status=changes.pop("status", 200), **changes)
    with transaction.atomic():
        written = log.record_access(context, [draft])[0]
    return AccessEvent.objects.get(chain_id=written.chain_id, seq=written.seq)


def _streamed(chain_id: int) -> list[tuple]:
    """Every row of a chain as verification reads it: id, the hashed fields as the database formats them, hash."""
    with connection.cursor() as cursor:
        return [row for batch in chain_walk.batches(cursor, log._chain_sql(connection), chain_id, 0, 10**9, log.VERIFY_BATCH)
                for row in batch]  # fmt: skip


def test_every_streamed_event_hashes_as_the_log_wrote_it(world):
    referral = make_referral(world.therapist, world.site)
    # Characters JSON escapes (quotes, backslash, control characters) and ones it leaves as they are.
    escaped = _write(world, object_type="referral", object_id=str(referral.pk), client_pseudonym=referral.client_id,
                     referral_id=referral.pk, purpose="safeguarding: Zoë's café, \"quoted\", back\\slash\nnew line\ttab\x07 \u2028 🙂")  # fmt: skip
    assert "\x07" in escaped.purpose and "\\slash" in escaped.purpose
    _write(world, status=None, context={"client_request_id": "trace-abc"})
    event = _write(world)
    # A time on the whole second: stored without a fraction on SQLite, still encoded with six digits.
    triggers.remove(connection)
    AccessEvent.objects.filter(pk=event.pk).update(occurred_at=datetime(2026, 9, 14, 10, 0, tzinfo=UTC))
    triggers.install(connection)
    rows = _streamed(world.kent.pk)
    stored = {e.pk: e for e in AccessEvent.objects.filter(chain_id=world.kent.pk)}
    assert len(rows) == len(stored) >= 4
    for row in rows:
        values = {name: getattr(stored[row[0]], name) for name in log.HASHED_FIELDS}
        assert chain_walk.content_hash(row) == log.event_hash(values), row
        if row[0] != event.pk:
            assert chain_walk.content_hash(row) == row[-1]
    (moved,) = [row for row in rows if row[0] == event.pk]
    assert chain_walk.content_hash(moved) != moved[-1]  # the time was changed under the hash: caught


def test_a_chain_longer_than_a_batch_streams_whole(world, monkeypatch):
    monkeypatch.setattr(log, "VERIFY_BATCH", 3)
    for _ in range(7):
        _write(world)
    rows = _streamed(world.kent.pk)
    assert [row[2] for row in rows] == list(range(1, len(rows) + 1))
    assert all(chain_walk.content_hash(row) == row[-1] for row in rows)
    assert log.verify_chain(organisation_ids=[world.kent.pk]).verified


def test_a_walk_stopped_early_by_tampering_reads_ahead_no_further_and_leaves_the_connection_usable(world, monkeypatch):
    """The batch after the one being walked is read ahead by a thread; a walk that stops at a bad event waits for
    it (so the connection is free again) and asks for nothing beyond it."""
    monkeypatch.setattr(log, "VERIFY_BATCH", 3)
    for _ in range(10):
        _write(world)
    bad, events = AccessEvent.objects.get(chain_id=world.kent.pk, seq=2), AccessEvent.objects.filter(chain_id=world.kent.pk)
    written = events.count()
    with behind_the_triggers(), connection.cursor() as cursor:
        cursor.execute("UPDATE access_accessevent SET purpose = 'edited' WHERE id = %s", [bad.pk])

    with CaptureQueriesContext(connection) as captured:
        result = log.verify_chain(organisation_ids=[world.kent.pk])

    assert result.first_mismatch["event_id"] == bad.pk and "does not match its hash" in result.first_mismatch["problem"]
    walked = [q["sql"] for q in captured.captured_queries if "ORDER BY seq LIMIT" in q["sql"]]
    assert len(walked) == 2  # the batch holding the bad event, and the one read ahead while it was walked
    assert events.count() == written > 6  # the connection answers
    assert gc.isenabled()  # the cycle collector, paused for the walk, runs again
