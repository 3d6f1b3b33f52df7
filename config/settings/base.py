"""Settings shared by every environment; values that differ come from the environment."""

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    return os.environ.get(name, str(default)).strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-key-do-not-use-in-production")
DEBUG = env_bool("DEBUG", False)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "127.0.0.1,localhost,testserver")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # Tokens hashed at rest, each with an expiry, one per sign-in (device), with sign-out: django-rest-knox.
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "colocation",
    "consent",
    "consent.access",
    "consent.reports",
    "api",
    "web",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "api.middleware.SecurityHeadersMiddleware",
    # Serves the Swagger UI and Redoc assets from the app itself, with or without DEBUG: no CDN, no internet.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's, saving the session on every request (30 minutes idle) but never on a 503 (database unavailable).
    "api.sessions.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "api.middleware.RequestIdMiddleware",
    # A database that cannot be reached, from opening the request's transaction to committing it: 503, Retry-After.
    "api.middleware.DatabaseUnavailableMiddleware",
    # A refusal's denied events, written after the refused request rolled back (docs/architecture.md, "Transactions").
    "api.middleware.RefusalLogMiddleware",
    # AxesMiddleware last, as django-axes asks.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "colocation.User"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# SQLite file by default so `make run` needs nothing installed; DATABASE_URL selects PostgreSQL.
DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
# Every request is one transaction: the access events of a request commit with its answer or not at all; a
# refused request rolls back whole and its refusal is logged after it (docs/architecture.md, "Transactions").
DATABASES["default"]["ATOMIC_REQUESTS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The same backend, knowing SQLite's real parameter limit: a bulk insert stays one statement.
    DATABASES["default"]["ENGINE"] = "config.db.sqlite3"
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # A busy timeout so concurrent writers queue instead of failing at once.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    # Write-ahead logging: a commit appends the changed pages to the log once, where the default rollback
    # journal first copies every page it changes and syncs three files. Every request that shows client data
    # writes its access events, so this is most requests' commit (about 3 of the 11 ms CPU a list's 50 events
    # cost, measured at 100,000 referrals). Still synchronous=FULL: a commit is on disk before the answer goes.
    DATABASES["default"]["OPTIONS"]["init_command"] = "PRAGMA journal_mode=WAL"

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    # Axes first so a locked-out account is refused before the password is checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "Europe/London"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# Collected for production only (see production.py); elsewhere WhiteNoise reads the apps' folders.
STATIC_ROOT = None
# Find files in the apps' static folders directly, so tests and `make run` need no collectstatic.
WHITENOISE_USE_FINDERS = True

# Request bodies are small JSON documents; anything larger is refused with a 400/413.
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 64 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    # DRF's default is AllowAny; deny by default here.
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "api.pagination.Pagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # drf-spectacular's schema plus the error answers each operation can give (tests/test_schemathesis.py).
    "DEFAULT_SCHEMA_CLASS": "api.schema.AutoSchema",
    # JSON bodies only: one media type per request body, as the schema says (api.fields.JSONParser answers a
    # too-deeply nested body with a 400 instead of a 500). A form or multipart body is a 415.
    "DEFAULT_PARSER_CLASSES": ["api.fields.JSONParser"],
    # How many proxies in front set X-Forwarded-For; throttles believe only that many hops of it. 0 keys on
    # the connecting address (unset, DRF would key on the whole header, which a client can write).
    "NUM_PROXIES": env_int("NUM_PROXIES", 0),
    "EXCEPTION_HANDLER": "api.errors.exception_handler",
    # OPTIONS on any route: name, renderers, parsers, as JSON whatever format was negotiated (never a 500).
    "DEFAULT_METADATA_CLASS": "api.metadata.Metadata",
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("THROTTLE_USER_RATE", "2000/hour"),
        "anon": env_str("THROTTLE_ANON_RATE", "200/hour"),
        "sign_in": env_str("THROTTLE_SIGN_IN_RATE", "30/minute"),
    },
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Co-location consent tracker API",
    "DESCRIPTION": (
        "Self-referrals to talking therapies at clinics co-located with job centres: explicit, voluntary consent; "
        "a data firewall that no benefits-agency account can cross; a tamper-evident access log for "
        "data-protection officers; per-pilot compliance reports with small numbers suppressed.\n\n"
        "Sign in with `POST /api/v1/auth/token/` and send `Authorization: Token <token>`. Bodies are JSON "
        "(`Content-Type: application/json`); a field or query parameter an operation does not know is a 400 "
        "naming those it accepts. Every error is JSON in the `Error` shape."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Served from the app itself so the docs work with no internet.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Operation ids and tags without the common prefix: referrals_list, not v1_referrals_list.
    "SCHEMA_PATH_PREFIX": "/api/v1/",
    "COMPONENT_SPLIT_REQUEST": True,
    # Nullable enums are written by api.schema.postprocess in a form strict OpenAPI 3.0 validators accept.
    "ENUM_ADD_EXPLICIT_BLANK_NULL_CHOICE": False,
    "ENUM_NAME_OVERRIDES": {
        "ReferralStatusEnum": "consent.models.ReferralStatus",
        "PathwayEnum": "consent.models.Pathway",
        "HowHeardEnum": "consent.models.HowHeard",
        "SourceOfReferralEnum": "api.referrals.SOURCE_OF_REFERRAL_CHOICES",
        "ConsentMethodEnum": "consent.models.ConsentMethod",
        "ConsentScopeEnum": "consent.models.ConsentScope",
        "WithdrawalReasonEnum": "consent.models.WithdrawalReason",
        "CheckStageEnum": "consent.models.CheckStage",
        "GoalRaisedByEnum": "consent.models.GoalRaisedBy",
        "DischargeReasonEnum": "consent.models.DischargeReason",
        "OrganisationKindEnum": "colocation.models.OrganisationKind",
        "RoleEnum": "colocation.models.Role",
        "VenueKindEnum": "colocation.models.VenueKind",
        "CadenceEnum": "colocation.models.Cadence",
        "AccessActionEnum": "consent.access.models.Action",
        "AccessOutcomeEnum": "consent.access.models.Outcome",
        "DispositionEnum": "consent.access.models.Disposition",
        "VoluntarinessStatusEnum": "api.referrals.VOLUNTARINESS_CHOICES",
        "ReferralAccessEnum": "api.referrals.ACCESS_CHOICES",
        "AlertReasonEnum": "api.access_log.ALERT_REASON_CHOICES",
        "PrincipleEnum": "api.report_outputs.PRINCIPLE_CHOICES",
        "VerdictEnum": "api.report_outputs.VERDICT_CHOICES",
    },
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "api.schema.postprocess"],
}

# API tokens (django-rest-knox). Each sign-in issues a new token (one per device); only its SHA-512 digest is
# stored. A token lapses after TOKEN_IDLE_MINUTES without use, and TOKEN_MAX_HOURS after sign-in whatever its use
# (a clinic day); POST /api/v1/auth/logout/ ends one token, /api/v1/auth/logoutall/ every token of the account.
REST_KNOX = {
    "AUTH_HEADER_PREFIX": "Token",
    "TOKEN_TTL": timedelta(minutes=env_int("TOKEN_IDLE_MINUTES", 30)),
    "AUTO_REFRESH": True,
    "AUTO_REFRESH_MAX_TTL": timedelta(hours=env_int("TOKEN_MAX_HOURS", 10)),
    # Refreshed at most once a minute, so a busy client costs one write a minute, not one per request.
    "MIN_REFRESH_INTERVAL": 60,
    "TOKEN_LIMIT_PER_USER": env_int("TOKEN_LIMIT_PER_USER", 10),
}

# Sessions (the browsable API and the admin) end after 30 minutes without a request.
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_MINUTES", 30) * 60
SESSION_SAVE_EVERY_REQUEST = True

# django-axes: 5 failures in a row lock out one username from one address, for AXES_COOLOFF_MINUTES. Keyed on
# both together, so nobody can lock someone else out from their own address: a stranger guessing the DPO's
# password from elsewhere locks out only themselves. Guessing many passwords from many addresses is slowed by
# the per-address "sign_in" throttle below, and every failure is an access event the DPO sees.
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=env_int("AXES_COOLOFF_MINUTES", 30))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_VERBOSE = False
# The API answers a lockout in its own JSON shape, not axes' HTML page.
AXES_LOCKOUT_CALLABLE = "api.lockout.lockout_response"
# The address a lockout is keyed on: the one the proxies in front saw (NUM_PROXIES), as the throttles believe it.
AXES_CLIENT_IP_CALLABLE = "api.lockout.client_address"

# django-guardian: no anonymous user row; our own firewall decides everything.
ANONYMOUS_USER_NAME = None
GUARDIAN_RAISE_403 = False

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Access-log alerting: more distinct clients than this opened by one user within an hour raises an alert.
ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR = env_int("ACCESS_ALERT_DISTINCT_CLIENTS_PER_HOUR", 30)
# This many compliance-report requests (reads, exports, snapshots) by one reader within the window raise one
# alert for the DPOs of the pilot's providers: asking for many reports is how reports are differenced.
REPORT_BURST_REQUESTS = env_int("REPORT_BURST_REQUESTS", 20)
REPORT_BURST_MINUTES = env_int("REPORT_BURST_MINUTES", 10)

# Ed25519 private key (PEM) that signs consent receipts. Production reads it from the environment;
# development generates one per process (see consent.receipts).
CONSENT_RECEIPT_SIGNING_KEY = env_str("CONSENT_RECEIPT_SIGNING_KEY")
CONSENT_RECEIPT_KEY_FILE = env_str("CONSENT_RECEIPT_KEY_FILE", str(BASE_DIR / ".consent-receipt-key.pem"))

# Ed25519 private key (PEM) that signs the access log's chain heads (consent.access.heads): held outside the
# database, so a chain rewritten with database access alone fails verification. Production reads it from the
# environment; development generates one into a git-ignored file. ACCESS_LOG_PUBLIC_KEYS holds the public keys
# (concatenated PEM) of earlier log keys, still trusted for heads they signed, after a rotation.
ACCESS_LOG_SIGNING_KEY = env_str("ACCESS_LOG_SIGNING_KEY")
ACCESS_LOG_KEY_FILE = env_str("ACCESS_LOG_KEY_FILE", str(BASE_DIR / ".access-log-key.pem"))
ACCESS_LOG_PUBLIC_KEYS = env_str("ACCESS_LOG_PUBLIC_KEYS")
# How many processes verify one long chain at once (consent.access.log._walk_stretches), each over its own
# connection; 1 walks every chain in the calling process. Hashing an event is Python work under the GIL, so only
# processes spread it over cores, and each keeps a PostgreSQL backend busy formatting rows as well. 2 suits the
# smallest machine the service runs on (2 cores, shared with the database): about twice the events a second of
# one process at 1M referrals. More workers than the cores left free only adds switching, and each holds a
# database connection for as long as the walk lasts.
ACCESS_LOG_VERIFY_WORKERS = env_int("ACCESS_LOG_VERIFY_WORKERS", 2)

# Version recorded in compliance-report snapshots.
CODE_VERSION = env_str("CODE_VERSION", "")

# Talking-therapies records: NHS Records Management Code of Practice keeps adult mental-health
# records 20 years after the episode ends. Configurable.
RETENTION_YEARS_AFTER_DISCHARGE = env_int("RETENTION_YEARS_AFTER_DISCHARGE", 20)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
CONTENT_SECURITY_POLICY = env_str(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'self'",
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "WARNING")},
}
