"""Ed25519 keys held outside the database: the consent-receipt key and the access-log key.

Each is a private key in PEM (PKCS#8) from a setting read from the environment, required in production. In
development, if the setting is empty, a key is generated once into a git-ignored file, so what was signed on
a developer's machine keeps verifying after a restart. Nothing about a key is ever stored in the database
except its public key id: whoever can write the database still cannot sign.
"""

import hashlib
import os
from functools import lru_cache

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

PRODUCTION_SETTINGS = "config.settings.production"


def in_production() -> bool:
    return (
        os.environ.get("DJANGO_SETTINGS_MODULE", "") == PRODUCTION_SETTINGS
        or getattr(settings, "SETTINGS_MODULE", "") == PRODUCTION_SETTINGS
    )


def load_private_key(pem: str | bytes, setting: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM, or ImproperlyConfigured naming the setting it came from."""
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ImproperlyConfigured(f"{setting} must be an Ed25519 private key in PEM.")
    return key


def _development_key(path: str, setting: str) -> Ed25519PrivateKey:
    """The development key at `path`, created on first use (readable by its owner only)."""
    try:
        with open(path, "rb") as existing:
            return load_private_key(existing.read(), setting)
    except FileNotFoundError:
        pass
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        # O_EXCL: two processes starting together must not each write a different key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, "rb") as existing:
            return load_private_key(existing.read(), setting)
    with os.fdopen(descriptor, "wb") as new:
        new.write(pem)
    return load_private_key(pem, setting)


@lru_cache(maxsize=8)
def configured_key(configured: str, key_file: str, production: bool, setting: str) -> Ed25519PrivateKey:
    """The key a setting holds; in development without one, the key of the git-ignored file."""
    if configured:
        # Environment variables often carry PEM with literal "\n"; accept both.
        return load_private_key(configured.replace("\\n", "\n"), setting)
    if production:
        raise ImproperlyConfigured(
            f"{setting} must be set in production: an Ed25519 private key in PEM (openssl genpkey -algorithm ed25519)."
        )
    return _development_key(key_file, setting)


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def key_id(pem: str) -> str:
    """A public key's id: the SHA-256 of its PEM, in hex."""
    return hashlib.sha256(pem.encode("ascii")).hexdigest()


def public_keys_from(text: str) -> list[Ed25519PublicKey]:
    """Every Ed25519 public key in a text of concatenated PEM blocks (literal "\\n" accepted)."""
    text = (text or "").replace("\\n", "\n")
    end = "-----END PUBLIC KEY-----"
    keys = []
    for block in text.split(end):
        if "-----BEGIN PUBLIC KEY-----" not in block:
            continue
        key = serialization.load_pem_public_key((block.strip() + "\n" + end + "\n").encode("ascii"))
        if not isinstance(key, Ed25519PublicKey):
            raise ImproperlyConfigured("Every trusted earlier log key must be an Ed25519 public key in PEM.")
        keys.append(key)
    if text.strip() and not keys:
        raise ImproperlyConfigured("Trusted earlier log keys must be Ed25519 public keys in PEM (-----BEGIN PUBLIC KEY-----).")
    return keys
