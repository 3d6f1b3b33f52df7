"""Signing in: tokens for the API, sessions for the browsable API and admin, lockout after five failures."""

from rest_framework.test import APIClient

from consent.access.models import AccessEvent
from tests.conftest import PASSWORD

TOKEN_URL = "/api/v1/auth/token/"


def _sign_in(username, password, client=None):
    return (client or APIClient()).post(TOKEN_URL, {"username": username, "password": password}, format="json")


def test_a_right_password_gives_a_token_that_opens_the_api(world):
    response = _sign_in("therapist", PASSWORD)
    assert response.status_code == 200
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {response.json()['token']}")
    me = client.get("/api/v1/me/")
    assert me.status_code == 200
    assert me.json()["username"] == "therapist"


def test_a_wrong_password_is_a_400_that_does_not_say_which_part_was_wrong(world):
    response = _sign_in("therapist", "not-the-password")
    assert response.status_code == 400
    assert response.json()["detail"] == "Wrong username or password."
    unknown = _sign_in("nobody-by-this-name", "not-the-password")
    assert unknown.status_code == 400
    assert unknown.json() == response.json()


def test_the_sixth_attempt_after_five_wrong_passwords_is_refused_with_a_json_lockout_message(world):
    client = APIClient()
    for _ in range(4):
        assert _sign_in("therapist", "wrong-password", client).status_code == 400
    # The fifth failure reaches the limit: it is already answered with the lockout.
    assert _sign_in("therapist", "wrong-password", client).status_code == 429
    # Even the right password is refused now: the account is locked, and the answer says so in JSON.
    locked = _sign_in("therapist", PASSWORD, client)
    assert locked.status_code == 429
    assert locked["Content-Type"].startswith("application/json")
    body = locked.json()
    assert body["code"] == "locked_out"
    assert "locked" in body["detail"]
    assert "token" not in body


def test_a_lockout_is_per_account_not_for_everyone(world):
    for _ in range(5):
        _sign_in("therapist", "wrong-password")
    assert _sign_in("lead", PASSWORD).status_code == 200


def test_failed_and_successful_sign_ins_are_access_events(world):
    _sign_in("therapist", "wrong-password")
    _sign_in("therapist", PASSWORD)
    events = list(
        AccessEvent.objects.filter(actor_name="therapist", action__startswith="sign_in")
        .order_by("pk")
        .values_list("action", "outcome")
    )
    assert events == [("sign_in_failed", "denied"), ("sign_in", "allowed")]


def test_session_sign_in_serves_the_browsable_api_and_the_admin(world, client):
    page = client.get("/api/auth/login/")
    assert page.status_code == 200
    signed_in = client.post("/api/auth/login/", {"username": "admin", "password": PASSWORD, "next": "/api/v1/sites/"})
    assert signed_in.status_code == 302
    assert client.get("/api/v1/sites/", HTTP_ACCEPT="text/html").status_code == 200
    assert client.get("/admin/").status_code == 200


def test_anonymous_requests_get_401_on_reads(world):
    client = APIClient()
    for path in ("/api/v1/me/", "/api/v1/sites/", "/api/v1/pilots/"):
        response = client.get(path)
        assert response.status_code == 401, path
        assert "credentials" in response.json()["detail"]
