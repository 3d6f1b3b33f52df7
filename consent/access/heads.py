"""Signed chain heads: the access log's answer to someone who can write the database.

The hash chain shows that events were not changed one at a time, but anyone who can write the tables can
re-hash a chain from any point and move its head. So, in the manner of Certificate Transparency's signed tree
heads (RFC 6962), every write of a chain head is signed with Ed25519 by the log key, which is held outside the
database: settings.ACCESS_LOG_SIGNING_KEY (the environment) in production, a git-ignored file in development
(consent.keys). A rewrite made with database access alone leaves a head whose signature does not verify.

What is signed
    The UTF-8 bytes of the compact JSON array ``["access-log-head/v1", chain, seq, hash, time]``: the chain
    (the provider organisation's id), the sequence number and hash of its newest event, and the time of the
    write that made it the head (UTC, ISO 8601 with microseconds, which is also that event's occurred_at).

Where signatures are kept
    On the head row (ChainHead.signature, key_id, signed_at), and on the newest event of each write
    (AccessEvent.head_signature, head_key_id), so that a chain whose head fails can be walked back to the first
    event no valid signature covers.

Key rotation
    A new key goes in ACCESS_LOG_SIGNING_KEY; the public keys of earlier ones go in ACCESS_LOG_PUBLIC_KEYS
    (concatenated PEM blocks). Verification trusts a signature by key id among the current key and those.

Published heads
    `python manage.py publish_access_log_heads` writes each chain's signed head as one JSON line (see
    `published_line`); `verify_access_log --against FILE` checks every line of such a file.
"""

import base64
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings

from consent import keys

HEAD_FORMAT = "access-log-head/v1"
LOG_KEY_SETTING = "ACCESS_LOG_SIGNING_KEY"
PUBLISHED_FIELDS = ("format", "chain", "seq", "hash", "time", "signature", "key_id")


def log_key() -> Ed25519PrivateKey:
    """The log key that signs chain heads (see the module docstring)."""
    return keys.configured_key(
        settings.ACCESS_LOG_SIGNING_KEY or "", str(settings.ACCESS_LOG_KEY_FILE), keys.in_production(), LOG_KEY_SETTING
    )


@lru_cache(maxsize=8)
def _key_id_of(key: Ed25519PrivateKey) -> str:
    return keys.key_id(keys.public_key_pem(key.public_key()))


@lru_cache(maxsize=8)
def _trusted(current: Ed25519PrivateKey, earlier: str) -> dict[str, Ed25519PublicKey]:
    trusted = {keys.key_id(keys.public_key_pem(key)): key for key in keys.public_keys_from(earlier)}
    trusted[_key_id_of(current)] = current.public_key()
    return trusted


def trusted_keys() -> dict[str, Ed25519PublicKey]:
    """The public keys a head may be signed by, by key id: the current log key's and every earlier one's."""
    return _trusted(log_key(), settings.ACCESS_LOG_PUBLIC_KEYS or "")


def time_text(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def message(chain_id: int, seq: int, head_hash: str, moment: datetime | str) -> bytes:
    """The exact bytes a head's signature covers."""
    when = moment if isinstance(moment, str) else time_text(moment)
    return json.dumps([HEAD_FORMAT, chain_id, seq, head_hash, when], separators=(",", ":")).encode("utf-8")


def sign(chain_id: int, seq: int, head_hash: str, moment: datetime) -> tuple[str, str]:
    """(signature in base64, key id) of a chain head, signed with the log key."""
    key = log_key()
    return base64.b64encode(key.sign(message(chain_id, seq, head_hash, moment))).decode("ascii"), _key_id_of(key)


def signature_problem(chain_id: int, seq: int, head_hash: str, moment, signature: str, key_id: str) -> str | None:
    """Why a head's signature does not verify, as a phrase after "the chain head" (or None if it does)."""
    if not signature or moment is None:
        return "carries no log-key signature"
    public = trusted_keys().get(key_id)
    if public is None:
        return f"is signed by key {key_id[:16]}..., which is not a trusted log key"
    try:
        public.verify(base64.b64decode(signature, validate=True), message(chain_id, seq, head_hash, moment))
    except (InvalidSignature, ValueError):
        return "has a log-key signature that does not verify"
    return None


# ---- published heads ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PublishedHead:
    """One line of a published head file."""

    chain: int
    seq: int
    hash: str
    time: str
    signature: str
    key_id: str


class MalformedHead(ValueError):
    """A line of a head file that is not a published head at all (its line number is in the message)."""


def published_line(chain_id: int, seq: int, head_hash: str, moment: datetime, signature: str, key_id: str) -> str:
    """One chain's signed head as one JSON line, to archive outside the database."""
    return json.dumps(
        {"format": HEAD_FORMAT, "chain": chain_id, "seq": seq, "hash": head_hash, "time": time_text(moment),
         "signature": signature, "key_id": key_id},
        separators=(",", ":"),
    )  # fmt: skip


def parse_line(text: str) -> PublishedHead:
    """A published head from one line of a head file, or MalformedHead saying what is wrong with it."""
    try:
        value = json.loads(text)
    except ValueError as error:
        raise MalformedHead(f"not JSON ({error.msg})") from None
    if not isinstance(value, dict) or set(value) != set(PUBLISHED_FIELDS) or value["format"] != HEAD_FORMAT:
        raise MalformedHead(f"not a published head: expected exactly the fields {', '.join(PUBLISHED_FIELDS)} ({HEAD_FORMAT})")
    ints = all(isinstance(value[name], int) and not isinstance(value[name], bool) for name in ("chain", "seq"))
    texts = all(isinstance(value[name], str) for name in ("hash", "time", "signature", "key_id"))
    if not ints or not texts or value["seq"] < 1:
        raise MalformedHead("not a published head: chain and seq must be whole numbers, the other fields text")
    if len(value["hash"]) != 64 or any(c not in "0123456789abcdef" for c in value["hash"]):
        raise MalformedHead("not a published head: its hash is not 64 lowercase hexadecimal characters")
    return PublishedHead(value["chain"], value["seq"], value["hash"], value["time"], value["signature"], value["key_id"])
