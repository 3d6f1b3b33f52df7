"""Request ids are the server's: it generates the id everything counts by; a client's X-Request-ID is kept
beside it, untrusted. Old events (written before the client's id was kept) still verify."""

from consent.access.log import event_hash, verify_chain
from consent.access.models import AccessEvent
from consent.reports.metrics import _attempt_counts
from tests.conftest import api_client


def test_the_server_makes_the_request_id_and_keeps_the_clients_beside_it(world):
    response = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/", HTTP_X_REQUEST_ID="abc-123")

    event = AccessEvent.objects.filter(actor_id=world.therapist.pk, action="read").latest("pk")
    assert response["X-Request-ID"] == event.request_id != "abc-123"
    assert len(event.request_id) == 32
    assert event.client_request_id == "abc-123"


def test_a_malformed_client_id_is_dropped_and_one_with_an_identifier_is_withheld(world):
    client = api_client(world.therapist)
    client.get(f"/api/v1/referrals/{world.referral.pk}/", HTTP_X_REQUEST_ID="<script>alert(1)</script>")
    client.get(f"/api/v1/referrals/{world.referral.pk}/", HTTP_X_REQUEST_ID="KTT-000123")

    ids = list(AccessEvent.objects.filter(actor_id=world.therapist.pk, action="read").order_by("pk")
               .values_list("client_request_id", flat=True))  # fmt: skip
    assert ids == ["", "[withheld]"]


def test_a_work_coach_repeating_one_request_id_makes_each_attempt_count(world):
    coach = api_client(world.work_coach)
    for _ in range(9):
        assert coach.get(f"/api/v1/referrals/{world.referral.pk}/", HTTP_X_REQUEST_ID="same-id-every-time").status_code == 404

    attempts = AccessEvent.objects.filter(actor_id=world.work_coach.pk, chain=world.kent).aggregate(**_attempt_counts())
    assert attempts["benefits_agency_access_denied"] == 9
    assert set(AccessEvent.objects.filter(actor_id=world.work_coach.pk).values_list("client_request_id", flat=True)) == {
        "same-id-every-time"
    }


def test_an_event_written_before_the_client_id_was_kept_still_verifies(world):
    api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    event = AccessEvent.objects.filter(actor_id=world.therapist.pk, action="read").latest("pk")
    values = {name: getattr(event, name) for name in ("chain_id", "seq", "occurred_at", "actor_id", "actor_name",
              "actor_organisation_id", "actor_organisation_kind", "action", "object_type", "object_id", "client_pseudonym",
              "referral_id", "outcome", "purpose", "request_id", "method", "path", "status", "alert_reasons", "prev_hash")}  # fmt: skip

    # The encoding of an event without the new field (as every older event was hashed) is unchanged.
    assert event.client_request_id == ""
    assert event_hash(values) == event.hash
    assert event_hash({**values, "client_request_id": ""}) == event.hash
    # A client id that is kept is covered by the hash: changing it is caught.
    assert event_hash({**values, "client_request_id": "x"}) != event.hash
    assert verify_chain(organisation_ids=[world.kent.pk]).verified
