"""Verification streams rows without the ORM: the bytes it hashes are canonical_encoding's, for every kind of event."""

import gc
import uuid
from datetime import UTC, datetime

import pytest
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
    """Every row of a chain as Python encodes it: id, the hashed fields as the database formats them, hash."""
    with connection.cursor() as cursor:
        cursor.execute(log._chain_sql(connection), [chain_id, 0, 10**9, 10**6])
        return cursor.fetchall()


def _walked(chain_id: int) -> dict[int, tuple]:
    """Every event of a chain as the walk sees it, by id: (id, seq, prev_hash, hash, content hash)."""
    with connection.cursor() as cursor:
        batches = chain_walk.batches(cursor, log._chain_queries(connection), chain_id, 0, 10**9, log.VERIFY_BATCH)
        return {row[0]: row for batch in batches for row in batch}


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
    # The walk's content hashes, whether the database wrote the encoding (PostgreSQL) or Python did.
    walked = _walked(world.kent.pk)
    assert {pk: row[-1] for pk, row in walked.items()} == {row[0]: chain_walk.content_hash(row) for row in rows}
    assert walked[escaped.pk][-1] == walked[escaped.pk][3]


def test_a_chain_longer_than_a_batch_streams_whole(world, monkeypatch):
    monkeypatch.setattr(log, "VERIFY_BATCH", 3)
    for _ in range(7):
        _write(world)
    rows = list(_walked(world.kent.pk).values())
    assert [row[1] for row in rows] == list(range(1, len(rows) + 1))
    assert all(row[-1] == row[3] for row in rows)
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


# Strings the database writes into an event's encoding without escaping: each must be caught if tampered with, on
# PostgreSQL (where that text is trusted only as chain_walk._content_hashes says) as on SQLite.
TAMPERED_STRINGS = {
    # A backslash written plainly could stand in for an escape: this reads as the encoding of 'say "hi"'.
    "backslashes standing in for an escape": ('say "hi"', 'say \\"hi\\"'),
    "a quote shifting the purpose into the next field": ("plain", 'plain","x'),
    "a control character": ("plain", "plain\n"),
    "non-ASCII": ("café", "cafe\u0301"),
}


@pytest.mark.parametrize("case", TAMPERED_STRINGS)
def test_a_string_changed_under_its_hash_is_caught_however_it_is_written(world, case):
    before, after = TAMPERED_STRINGS[case]
    event = _write(world, purpose=before)
    _write(world)
    assert log.verify_chain(organisation_ids=[world.kent.pk]).verified
    with behind_the_triggers(), connection.cursor() as cursor:
        cursor.execute("UPDATE access_accessevent SET purpose = %s WHERE id = %s", [after, event.pk])

    result = log.verify_chain(organisation_ids=[world.kent.pk])

    assert result.first_mismatch["event_id"] == event.pk and "does not match its hash" in result.first_mismatch["problem"]


def test_events_whose_strings_need_escaping_cost_one_more_query_a_batch(world):
    plain = log.verify_chain(organisation_ids=[world.kent.pk])
    _write(world, purpose='a "quoted" reason\non two lines')
    _write(world, purpose="back\\slash")

    with CaptureQueriesContext(connection) as captured:
        result = log.verify_chain(organisation_ids=[world.kent.pk])

    assert result.verified and result.events_checked == plain.events_checked + 2
    walked = [q["sql"] for q in captured.captured_queries if " seq " in q["sql"] and "ORDER BY seq" in q["sql"]]
    assert len(walked) == (2 if connection.vendor == "postgresql" else 1)
