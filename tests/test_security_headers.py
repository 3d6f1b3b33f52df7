"""Security headers on every kind of response, success or error, API or not; HSTS and secure cookies in production.

The real server run of `make serve-production` (test_production_serving.py) checks the same over a socket
with the production settings; here every kind of answer is covered in process.
"""

import importlib
import sys

import pytest
from django.test import override_settings

from tests.conftest import api_client

ALWAYS = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}


def assert_security_headers(response):
    for name, value in ALWAYS.items():
        assert response.get(name) == value, (name, response.status_code, dict(response.headers))
    policy = response["Content-Security-Policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy and "base-uri 'self'" in policy
    assert "camera=()" in response["Permissions-Policy"]


def requests_of_every_kind(world):
    """(label, user, method, path, body, content type): successes and each kind of error."""
    referral = f"/api/v1/referrals/{world.referral.pk}/"
    return [
        ("list", "therapist", "GET", "/api/v1/referrals/", None, None),
        ("detail", "therapist", "GET", referral, None, None),
        ("created", "therapist", "POST", f"{referral}voluntariness-checks/",
         '{"checked_at": "2026-09-14T10:10:00Z", "stage": "intake", "told_attendance_required": false,'
         ' "sanction_mentioned": false, "feels_free_to_stop": true, "goals_set_by_client": true,'
         ' "employment_goal_raised_by": "nobody"}', "application/json"),
        ("400", "therapist", "POST", f"{referral}withdrawals/", "{}", "application/json"),
        ("401", None, "GET", "/api/v1/referrals/", None, None),
        ("403", "work_coach", "GET", "/api/v1/referrals/", None, None),
        ("404 firewall", "work_coach", "GET", referral, None, None),
        ("404 unrouted", "therapist", "GET", "/api/v1/nothing-here/", None, None),
        ("405", "therapist", "DELETE", referral, None, None),
        ("415", "therapist", "POST", f"{referral}withdrawals/", "reason=other", "text/plain"),
        ("schema", None, "GET", "/api/schema/", None, None),
        ("docs", None, "GET", "/api/docs/", None, None),
        ("admin", None, "GET", "/admin/login/", None, None),
        ("site 404", None, "GET", "/no-such-page/", None, None),
    ]  # fmt: skip


LABELS = ["list", "detail", "created", "400", "401", "403", "404 firewall", "404 unrouted", "405", "415", "schema", "docs",
          "admin", "site 404"]  # fmt: skip


@pytest.mark.parametrize("label", LABELS)
def test_every_response_carries_the_security_headers(world, label):
    _, user, method, path, body, content_type = next(r for r in requests_of_every_kind(world) if r[0] == label)
    client = api_client(world.user(user) if user else None)
    response = client.generic(method, path, body or "", content_type=content_type or "application/octet-stream")
    assert response.status_code < 500
    assert_security_headers(response)


@pytest.mark.parametrize("path", ["/api/v1/nothing-here/", "/api/v1/referrals/not-a-uuid/extra/"])
def test_an_unrouted_api_path_is_a_json_404_not_an_html_page(world, path):
    response = api_client(world.therapist).get(path)
    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert "/api/docs/" in response.json()["detail"]
    assert response["X-Request-ID"]


def test_client_data_is_never_cached(world):
    response = api_client(world.therapist).get(f"/api/v1/referrals/{world.referral.pk}/")
    assert response.status_code == 200
    assert response["Cache-Control"] == "no-store"


def test_hsts_is_sent_over_https_with_the_production_values(world):
    with override_settings(SECURE_HSTS_SECONDS=31536000, SECURE_HSTS_INCLUDE_SUBDOMAINS=True, SECURE_HSTS_PRELOAD=True):
        response = api_client(world.therapist).get("/api/v1/me/", secure=True)
    assert response["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains; preload"
    assert_security_headers(response)


def test_the_production_settings_make_cookies_secure_and_http_only(monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "a-production-secret-for-this-test-only-" + "x" * 30)
    monkeypatch.setenv("ALLOWED_HOSTS", "consent.example.nhs.uk")
    monkeypatch.delitem(sys.modules, "config.settings.production", raising=False)
    production = importlib.import_module("config.settings.production")
    monkeypatch.delitem(sys.modules, "config.settings.production")
    assert production.SESSION_COOKIE_SECURE and production.CSRF_COOKIE_SECURE
    assert production.SESSION_COOKIE_HTTPONLY and production.CSRF_COOKIE_HTTPONLY
    assert production.SECURE_HSTS_SECONDS >= 31536000 and production.SECURE_HSTS_INCLUDE_SUBDOMAINS
    assert production.SECURE_SSL_REDIRECT and production.DEBUG is False
