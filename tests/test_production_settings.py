"""Production settings: they refuse to start without a secret, and Django's deployment checks find nothing."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _manage(*args: str, **environment: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY", "ALLOWED_HOSTS", "DJANGO_SETTINGS_MODULE")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.production", **environment)
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)


def _receipt_key() -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    return (
        Ed25519PrivateKey.generate()
        .private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        .decode("ascii")
    )


def test_check_deploy_prints_no_warnings_with_a_secret_hosts_and_the_receipt_and_log_keys_set():
    result = _manage(
        "check", "--deploy", SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="consent.example.nhs.uk",
        CONSENT_RECEIPT_SIGNING_KEY=_receipt_key(), ACCESS_LOG_SIGNING_KEY=_receipt_key(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    output = result.stdout + result.stderr
    assert "System check identified no issues" in output
    assert "WARNING" not in output and "?: (" not in output


def test_production_refuses_to_start_without_a_secret_key():
    result = _manage("check", ALLOWED_HOSTS="consent.example.nhs.uk")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_to_start_without_allowed_hosts():
    result = _manage("check", SECRET_KEY=secrets.token_urlsafe(64))
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_production_refuses_to_start_without_the_consent_receipt_key():
    # Every receipt is signed with it: without it each one would fail with a 500, so the checks that migrate
    # and gunicorn run first stop the start.
    for command in (("check",), ("check", "--deploy"), ("migrate", "--check")):
        result = _manage(*command, SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="consent.example.nhs.uk",
                         CONSENT_RECEIPT_SIGNING_KEY="")  # fmt: skip
        assert result.returncode != 0, command
        assert "consent.E001" in result.stderr and "CONSENT_RECEIPT_SIGNING_KEY" in result.stderr, command


def test_a_receipt_key_that_is_not_an_ed25519_key_is_refused_too():
    result = _manage("check", SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="consent.example.nhs.uk",
                     CONSENT_RECEIPT_SIGNING_KEY="not a key")  # fmt: skip
    assert result.returncode != 0
    assert "consent.E001" in result.stderr


def test_production_refuses_to_start_without_the_access_log_key():
    # Every access-log write signs its chain head with it: without it every access would fail closed.
    for command in (("check",), ("migrate", "--check")):
        result = _manage(*command, SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="consent.example.nhs.uk",
                         CONSENT_RECEIPT_SIGNING_KEY=_receipt_key(), ACCESS_LOG_SIGNING_KEY="")  # fmt: skip
        assert result.returncode != 0, command
        assert "consent.E002" in result.stderr and "ACCESS_LOG_SIGNING_KEY" in result.stderr, command
    result = _manage("check", SECRET_KEY=secrets.token_urlsafe(64), ALLOWED_HOSTS="consent.example.nhs.uk",
                     CONSENT_RECEIPT_SIGNING_KEY=_receipt_key(), ACCESS_LOG_SIGNING_KEY=_receipt_key(),
                     ACCESS_LOG_PUBLIC_KEYS="not a key")  # fmt: skip
    assert result.returncode != 0 and "consent.E002" in result.stderr
