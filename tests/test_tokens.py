"""API tokens: hashed at rest, one per sign-in, with an expiry, sign-out and sign-out everywhere; precise 401s.

And no page shows a token once it is issued: the admin has no token pages at all.
"""

from datetime import timedelta

import pytest
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from consent.access.models import AccessEvent
from tests.conftest import PASSWORD

TOKEN_URL = "/api/v1/auth/token/"


def _sign_in(username="therapist", password=PASSWORD):
    response = APIClient().post(TOKEN_URL, {"username": username, "password": password}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


def _with(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_token_is_stored_only_as_its_hash(world):
    token = _sign_in()["token"]

    (row,) = AuthToken.objects.filter(user=world.therapist)
    stored = " ".join(str(value) for value in AuthToken.objects.values_list().get())
    assert token not in stored
    assert row.digest != token and len(row.digest) == 128  # SHA-512, hex
    assert _with(token).get("/api/v1/me/").status_code == 200


def test_each_sign_in_issues_its_own_token_and_each_works(world):
    laptop, phone = _sign_in()["token"], _sign_in()["token"]

    assert laptop != phone
    assert AuthToken.objects.filter(user=world.therapist).count() == 2
    assert _with(laptop).get("/api/v1/me/").status_code == 200
    assert _with(phone).get("/api/v1/me/").status_code == 200


def test_a_token_comes_with_its_expiry_and_is_refused_after_it(world):
    body = _sign_in()
    expiry = timezone.datetime.fromisoformat(body["expiry"].replace("Z", "+00:00"))
    assert timezone.now() < expiry <= timezone.now() + timedelta(hours=1)

    AuthToken.objects.filter(user=world.therapist).update(expiry=timezone.now() - timedelta(seconds=1))
    response = _with(body["token"]).get("/api/v1/me/")

    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_signing_out_ends_that_token_only(world):
    laptop, phone = _sign_in()["token"], _sign_in()["token"]

    assert _with(laptop).post("/api/v1/auth/logout/").status_code == 204

    assert _with(laptop).get("/api/v1/me/").status_code == 401
    assert _with(phone).get("/api/v1/me/").status_code == 200


def test_signing_out_everywhere_ends_every_token_of_the_account_and_no_one_elses(world):
    laptop, phone = _sign_in()["token"], _sign_in()["token"]
    colleague = _sign_in("lead")["token"]

    assert _with(phone).post("/api/v1/auth/logoutall/").status_code == 204

    assert _with(laptop).get("/api/v1/me/").status_code == 401
    assert _with(phone).get("/api/v1/me/").status_code == 401
    assert _with(colleague).get("/api/v1/me/").status_code == 200
    assert not AuthToken.objects.filter(user=world.therapist).exists()


def test_sign_out_is_an_access_event_on_the_accounts_chain(world):
    token = _sign_in()["token"]
    _with(token).post("/api/v1/auth/logout/")
    _with(_sign_in()["token"]).post("/api/v1/auth/logoutall/")

    events = AccessEvent.objects.filter(actor_id=world.therapist.pk, action="sign_out").order_by("seq")
    assert [(e.chain_id, e.outcome, e.path) for e in events] == [
        (world.kent.pk, "allowed", "/api/v1/auth/logout/"),
        (world.kent.pk, "allowed", "/api/v1/auth/logoutall/"),
    ]


@pytest.mark.parametrize(
    ("header", "says"),
    [
        ("Bearer abc", "Bearer scheme"),
        ("Basic dGhlcmFwaXN0OnB3", "Basic scheme"),
        ("Token", "one space, and the token itself"),
        ("Token two parts", "one space, and the token itself"),
        ("Token not-a-token-we-issued", "Invalid or expired token"),
    ],
)
def test_a_wrong_scheme_or_a_malformed_token_header_is_a_401_that_says_which(world, header, says):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=header)

    response = client.get("/api/v1/sites/")

    assert response.status_code == 401
    assert response["Content-Type"].startswith("application/json")
    assert response["WWW-Authenticate"] == "Token"
    detail = response.json()["detail"]
    assert says in detail
    assert "not provided" not in detail


def test_a_header_that_is_not_ascii_is_a_401_not_a_500(world):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token caf\u00e9".encode().decode("latin-1"))

    response = client.get("/api/v1/sites/")

    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/admin/knox/authtoken/", "/admin/knox/authtoken/add/", "/admin/authtoken/tokenproxy/",
                                  "/admin/authtoken/token/"])  # fmt: skip
def test_no_admin_page_lists_or_issues_tokens(world, client, path):
    _sign_in()
    client.force_login(world.admin)

    assert client.get(path).status_code == 404
    index = client.get("/admin/").content.decode().lower()
    assert "auth token" not in index and "/admin/knox/" not in index
