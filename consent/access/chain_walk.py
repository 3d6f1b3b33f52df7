"""Walking one stretch of an access-log hash chain: each event's content hashed and linked to the event before it.

Nothing of Django is imported here, so a worker process can walk a stretch of a long chain on a database connection
of its own (consent.access.log splits a long chain between workers and joins their stretches in chain order).

The rows are read by the queries of a Queries (consent.access.log._chain_queries). `fields` selects the event's id,
its hashed fields in HASHED_FIELDS order (times and UUIDs already formatted as text by the database) and its stored
hash; Python encodes them (canonical_encoding's bytes) and hashes them. On PostgreSQL, `rendered` has the database
write each event's encoding itself, without JSON escaping, which costs it less than sending two dozen columns
costs Python to read and encode (see _content_hashes for when that text may be trusted), and `fields` is asked
only for the few events whose text cannot be.
"""

import gc
import hashlib
import json
import tracemalloc
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, contextmanager
from dataclasses import dataclass
from itertools import chain

import psycopg


def _encoder():
    """One prebuilt encoder with the separators and escaping of canonical_encoding (consent.access.log).

    JSONEncoder.encode builds a new C encoder (and a dict and a closure) on every call, a third of the cost of
    encoding an event; json's C encoder built once here does the same encoding without that. Called as
    encoder(fields, 0), it returns the encoding in pieces to join. Where the C accelerator is missing, the public
    encoder is used. Tests hold the bytes equal to canonical_encoding's.
    """
    if json.encoder.c_make_encoder is None:
        encode = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode
        return lambda fields, _level: (encode(fields),)
    # Arguments: no circular-reference markers (a row is a flat tuple), no default, strings escaped as with
    # ensure_ascii=False, no indent, key and item separators, no key sorting, no key skipping, NaN allowed.
    return json.encoder.c_make_encoder(None, None, json.encoder.encode_basestring, None, ":", ",", False, False, True)


_fields_encoder = _encoder()


def encoded(fields) -> str:
    """The compact JSON text of fields already in canonical form: canonical_encoding's, before UTF-8.

    consent.access.log encodes the events it writes with this same encoder, so writing and verifying cannot drift.
    """
    return "".join(_fields_encoder(fields, 0))


def content_hash(row: tuple) -> str:
    """The hash of a row's fields as read: SHA-256 over canonical_encoding's bytes (tests hold them equal).

    row: id, the hashed fields in order, hash. The last hashed field (client_request_id) is optional: left out of
    the encoding when empty, so events written before it existed keep the bytes they were hashed over.
    """
    fields = row[1:-1] if row[-2] not in ("", None) else row[1:-2]
    return hashlib.sha256("".join(_fields_encoder(fields, 0)).encode("utf-8")).hexdigest()


def problem_of(seq: int, expected_seq: int, link: str, prev_hash: str, content: str, hash_: str) -> str | None:
    """What is wrong with an event, checked in a fixed order so every walk names the same first problem."""
    if seq != expected_seq:
        return f"expected sequence number {expected_seq}, found {seq} (an event is missing)"
    if link != prev_hash:
        return "does not link to the event before it"
    if content != hash_:
        return "its content does not match its hash"
    return None


@dataclass(frozen=True)
class Queries:
    """How a stretch is read: see the module's docstring. Each takes (chain, after, upto, limit)."""

    fields: str
    # (id, seq, prev_hash, hash, encoding written by the database unescaped, how many '"' it must hold); or None.
    rendered: str | None = None
    # `fields` for the events of a chain whose sequence numbers are in a list: (chain, [seq, ...]).
    fields_of: str | None = None


def batches(cursor, queries: Queries, chain_id: int, after: int, upto: int, size: int) -> Iterator[list[tuple]]:
    """A chain's events after `after` up to `upto` in order, `size` at a time, as (id, seq, prev_hash, hash,
    content hash): memory stays flat for any length.

    Keyset pagination by sequence number, with no server-side cursor, so it also works inside a request's
    transaction and behind a connection pooler. The first batch is asked for even when there is nothing to read,
    so a verification costs the same queries whether it resumes or not: one per batch, and on PostgreSQL one more
    for a batch holding events whose encoding needs escaping.

    While one batch is walked, a thread already reads and hashes the next: waiting for the database releases the
    GIL, so the database prepares the next rows while this process hashes. Only that thread uses the cursor until
    the walk has the batch, so it is never used by two threads at once; at most two batches are held, so memory
    stays flat. A stretch that fits in one batch starts no thread. Close the iterator (contextlib.closing) to stop
    early: the batch being read is awaited.
    """

    def fetch(after: int) -> list[tuple]:
        with _without_cycle_collection():
            if queries.rendered is None:
                cursor.execute(queries.fields, [chain_id, after, upto, size])
                return [(row[0], row[2], row[-3], row[-1], content_hash(row)) for row in cursor.fetchall()]
            cursor.execute(queries.rendered, [chain_id, after, upto, size])
            return _content_hashes(cursor, queries, chain_id, cursor.fetchall())

    batch = fetch(after)
    if len(batch) < size:
        yield batch
        return
    with ThreadPoolExecutor(1, thread_name_prefix="chain-fetch") as fetcher:
        while True:
            following = fetcher.submit(fetch, batch[-1][1]) if len(batch) == size else None
            yield batch
            if following is None:
                return
            batch = following.result()


def _content_hashes(cursor, queries: Queries, chain_id: int, rows: list[tuple]) -> list[tuple]:
    """(id, seq, prev_hash, hash, content hash) of rows read by `rendered`.

    The database writes an event's encoding as canonical_encoding would but without escaping: each string in
    quotes as it is. That text is the event's true encoding if no string holds a quote, a backslash or a control
    character, and it is trusted only when it holds no backslash, exactly the quotes its strings are wrapped in
    (so none inside them), and hashes to the stored hash. Then it equals the encoding the hash was made over (SHA-256
    does not collide), which escapes every control character, so none is in the text either: every string is
    plain, the text is this event's true encoding, and the event is as it was hashed. A backslash in the text is
    refused because it could otherwise stand in for an escape (a purpose of `say \\"hi\\"` written plainly reads as
    the encoding of `say "hi"`), a quote inside a string because it could shift one field into the next.

    Any other event (a string that needs escaping, or one that does not match its hash, tampered or not) is read
    again by `fields_of`, all of a batch's in one query, and encoded by Python as for SQLite.
    """
    sha256, hashed, again = hashlib.sha256, [], []
    for event_id, seq, link, hash_, text, quotes in rows:
        if "\\" in text or text.count('"') != quotes or sha256(text.encode()).hexdigest() != hash_:
            again.append(seq)
            hashed.append((event_id, seq, link, hash_, None))
        else:
            hashed.append((event_id, seq, link, hash_, hash_))
    if again:
        cursor.execute(queries.fields_of, [chain_id, again])
        contents = {row[2]: content_hash(row) for row in cursor.fetchall()}
        hashed = [row if row[-1] is not None else (*row[:-1], contents.get(row[1])) for row in hashed]
    return hashed


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
    """Check a stretch's events one after another: sequence numbers without a gap, links, content hashes.

    While events are good their sequence numbers run without a gap, which is what counts them.
    """
    rows = chain.from_iterable(batches)
    first = next(rows, None)
    if first is None:
        return Stretch()
    stretch = Stretch(first=first)
    first_seq, expected, prev_hash, found = first[1], first[1] + 1, first[3], False
    for event_id, seq, link, hash_, content in rows:
        if seq != expected or link != prev_hash or content != hash_:
            problem = problem_of(seq, expected, link, prev_hash, content, hash_)
            stretch.problem, stretch.checked = (event_id, seq, problem), expected - first_seq
            break
        if hash_ == against:
            found = True
        expected, prev_hash = seq + 1, hash_
    else:
        stretch.checked = expected - first_seq - 1
    stretch.found, stretch.last_seq, stretch.last_hash = found, expected - 1, prev_hash
    return stretch


@contextmanager
def _without_cycle_collection():
    """Pause Python's cycle collector while a batch is read and hashed.

    Every batch read makes thousands of tuples, each counted towards the collector's next run, whose older
    generations then traverse every object the process holds (all of Django's, in a worker forked from it) over
    and over; the rows form no reference cycles, so reference counting frees each batch as soon as it is walked
    and the collector finds nothing. Pausing it took about a tenth off a walk's CPU. The reading thread and the
    walk may both pause it; it runs again once the one that found it running is done.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def walk_stretch(
    conninfo: dict, queries: Queries, chain_id: int, after: int, upto: int, size: int, against: str | None
) -> Stretch:
    """A worker process's walk of one stretch, on a connection of its own (autocommit, like the caller's).

    A worker forked while tracemalloc runs (the benchmark's memory check) reports the memory it held at its peak
    itself: tracing in the parent cannot see another process.
    """
    tracing = tracemalloc.is_tracing()
    if tracing:
        inherited = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
    with psycopg.connect(**conninfo, autocommit=True) as connection, connection.cursor() as cursor:
        with closing(batches(cursor, queries, chain_id, after, upto, size)) as read:
            stretch = walk(read, against)
    if tracing:
        stretch.peak_bytes = tracemalloc.get_traced_memory()[1] - inherited
    return stretch
