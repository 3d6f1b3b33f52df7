"""System checks: production refuses to start without what it needs to keep its promises."""

from cryptography.exceptions import UnsupportedAlgorithm
from django.core.checks import Error, Tags, register
from django.core.exceptions import ImproperlyConfigured

from consent import keys, receipts
from consent.access import heads


@register(Tags.security)
def receipt_signing_key_check(app_configs, **kwargs):
    """In production, CONSENT_RECEIPT_SIGNING_KEY must hold an Ed25519 private key: every consent receipt is
    signed with it, and without it each receipt would fail. Run by `manage.py check`, by migrate (which
    `make serve-production` runs first) and by gunicorn before it serves (config/gunicorn.conf.py)."""
    if not receipts.in_production():
        return []
    try:
        receipts.signing_key()
    except (ImproperlyConfigured, ValueError, TypeError, UnsupportedAlgorithm) as missing:
        return [
            Error(
                f"CONSENT_RECEIPT_SIGNING_KEY: {missing}",
                hint="Set CONSENT_RECEIPT_SIGNING_KEY to the PEM of an Ed25519 private key (openssl genpkey -algorithm ed25519).",
                id="consent.E001",
            )
        ]
    return []


@register(Tags.security)
def access_log_key_check(app_configs, **kwargs):
    """In production, ACCESS_LOG_SIGNING_KEY must hold an Ed25519 private key: every write to the access log
    signs its chain head with it (consent.access.heads), and ACCESS_LOG_PUBLIC_KEYS, if set, must be Ed25519
    public keys. Without the key each access would fail closed."""
    if not keys.in_production():
        return []
    try:
        heads.trusted_keys()
    except (ImproperlyConfigured, ValueError, TypeError, UnsupportedAlgorithm) as missing:
        return [
            Error(
                f"ACCESS_LOG_SIGNING_KEY: {missing}",
                hint="Set ACCESS_LOG_SIGNING_KEY to the PEM of an Ed25519 private key (openssl genpkey -algorithm ed25519), "
                "kept outside the database and apart from the receipt key.",
                id="consent.E002",
            )
        ]
    return []
