"""Logging fails closed: when the event table cannot be written, no client data leaves and nothing is changed."""

import pytest
from django.db import connection

from consent.access.models import AccessEvent
from consent.models import Client, ConsentRecord, Referral
from tests.conftest import PASSWORD, api_client
from tests.helpers import ACCESS_LOG_DOWN, ACCESS_LOG_MENDED, run_statements


@pytest.fixture
def log_down(world):
    """The event table refuses every insert (as a full disk or a revoked grant would), inside the test's transaction."""
    run_statements(ACCESS_LOG_DOWN[connection.vendor])
    yield world
    run_statements(ACCESS_LOG_MENDED[connection.vendor])


def _identifiers(world):
    referral = world.referral
    return [str(referral.pk), str(referral.client_id), "KTT-000123", "9434765919", str(referral.site.name)]


def _assert_unavailable_with_nothing_of_the_client(response, world):
    assert response.status_code == 503
    body = response.json()
    assert body["code"] == "access_log_unavailable"
    assert set(body) == {"detail", "code"}
    text = response.content.decode()
    for identifier in _identifiers(world):
        assert identifier not in text


def test_a_therapists_read_of_a_referral_fails_and_returns_none_of_its_data(log_down):
    world = log_down
    events = AccessEvent.objects.count()

    response = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")

    _assert_unavailable_with_nothing_of_the_client(response, world)
    assert AccessEvent.objects.count() == events


def test_the_list_fails_whole(log_down):
    world = log_down

    response = api_client(world.therapist).get("/api/v1/referrals/")

    _assert_unavailable_with_nothing_of_the_client(response, world)
    assert "results" not in response.json() and "count" not in response.json()


@pytest.mark.parametrize("suffix", ["fhir-consent/", "consent-receipt/", "access-history/"])
def test_exports_and_history_fail_too(log_down, suffix):
    world = log_down
    response = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/{suffix}")
    _assert_unavailable_with_nothing_of_the_client(response, world)


def test_the_subject_access_export_fails(log_down):
    world = log_down
    response = api_client(world.dpo).get(f"/api/v1/referrals/{world.referral.pk}/subject-access-export/")
    _assert_unavailable_with_nothing_of_the_client(response, world)


def test_a_write_is_not_made_when_its_event_cannot_be(log_down):
    world = log_down
    referrals, clients, consents = Referral.objects.count(), Client.objects.count(), ConsentRecord.objects.count()
    client = api_client(world.therapist)

    created = client.post(
        "/api/v1/referrals/",
        {"client": {"local_reference": "KTT-000999", "nhs_number": "9434765870"}, "site": world.site.pk,
         "referred_on": "2026-09-14", "source_of_referral": "B1", "how_heard": "gp", "pathway": "self_referral"},
        format="json",
    )  # fmt: skip
    consented = client.post(
        f"/api/v1/referrals/{world.referral.pk}/consents/",
        {"template": world.template.pk, "method": "verbal", "given_at": "2026-09-14T10:05:00Z", "scopes": ["treatment"],
         "acknowledgements": dict.fromkeys(("attendance_is_optional", "no_effect_on_benefits",
                                            "service_separate_from_jobcentre", "nothing_shared_with_jobcentre",
                                            "free_to_withdraw"), True)},
        format="json",
    )  # fmt: skip

    assert created.status_code == 503 and "KTT-000999" not in created.content.decode()
    _assert_unavailable_with_nothing_of_the_client(consented, world)
    assert (Referral.objects.count(), Client.objects.count(), ConsentRecord.objects.count()) == (referrals, clients, consents)


def test_no_token_is_given_when_the_sign_in_cannot_be_logged(log_down):
    from knox.models import AuthToken

    response = api_client().post("/api/v1/auth/token/", {"username": "therapist", "password": PASSWORD}, format="json")

    assert response.status_code == 503
    assert "token" not in response.json()
    assert not AuthToken.objects.filter(user=log_down.therapist).exists()


def test_a_refused_attempt_is_not_answered_as_if_logged(log_down):
    world = log_down
    response = api_client(world.work_coach).get(f"/api/v1/referrals/{world.referral.pk}/")
    _assert_unavailable_with_nothing_of_the_client(response, world)


def test_once_the_log_is_back_reads_work_again(world):
    run_statements(ACCESS_LOG_DOWN[connection.vendor])
    assert api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/").status_code == 503
    run_statements(ACCESS_LOG_MENDED[connection.vendor])

    response = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")

    assert response.status_code == 200
    assert response.json()["client"]["local_reference"] == "KTT-000123"
