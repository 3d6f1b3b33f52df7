"""Signing in and out through any door is an access event; lockout is by username and address together; a
session ends after 30 minutes without a request."""

from datetime import timedelta

from django.conf import settings
from django.contrib.sessions.models import Session
from django.utils import timezone
from rest_framework.test import APIClient

from api.lockout import client_address
from consent.access.models import AccessEvent
from tests.conftest import PASSWORD

TOKEN_URL = "/api/v1/auth/token/"


def _events(user, *actions):
    return list(
        AccessEvent.objects.filter(actor_id=user.pk, action__in=actions).order_by("pk").values_list("action", "outcome", "path")
    )


def test_the_admins_session_sign_in_and_out_are_access_events(world, client):
    assert client.post("/admin/login/?next=/admin/", {"username": "admin", "password": "wrong"}).status_code == 200
    assert client.post("/admin/login/?next=/admin/", {"username": "admin", "password": PASSWORD}).status_code == 302
    assert client.post("/admin/logout/").status_code == 200

    assert _events(world.admin, "sign_in", "sign_in_failed", "sign_out") == [
        ("sign_in_failed", "denied", "/admin/login/?next=[withheld]"),
        ("sign_in", "allowed", "/admin/login/?next=[withheld]"),
        ("sign_out", "allowed", "/admin/logout/"),
    ]


def test_the_browsable_apis_session_sign_in_and_out_are_access_events(world, client):
    client.post("/api/auth/login/", {"username": "therapist", "password": "wrong"})
    client.post("/api/auth/login/", {"username": "therapist", "password": PASSWORD, "next": "/api/v1/sites/"})
    client.post("/api/auth/logout/")

    assert [(action, outcome) for action, outcome, _ in _events(world.therapist, "sign_in", "sign_in_failed", "sign_out")] == [
        ("sign_in_failed", "denied"), ("sign_in", "allowed"), ("sign_out", "allowed"),
    ]  # fmt: skip


def test_a_work_coachs_sign_in_goes_on_every_co_located_providers_chain(world):
    APIClient().post(TOKEN_URL, {"username": "workcoach", "password": PASSWORD}, format="json")

    chains = set(AccessEvent.objects.filter(actor_id=world.work_coach.pk, action="sign_in").values_list("chain_id", flat=True))
    assert chains == {world.kent.pk, world.medway.pk}


def test_a_sign_in_event_carries_the_servers_request_id(world):
    response = APIClient().post(
        TOKEN_URL, {"username": "therapist", "password": PASSWORD}, format="json", HTTP_X_REQUEST_ID="client-chosen-1"
    )
    event = AccessEvent.objects.get(actor_id=world.therapist.pk, action="sign_in")
    assert event.request_id == response["X-Request-ID"] != "client-chosen-1"
    assert event.client_request_id == "client-chosen-1"


# ---- lockout: username and address together ---------------------------------------------------------------


def _sign_in(username, password, address):
    return APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json", REMOTE_ADDR=address)


def test_five_failures_lock_that_username_from_that_address_only(world):
    for _ in range(5):
        _sign_in("dpo", "wrong-password", "203.0.113.9")

    assert _sign_in("dpo", PASSWORD, "203.0.113.9").status_code == 429
    # Someone guessing the DPO's password elsewhere has not locked the DPO out of their own desk.
    assert _sign_in("dpo", PASSWORD, "198.51.100.20").status_code == 200
    # Nor has the guesser's address been locked for other accounts.
    assert _sign_in("therapist", PASSWORD, "203.0.113.9").status_code == 200


def test_the_lockout_address_is_the_one_the_trusted_proxies_saw(settings):
    from django.test import RequestFactory
    from rest_framework.settings import api_settings

    request = RequestFactory().post(TOKEN_URL, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.9")
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 0}
    api_settings.reload()
    assert client_address(request) == "10.0.0.2"  # no proxy trusted: the client could have written the header
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    api_settings.reload()
    assert client_address(request) == "203.0.113.9"  # the hop our one proxy added, not what the client wrote


# ---- sessions --------------------------------------------------------------------------------------------------


def test_a_session_lasts_30_minutes_from_the_last_request(world, client):
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    client.post("/api/auth/login/", {"username": "therapist", "password": PASSWORD})
    session = Session.objects.get()
    # Pretend the sign-in was 20 minutes ago: a request now moves the end on to 30 minutes from now.
    Session.objects.update(expire_date=timezone.now() + timedelta(minutes=10))
    assert client.get("/api/v1/me/").status_code == 200
    session = Session.objects.get(pk=session.pk)
    assert session.expire_date > timezone.now() + timedelta(minutes=29)


def test_a_session_idle_for_30_minutes_is_signed_out(world, client):
    client.post("/api/auth/login/", {"username": "therapist", "password": PASSWORD})
    assert client.get("/api/v1/me/").status_code == 200
    Session.objects.update(expire_date=timezone.now() - timedelta(seconds=1))

    response = client.get("/api/v1/me/")

    assert response.status_code in (401, 403)
