"""Chain heads are signed by a log key held outside the database: a tail rewritten with raw SQL, re-hashed and its
head moved, is caught by verify_access_log alone, naming the first bad event. Heads are published as signed JSON
lines; a head file from yesterday still verifies today, and a changed or malformed line is named as such."""

import base64
import json
from io import StringIO

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from consent.access import heads, log
from consent.access.models import AccessEvent, ChainHead
from tests.conftest import api_client, behind_the_triggers


def _read(world, times=1):
    for _ in range(times):
        assert api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/").status_code == 200


def _command(*args) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command(*args, stdout=out, stderr=StringIO())
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None


def _rewrite_tail(chain, from_seq: int, *, sign_with=None):
    """What an insider with the database does: drop the triggers, rename the actor of every event from `from_seq`
    on and drop their alerts, re-hash the tail in raw SQL, move the head (signed only if they hold a key)."""
    rows = list(AccessEvent.objects.filter(chain=chain, seq__gte=from_seq).order_by("seq"))
    prev_hash = AccessEvent.objects.get(chain=chain, seq=from_seq - 1).hash
    with behind_the_triggers(), connection.cursor() as cursor:
        for event in rows:
            event.actor_name, event.alert_reasons, event.prev_hash = "someone-else", "", prev_hash
            prev_hash = log.event_hash({name: getattr(event, name) for name in log.HASHED_FIELDS})
            cursor.execute("UPDATE access_accessevent SET actor_name = %s, alert_reasons = '', prev_hash = %s, hash = %s "
                           "WHERE id = %s", [event.actor_name, event.prev_hash, prev_hash, event.pk])  # fmt: skip
        signature, key_id = ("", "")
        if sign_with is not None:
            signature = base64.b64encode(
                sign_with.sign(heads.message(chain.pk, rows[-1].seq, prev_hash, rows[-1].occurred_at))
            ).decode()
            key_id = "f" * 64
        cursor.execute("UPDATE access_chainhead SET head_hash = %s, signature = %s, key_id = %s WHERE organisation_id = %s",
                       [prev_hash, signature or ChainHead.objects.get(organisation=chain).signature, key_id or
                        ChainHead.objects.get(organisation=chain).key_id, chain.pk])  # fmt: skip
    return rows[0]


def test_every_write_signs_the_head_with_the_log_key(world):
    _read(world, 3)
    head = ChainHead.objects.get(organisation=world.kent)
    newest = AccessEvent.objects.filter(chain=world.kent).order_by("-seq").first()

    assert (head.seq, head.head_hash, head.signed_at) == (newest.seq, newest.hash, newest.occurred_at)
    assert heads.signature_problem(world.kent.pk, head.seq, head.head_hash, head.signed_at, head.signature, head.key_id) is None
    assert (newest.head_signature, newest.head_key_id) == (head.signature, head.key_id)
    assert head.key_id in heads.trusted_keys()
    assert log.verify_chain().verified


def test_a_tail_rewritten_with_raw_sql_is_caught_without_a_published_head_naming_the_first_bad_event(world):
    _read(world, 4)
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")  # the alert someone wants gone
    _read(world, 2)
    attempt = AccessEvent.objects.get(chain=world.kent, actor_name="workcoach")

    first = _rewrite_tail(world.kent, attempt.seq)

    result = log.verify_chain()
    assert result.verified is False
    assert result.first_mismatch["event_id"] == first.pk == attempt.pk
    assert result.first_mismatch["seq"] == attempt.seq
    assert "signature" in result.first_mismatch["problem"] and "rewritten" in result.first_mismatch["problem"]
    output, error = _command("verify_access_log")
    assert error is not None and error.returncode == 2
    assert f"event {attempt.pk}" in str(error)
    # The DPO's endpoint says the same.
    body = api_client(world.dpo).get("/api/v1/access-events/verify/").json()
    assert body["verified"] is False and body["first_mismatch"]["event_id"] == attempt.pk


def test_a_head_signed_with_a_key_of_the_insiders_own_is_caught(world):
    _read(world, 3)
    start = AccessEvent.objects.filter(chain=world.kent).order_by("-seq").values_list("seq", flat=True).first() - 1

    _rewrite_tail(world.kent, start, sign_with=Ed25519PrivateKey.generate())

    result = log.verify_chain(organisation_ids=[world.kent.pk])
    assert result.verified is False and "not a trusted log key" in result.first_mismatch["problem"]


def test_a_rotated_key_still_verifies_heads_the_earlier_key_signed(world, settings, tmp_path):
    _read(world)
    old_key = heads.log_key()
    new_key = Ed25519PrivateKey.generate()
    settings.ACCESS_LOG_SIGNING_KEY = new_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    old_public = old_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    # Without the earlier key trusted, the heads it signed do not verify ...
    assert log.verify_chain().verified is False
    settings.ACCESS_LOG_PUBLIC_KEYS = old_public.decode()
    # ... with it, they do; and new writes are signed with the new key.
    assert log.verify_chain().verified is True
    _read(world)
    head = ChainHead.objects.get(organisation=world.kent)
    assert head.key_id == heads._key_id_of(new_key)
    assert log.verify_chain().verified is True


# ---- published heads ------------------------------------------------------------------------------------------


def _publish(tmp_path, name="heads.jsonl"):
    path = tmp_path / name
    _, error = _command("publish_access_log_heads", "--output", str(path))
    assert error is None
    return path


def test_it_publishes_each_chains_signed_head_as_one_json_line(world, tmp_path):
    _read(world)
    output, error = _command("publish_access_log_heads")
    assert error is None
    lines = [json.loads(line) for line in output.splitlines()]
    kent = next(line for line in lines if line["chain"] == world.kent.pk)
    head = ChainHead.objects.get(organisation=world.kent)
    assert kent == {"format": heads.HEAD_FORMAT, "chain": world.kent.pk, "seq": head.seq, "hash": head.head_hash,
                    "time": heads.time_text(head.signed_at), "signature": head.signature, "key_id": head.key_id}  # fmt: skip
    assert {line["chain"] for line in lines} == set(ChainHead.objects.filter(seq__gt=0).values_list("organisation_id", flat=True))


def test_a_head_file_published_yesterday_still_verifies_today(world, tmp_path):
    _read(world)
    path = _publish(tmp_path)
    _read(world, 3)  # the chain grew since

    output, error = _command("verify_access_log", "--against", str(path))

    assert error is None, error
    assert "line 1: FOUND" in output and "still in their chains" in output


def test_a_head_file_with_a_changed_hash_fails_naming_the_line_and_not_as_a_rewrite(world, tmp_path):
    _read(world)
    path = _publish(tmp_path)
    lines = path.read_text().splitlines()
    changed = json.loads(lines[-1])
    changed["hash"] = ("0" if changed["hash"][0] != "0" else "1") + changed["hash"][1:]
    path.write_text("\n".join([*lines[:-1], json.dumps(changed)]) + "\n")
    number = len(lines)

    output, error = _command("verify_access_log", "--against", str(path))

    assert error is not None and error.returncode == 1
    assert f"line {number}: UNTRUSTED" in output and "says nothing about the chain" in output
    assert f"first: line {number}" in str(error)


def test_malformed_and_unknown_lines_are_reported_as_such(world, tmp_path):
    _read(world)
    path = _publish(tmp_path)
    good = path.read_text().splitlines()[0]
    unknown = json.loads(good)
    unknown["chain"] = 2147480000
    path.write_text("\n".join([good, "{not json", json.dumps({"hash": "ab"}), json.dumps(unknown)]) + "\n")

    output, error = _command("verify_access_log", "--against", str(path))

    assert error is not None and error.returncode == 1
    assert "line 1: FOUND" in output
    assert "line 2: MALFORMED: not JSON" in output
    assert "line 3: MALFORMED: not a published head" in output
    assert "line 4: UNTRUSTED" in output
    assert "rewritten" not in output.lower()


def test_a_chain_rewritten_since_a_head_was_published_fails_naming_the_line(world, tmp_path):
    _read(world, 3)
    path = _publish(tmp_path)
    published = ChainHead.objects.get(organisation=world.kent)
    # Someone who also holds the log key rewrites the last event and signs the head again.
    event = AccessEvent.objects.get(chain=world.kent, seq=published.seq)
    event.actor_name = "someone-else"
    new_hash = log.event_hash({name: getattr(event, name) for name in log.HASHED_FIELDS})
    signature, key_id = heads.sign(world.kent.pk, event.seq, new_hash, event.occurred_at)
    with behind_the_triggers(), connection.cursor() as cursor:
        cursor.execute("UPDATE access_accessevent SET actor_name = 'someone-else', hash = %s, head_signature = %s WHERE id = %s",
                       [new_hash, signature, event.pk])  # fmt: skip
        cursor.execute("UPDATE access_chainhead SET head_hash = %s, signature = %s, key_id = %s WHERE organisation_id = %s",
                       [new_hash, signature, key_id, world.kent.pk])  # fmt: skip
    assert log.verify_chain().verified  # consistent, and signed with the real key ...
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if json.loads(text)["chain"] == world.kent.pk)

    output, error = _command("verify_access_log", "--against", str(path))

    # ... but the published head is no longer in the chain.
    assert error is not None and error.returncode == 2
    assert f"line {line}: REWRITTEN" in output and f"line {line}:" in str(error) and "rewritten" in str(error)


@pytest.mark.parametrize("against", ["0" * 64])
def test_a_bare_hash_not_found_no_longer_reads_as_certain_tampering(world, against):
    _read(world)
    output, error = _command("verify_access_log", "--against", against)
    assert error is not None and "NOT FOUND" in output
    assert "mistyped" in str(error)
