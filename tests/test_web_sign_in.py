"""Signing in and out of the pages: Django's own views, the API's lockout, each role to its own start."""

import pytest
from django.test import Client

from tests.conftest import PASSWORD

STARTS = {"therapist": "/clients/", "lead": "/clients/", "dpo": "/dpo/alerts/", "reviewer": "/reports/",
          "work_coach": "/no-client-data/"}  # fmt: skip


@pytest.mark.parametrize("role", list(STARTS))
def test_each_role_signs_in_to_its_own_start(world, role):
    client = Client()
    response = client.post("/sign-in/", {"username": world.user(role).get_username(), "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == STARTS[role]
    assert response.status_code in (200, 403) if role == "work_coach" else response.status_code == 200


def test_wrong_passwords_are_refused_on_the_page_and_the_fifth_locks_the_account_as_the_api_does(world):
    client = Client()
    for _ in range(4):
        response = client.post("/sign-in/", {"username": "therapist", "password": "wrong"})
        assert response.status_code == 400
        assert "Enter a correct username and password" in response.content.decode()
    for password in ("wrong", PASSWORD):  # locked: even the right password is refused for now
        locked = client.post("/sign-in/", {"username": "therapist", "password": password})
        assert locked.status_code == 429
        assert "This account is locked for now" in locked.content.decode()
    assert client.get("/clients/").status_code == 302


def test_signing_out_ends_the_session(world):
    client = Client()
    client.post("/sign-in/", {"username": "therapist", "password": PASSWORD})
    assert client.get("/clients/").status_code == 200
    assert client.post("/sign-out/").status_code == 200
    response = client.get("/clients/")
    assert response.status_code == 302 and response["Location"].startswith("/sign-in/")


def test_a_page_asks_the_signed_out_to_sign_in_and_comes_back(world):
    response = Client().get(f"/clients/{world.referral.pk}/")
    assert response.status_code == 302 and response["Location"] == f"/sign-in/?next=/clients/{world.referral.pk}/"
