"""The access log is append-only in the database itself: UPDATE, DELETE (and TRUNCATE on PostgreSQL) are refused."""

import pytest
from django.db import DatabaseError, connection, transaction

from consent.access.models import AccessEvent, AlertDisposition, ChainHead
from tests.conftest import api_client, postgres_only


def _refused(sql: str) -> str:
    """Run raw SQL in a savepoint; return the database's refusal (failing the test if it was accepted)."""
    with pytest.raises(DatabaseError) as refusal, transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql)
    return str(refusal.value)


def _snapshot():
    return list(AccessEvent.objects.order_by("chain", "seq").values_list("pk", "actor_name", "hash"))


def test_raw_sql_update_of_an_event_is_refused(world):
    before = _snapshot()

    message = _refused("UPDATE access_accessevent SET actor_name = 'someone else'")

    assert "append-only" in message
    assert _snapshot() == before


def test_raw_sql_delete_of_an_event_is_refused(world):
    before = _snapshot()
    event = AccessEvent.objects.order_by("seq").first()

    assert "append-only" in _refused(f"DELETE FROM access_accessevent WHERE id = {event.pk}")  # noqa: S608
    assert "append-only" in _refused("DELETE FROM access_accessevent")
    assert _snapshot() == before


def test_the_orm_cannot_change_or_delete_events_either(world):
    with pytest.raises(DatabaseError), transaction.atomic():
        AccessEvent.objects.filter(chain=world.kent).update(outcome="allowed")
    with pytest.raises(DatabaseError), transaction.atomic():
        AccessEvent.objects.filter(chain=world.kent).delete()
    assert AccessEvent.objects.filter(chain=world.kent).exists()


def test_dispositions_are_append_only_too(world):
    api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
    alert = AccessEvent.objects.filter(chain=world.kent).exclude(alert_reasons="").exclude(actor_name="system").get()
    response = api_client(world.dpo).post(
        f"/api/v1/access-events/alerts/{alert.pk}/disposition/", {"disposition": "no_concern", "note": "Refused as it should be."}
    )
    assert response.status_code == 201

    assert "append-only" in _refused("UPDATE access_alertdisposition SET disposition = 'breach_confirmed'")
    assert "append-only" in _refused("DELETE FROM access_alertdisposition")
    assert AlertDisposition.objects.get().disposition == "no_concern"


def test_inserting_stays_possible(world):
    before = AccessEvent.objects.count()

    assert api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/").status_code == 200

    assert AccessEvent.objects.count() == before + 1
    assert ChainHead.objects.get(organisation=world.kent).seq == AccessEvent.objects.filter(chain=world.kent).count()


@postgres_only
def test_truncate_is_refused_on_postgresql(world):
    before = _snapshot()
    # Run the test transaction's deferred foreign-key checks now, or PostgreSQL refuses TRUNCATE for them first.
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")

    assert "append-only" in _refused("TRUNCATE access_accessevent CASCADE")
    assert "append-only" in _refused("TRUNCATE access_alertdisposition")
    assert _snapshot() == before
