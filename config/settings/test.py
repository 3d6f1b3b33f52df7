"""Settings for the pytest suite."""

from .base import *  # noqa: F401,F403
from .base import DATABASES, REST_FRAMEWORK

DEBUG = False
# Fast hashing: the suite creates many users.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Throttling is tested on its own; elsewhere it would make the suite depend on its own speed.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"user": None, "anon": None, "sign_in": None}}

if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # In memory, named so that pytest-django (which only recognises Django's own engine path) gives each
    # parallel worker its own database instead of deriving a file name from db.sqlite3.
    DATABASES["default"].setdefault("TEST", {})["NAME"] = ":memory:"
