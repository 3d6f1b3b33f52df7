"""Walking one stretch of an access-log hash chain: each event's content hashed and linked to the event before it.

Nothing of Django is imported here, so a worker process can walk a stretch of a long chain on a database connection
of its own (consent.access.log splits a long chain between workers and joins their stretches in chain order). The
rows walked are the ones consent.access.log._chain_sql selects: the event's id, its hashed fields in HASHED_FIELDS
order (times and UUIDs already formatted as text by the database) and its stored hash.
"""

import hashlib
import json
import tracemalloc
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

import psycopg


def _encoder():
    """One prebuilt encoder with the separators and escaping of consent.access.log.canonical_encoding.

    JSONEncoder.encode builds a new C encoder (and a dict and a closure) on every call, a third of the cost of
    encoding an event; json's C encoder built once here does the same encoding without that. Where the C
    accelerator is missing, the public encoder is used. Tests hold the bytes equal to canonical_encoding's.
    """
    if json.encoder.c_make_encoder is None:
        return json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
    # Arguments: no circular-reference markers (a row is a flat tuple), no default, strings escaped as with
    # ensure_ascii=False, no indent, key and item separators, no key sorting, no key skipping, NaN allowed.
    encoder = json.encoder.c_make_encoder(None, None, json.encoder.encode_basestring, None, ":", ",", False, False, True)
    return lambda fields: "".join(encoder(fields, 0))


_encode = _encoder()


def content_hash(row: tuple) -> str:
    """The hash of a row's fields as read: SHA-256 over canonical_encoding's bytes (tests hold them equal).

    row: id, the hashed fields in order, hash. The last hashed field (client_request_id) is optional: left out of
    the encoding when empty, so events written before it existed keep the bytes they were hashed over.
    """
    fields = row[1:-1] if row[-2] not in ("", None) else row[1:-2]
    return hashlib.sha256(_encode(fields).encode("utf-8")).hexdigest()


def problem_of(seq: int, expected_seq: int, link: str, prev_hash: str, content: str, hash_: str) -> str | None:
    """What is wrong with an event, checked in a fixed order so every walk names the same first problem."""
    if seq != expected_seq:
        return f"expected sequence number {expected_seq}, found {seq} (an event is missing)"
    if link != prev_hash:
        return "does not link to the event before it"
    if content != hash_:
        return "its content does not match its hash"
    return None


def batches(cursor, sql: str, chain_id: int, after: int, upto: int, size: int) -> Iterator[list[tuple]]:
    """A chain's rows after `after` up to `upto` in order, `size` at a time: memory stays flat for any length.

    Keyset pagination by sequence number, with no server-side cursor, so it also works inside a request's
    transaction and behind a connection pooler. The first batch is asked for even when there is nothing to read,
    so a verification costs the same queries whether it resumes or not.
    """
    while True:
        cursor.execute(sql, [chain_id, after, upto, size])
        batch = cursor.fetchall()
        yield batch
        if len(batch) < size:
            return
        after = batch[-1][2]


@dataclass
class Stretch:
    """What the walk of one stretch of a chain found, for joining with the stretches before and after it.

    The first event cannot be judged alone (it must follow the last event of the stretch before), so its facts
    are handed back as read; every later event is checked here against the one before it.
    """

    # (id, seq, prev_hash, hash, content hash) of the stretch's first event; None if the stretch holds none.
    first: tuple | None = None
    # Events after the first that were read, up to and including the first bad one.
    checked: int = 0
    last_seq: int = 0
    last_hash: str = ""
    # (id, seq, problem) of the first bad event after the first, if any.
    problem: tuple | None = None
    # Whether a published head hash was among the events after the first, before any bad one.
    found: bool = False
    # The Python memory a worker process held at its peak, when it traces memory (see walk_stretch).
    peak_bytes: int | None = None


def walk(batches: Iterable[list[tuple]], against: str | None = None) -> Stretch:
    """Check a stretch's events one after another: sequence numbers without a gap, links, content hashes."""
    rows = chain.from_iterable(batches)
    first = next(rows, None)
    if first is None:
        return Stretch()
    stretch = Stretch(first=(first[0], first[2], first[-3], first[-1], content_hash(first)))
    checked, expected, prev_hash, found = 0, first[2] + 1, first[-1], False
    for row in rows:
        checked += 1
        seq, hash_ = row[2], row[-1]
        if seq != expected or row[-3] != prev_hash or content_hash(row) != hash_:
            stretch.problem = (row[0], seq, problem_of(seq, expected, row[-3], prev_hash, content_hash(row), hash_))
            break
        if hash_ == against:
            found = True
        expected, prev_hash = seq + 1, hash_
    stretch.checked, stretch.found, stretch.last_seq, stretch.last_hash = checked, found, expected - 1, prev_hash
    return stretch


def walk_stretch(conninfo: dict, sql: str, chain_id: int, after: int, upto: int, size: int, against: str | None) -> Stretch:
    """A worker process's walk of one stretch, on a connection of its own (autocommit, like the caller's).

    A worker forked while tracemalloc runs (the benchmark's memory check) reports the memory it held at its peak
    itself: tracing in the parent cannot see another process.
    """
    tracing = tracemalloc.is_tracing()
    if tracing:
        inherited = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    with psycopg.connect(**conninfo, autocommit=True) as connection, connection.cursor() as cursor:
        stretch = walk(batches(cursor, sql, chain_id, after, upto, size), against)
    if tracing:
        stretch.peak_bytes = tracemalloc.get_traced_memory()[1] - inherited
    return stretch
