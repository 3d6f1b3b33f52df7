"""Verifying the hash chains: an intact log verifies; a changed, deleted or consistently rebuilt one is caught."""

import re
from io import StringIO
from unittest import mock

import pytest
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.db import connection

from consent.access import heads, log, triggers
from consent.access.models import AccessEvent, ChainHead
from tests.conftest import api_client, make_referral

VERIFY = "/api/v1/access-events/verify/"


def _busy_log(world, reads=6):
    for _ in range(2):
        make_referral(world.therapist, world.site)
    for _ in range(reads):
        api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")


def _verify(user, against=None):
    response = api_client(user).get(VERIFY + (f"?against={against}" if against else ""))
    assert response.status_code == 200
    return response.json()


def _command(*args) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("verify_access_log", *args, stdout=out)
    except CommandError as error:
        return out.getvalue(), error
    return out.getvalue(), None


def _exit_code(*args) -> int:
    """The exit status `python manage.py verify_access_log ...` would end with, run in this process."""
    # The command closes every connection as it exits; that would end the test's transaction too.
    with mock.patch("django.core.management.base.connections.close_all"), pytest.raises(SystemExit) as ended:
        execute_from_command_line(["manage.py", "verify_access_log", *args])
        raise SystemExit(0)
    return ended.value.code


def _published_head(output: str, organisation) -> str:
    return re.search(rf"organisation {organisation.pk}: head seq \d+ hash ([0-9a-f]{{64}})", output).group(1)


def test_an_intact_log_verifies_through_the_endpoint_and_the_command(world):
    _busy_log(world)

    body = _verify(world.dpo)
    output, error = _command()

    assert body["verified"] is True and body["first_mismatch"] is None
    assert body["events_checked"] == AccessEvent.objects.filter(chain=world.kent).count()
    assert error is None
    assert f"events checked: {AccessEvent.objects.count()}" in output
    head = ChainHead.objects.get(organisation=world.kent)
    assert f"organisation {world.kent.pk}: head seq {head.seq} hash {head.head_hash}" in output
    assert _exit_code() == 0


def test_the_command_checks_one_organisation_when_asked(world):
    _busy_log(world)

    output, error = _command("--organisation", str(world.medway.pk))

    assert error is None
    assert f"events checked: {AccessEvent.objects.filter(chain=world.medway).count()}" in output
    assert f"organisation {world.kent.pk}:" not in output


def test_the_command_says_what_it_accepts(world):
    _, error = _command("--organisation", "2147480000")
    assert "No organisation with id 2147480000" in str(error)
    _, error = _command("--against", "abc")
    assert "64 lowercase hexadecimal" in str(error)


def _tamper(sql: str, params=()):
    """Change the log behind the application's back: triggers dropped, SQL run, triggers back."""
    triggers.remove(connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
    triggers.install(connection)


def test_changing_one_field_of_one_event_is_named_by_verify_and_fails_the_command(world):
    _busy_log(world)
    target = AccessEvent.objects.filter(chain=world.kent, actor_name="workcoach").get()

    _tamper("UPDATE access_accessevent SET actor_name = %s WHERE id = %s", ["therapist", target.pk])

    body = _verify(world.dpo)
    assert body["verified"] is False
    assert body["first_mismatch"]["event_id"] == target.pk
    assert body["first_mismatch"]["seq"] == target.seq
    assert "does not match its hash" in body["first_mismatch"]["problem"]
    output, error = _command()
    assert error is not None and error.returncode != 0
    assert f"event {target.pk}" in str(error)
    assert _exit_code() != 0
    # The other provider's chain is untouched and still verifies on its own.
    assert _exit_code("--organisation", str(world.medway.pk)) == 0


@pytest.mark.parametrize("column", ["outcome", "occurred_at", "client_pseudonym", "purpose", "status"])
def test_any_hashed_field_changed_is_caught(world, column):
    _busy_log(world, reads=2)
    # Past the standing world's setup events (its accounts, made from a shell), to an event about a client.
    target = AccessEvent.objects.filter(chain=world.kent).exclude(actor_name="system").order_by("seq")[2]
    values = {"outcome": "'denied'", "occurred_at": "occurred_at", "client_pseudonym": "NULL", "purpose": "'edited'",
              "status": "500"}  # fmt: skip
    if column == "occurred_at":
        # A second earlier, written the way each database spells it.
        values["occurred_at"] = (
            "occurred_at - interval '1 second'" if connection.vendor == "postgresql" else "datetime(occurred_at, '-1 second')"
        )
    _tamper(f"UPDATE access_accessevent SET {column} = {values[column]} WHERE id = %s", [target.pk])  # noqa: S608

    assert _verify(world.dpo)["first_mismatch"]["event_id"] == target.pk


def test_deleting_an_event_is_caught_at_the_gap(world):
    _busy_log(world)
    events = list(AccessEvent.objects.filter(chain=world.kent).order_by("seq"))
    victim, after = events[3], events[4]

    _tamper("DELETE FROM access_accessevent WHERE id = %s", [victim.pk])

    mismatch = _verify(world.dpo)["first_mismatch"]
    assert mismatch["event_id"] == after.pk
    assert "missing" in mismatch["problem"]


def _rebuild_without(event: AccessEvent):
    """Delete an event and rewrite every later one so the chain is internally consistent again.

    Done by someone who also holds the log key and signs the moved head with it: without the key the rewrite is
    caught by the head's signature alone (tests/test_signed_heads.py); with it, only a published head catches it.
    """
    triggers.remove(connection)
    AccessEvent.objects.filter(pk=event.pk).delete()
    prev_hash, last_seq = AccessEvent.objects.get(chain_id=event.chain_id, seq=event.seq - 1).hash, event.seq - 1
    for later in AccessEvent.objects.filter(chain_id=event.chain_id, seq__gt=event.seq).order_by("seq"):
        later.seq -= 1
        later.prev_hash = prev_hash
        values = {name: getattr(later, name) for name in log.HASHED_FIELDS}
        later.hash = prev_hash = log.event_hash(values)
        later.save()
        last_seq = later.seq
    newest = AccessEvent.objects.get(chain_id=event.chain_id, seq=last_seq)
    signature, key_id = heads.sign(event.chain_id, last_seq, prev_hash, newest.occurred_at)
    ChainHead.objects.filter(organisation_id=event.chain_id).update(
        seq=last_seq, head_hash=prev_hash, signed_at=newest.occurred_at, signature=signature, key_id=key_id
    )
    triggers.install(connection)


def test_a_chain_rebuilt_consistently_is_caught_against_an_earlier_published_head(world):
    _busy_log(world)
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    published_output, _ = _command("--organisation", str(world.kent.pk))
    published = _published_head(published_output, world.kent)
    # The work coach's refused attempt is the event someone wants gone.
    attempt = AccessEvent.objects.get(chain=world.kent, actor_name="workcoach")

    _rebuild_without(attempt)

    # Internally the rewritten chain is consistent and its head signed with the log key: verification alone
    # cannot see the deletion ...
    assert _verify(world.dpo)["verified"] is True
    assert _command()[1] is None
    # ... but the head published before the rewrite is no longer in it.
    body = _verify(world.dpo, against=published)
    assert body["verified"] is False
    assert body["against_found"] is False
    assert published in body["first_mismatch"]["problem"]
    output, error = _command("--against", published)
    assert error is not None and error.returncode != 0
    assert "NOT FOUND" in output
    assert _exit_code("--against", published) != 0


def test_a_head_published_before_the_rewritten_part_is_still_found(world):
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    early = _published_head(_command()[0], world.kent)
    _busy_log(world)
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    attempt = AccessEvent.objects.get(chain=world.kent, actor_name="workcoach")

    _rebuild_without(attempt)

    body = _verify(world.dpo, against=early)
    assert body["verified"] is True and body["against_found"] is True
    assert _exit_code("--against", early) == 0


def test_a_chain_head_that_does_not_match_its_last_event_is_caught(world):
    _busy_log(world, reads=1)
    last = AccessEvent.objects.filter(chain=world.kent).order_by("-seq").first()

    # Dropping the newest event and pulling the head back would hide the most recent access.
    _tamper("DELETE FROM access_accessevent WHERE id = %s", [last.pk])

    body = _verify(world.dpo)
    assert body["verified"] is False
    assert "chain head" in body["first_mismatch"]["problem"]


def test_a_full_verification_leaves_a_checkpoint_the_report_resumes_from(world):
    _busy_log(world)
    full = log.verify_chain(organisation_ids=[world.kent.pk])
    assert full.verified and full.events_checked == AccessEvent.objects.filter(chain=world.kent).count()
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")  # one event since

    resumed = log.verify_chain(organisation_ids=[world.kent.pk], resume=True)

    assert resumed.verified
    assert resumed.events_checked == 1
    assert resumed.heads == log.verify_chain(organisation_ids=[world.kent.pk]).heads


def test_resuming_catches_a_change_to_the_checkpoint_event_or_after_it(world):
    _busy_log(world)
    assert log.verify_chain(organisation_ids=[world.kent.pk]).verified
    checkpoint_event = AccessEvent.objects.filter(chain=world.kent).order_by("-seq").first()
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    later = AccessEvent.objects.filter(chain=world.kent).order_by("-seq").first()

    _tamper("UPDATE access_accessevent SET status = 500 WHERE id = %s", [later.pk])
    after = log.verify_chain(organisation_ids=[world.kent.pk], resume=True)
    assert not after.verified and after.first_mismatch["event_id"] == later.pk

    _tamper("UPDATE access_accessevent SET purpose = 'edited' WHERE id = %s", [checkpoint_event.pk])
    at = log.verify_chain(organisation_ids=[world.kent.pk], resume=True)
    assert not at.verified and "checkpoint" in at.first_mismatch["problem"]


def test_an_event_written_past_the_head_is_caught_and_named(world):
    _busy_log(world, reads=1)
    last = AccessEvent.objects.filter(chain=world.kent).order_by("-seq").first()
    rogue = {name: getattr(last, name) for name in log.HASHED_FIELDS}
    rogue.update(seq=last.seq + 1, prev_hash=last.hash)

    # Appending is what the triggers allow: an event added around the log, without moving the head, would
    # otherwise sit unverified (verification walks each chain up to the head it reads).
    AccessEvent.objects.create(**rogue, hash=log.event_hash(rogue))

    body = _verify(world.dpo)
    assert body["verified"] is False
    assert body["first_mismatch"]["seq"] == last.seq + 1
    assert "beyond its chain's head" in body["first_mismatch"]["problem"]


def test_events_on_a_chain_whose_head_row_was_deleted_are_caught(world):
    _busy_log(world, reads=1)
    first = AccessEvent.objects.filter(chain=world.kent).order_by("seq").first()

    _tamper("DELETE FROM access_chainhead WHERE organisation_id = %s", [world.kent.pk])

    body = _verify(world.dpo)
    assert body["verified"] is False
    assert body["first_mismatch"]["event_id"] == first.pk
    assert "head row is missing" in body["first_mismatch"]["problem"]
