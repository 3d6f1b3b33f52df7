"""Throttling: the API per signed-in user, sign-in per address; each refusal a 429 in JSON that says when to retry.

The test settings turn throttles off (the suite must not depend on its own speed); here they are turned on
with small rates. DRF reads the rates into the throttle classes when they are imported, so the class
attribute is what is set.
"""

import pytest
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from consent.access.models import AccessEvent
from tests.conftest import PASSWORD, api_client


@pytest.fixture
def throttled(monkeypatch):
    monkeypatch.setattr(SimpleRateThrottle, "THROTTLE_RATES", {"user": "3/minute", "anon": "100/minute", "sign_in": "2/minute"})
    cache.clear()
    yield
    cache.clear()


def assert_throttled(response):
    assert response.status_code == 429, response.content[:300]
    assert response["Content-Type"].startswith("application/json")
    assert "throttled" in response.json()["detail"].lower()
    assert int(response["Retry-After"]) > 0


def test_it_throttles_the_api_per_user(world, throttled):
    therapist, lead = api_client(world.therapist), api_client(world.lead)
    for _ in range(3):
        assert therapist.get("/api/v1/sites/").status_code == 200
    assert_throttled(therapist.get("/api/v1/referrals/"))
    # Another user keeps their own allowance.
    assert lead.get("/api/v1/sites/").status_code == 200


def test_a_throttled_request_reads_no_client_data(world, throttled):
    therapist = api_client(world.therapist)
    for _ in range(3):
        therapist.get("/api/v1/sites/")
    events = AccessEvent.objects.count()
    assert_throttled(therapist.get(f"/api/v1/referrals/{world.referral.pk}/"))
    assert AccessEvent.objects.count() == events


WRONG = "not-the-password"


def sign_in(address: str, password: str = WRONG, forwarded_for: str | None = None):
    extra = {"REMOTE_ADDR": address}
    if forwarded_for:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return api_client().post("/api/v1/auth/token/", {"username": "therapist", "password": password}, format="json", **extra)


def test_it_throttles_sign_in_per_address(world, throttled):
    assert sign_in("10.0.0.1").status_code == 400
    assert sign_in("10.0.0.1", PASSWORD).status_code == 200
    assert_throttled(sign_in("10.0.0.1", PASSWORD))
    # Another address is not held back by the first one's attempts.
    assert sign_in("10.0.0.2", PASSWORD).status_code == 200


def test_a_made_up_forwarded_for_header_gets_no_fresh_allowance(world, throttled):
    for n in range(2):
        assert sign_in("10.0.0.3", forwarded_for=f"192.0.2.{n}").status_code == 400
    assert_throttled(sign_in("10.0.0.3", PASSWORD, forwarded_for="192.0.2.99"))


def test_the_test_settings_leave_throttling_off_elsewhere(world):
    cache.clear()
    therapist = api_client(world.therapist)
    assert all(therapist.get("/api/v1/sites/").status_code == 200 for _ in range(10))
