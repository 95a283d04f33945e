"""Settings for Aethon, driven by the environment.

Development (the default) runs on an embedded SQLite database and a filesystem Celery broker,
so `make run` needs no server. Production (AETHON_ENV=production) insists on a secret key and
allowed hosts from the environment and turns every HTTPS protection on.
"""

import os
import secrets
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("AETHON_VAR_DIR", BASE_DIR / "var"))
VAR_DIR.mkdir(parents=True, exist_ok=True)


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


PRODUCTION = os.environ.get("AETHON_ENV", "development") == "production"
DEBUG = False if PRODUCTION else env_bool("DJANGO_DEBUG", True)


def _secret_key() -> str:
    key = os.environ.get("DJANGO_SECRET_KEY", "")
    if key:
        return key
    if PRODUCTION:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when AETHON_ENV=production.")
    # A per-install key kept out of the repository, so no two development installs share one.
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "" if PRODUCTION else "127.0.0.1,localhost")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured("DJANGO_ALLOWED_HOSTS must be set when AETHON_ENV=production.")
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_htmx",
    "simple_history",
    "django_celery_beat",
    "ninja",  # its own swagger template loads local assets, no CDN and no inline script
    "axes",
    "planner",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "simple_history.middleware.HistoryRequestMiddleware",
    # Last, as django-axes asks: it turns a refused sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "aethon.urls"
WSGI_APPLICATION = "aethon.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.csp",
                "planner.accounts.sso.sso_context",
            ],
        },
    },
]

# Django's widget templates, with the common widgets written in Python (same HTML, faster).
FORM_RENDERER = "planner.web.form_renderer.FormRenderer"

_sqlite = {
    "ENGINE": "django.db.backends.sqlite3",
    "NAME": VAR_DIR / "aethon.sqlite3",
    "OPTIONS": {
        # WAL + immediate transactions let the web process and the Celery worker share the file
        # without 'database is locked' errors on concurrent writes.
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    },
}
DATABASES = {
    "default": (
        dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60, conn_health_checks=True)
        if os.environ.get("DATABASE_URL")
        else _sqlite
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in throttling (django-axes): the lockout backend goes first so a locked-out user is refused
# before the password is even checked. Failures count per username and address together and per
# username alone, so guesses spread over many addresses still lock the account.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("AETHON_LOGIN_FAILURE_LIMIT", 20))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("AETHON_LOGIN_COOLOFF_MINUTES", 15)))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "username"]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/lockout.html"
AXES_HTTP_RESPONSE_CODE = 429
# The address is REMOTE_ADDR (axes' default), never X-Forwarded-For: a forged header would give a
# guesser a fresh address per attempt. Behind a proxy the per-username count still holds.

# An invitation link works this many days; a password-reset link for as many hours as Django's
# default (3 days) unless set.
AETHON_INVITE_DAYS = int(os.environ.get("AETHON_INVITE_DAYS", 7))
PASSWORD_RESET_TIMEOUT = int(os.environ.get("AETHON_PASSWORD_RESET_HOURS", 72)) * 3600

# Single sign-on by OpenID Connect: off unless OIDC_RP_CLIENT_ID is set (README lists the
# variables). Users are matched by verified email; new accounts only if allowed.
AETHON_OIDC_ENABLED = bool(os.environ.get("OIDC_RP_CLIENT_ID"))
AETHON_OIDC_NAME = os.environ.get("AETHON_OIDC_NAME", "single sign-on")
if AETHON_OIDC_ENABLED:
    INSTALLED_APPS.append("mozilla_django_oidc")
    AUTHENTICATION_BACKENDS.append("planner.accounts.sso.EmailMatchingBackend")
    OIDC_RP_CLIENT_ID = os.environ["OIDC_RP_CLIENT_ID"]
    OIDC_RP_CLIENT_SECRET = os.environ.get("OIDC_RP_CLIENT_SECRET", "")
    OIDC_RP_SIGN_ALGO = os.environ.get("OIDC_RP_SIGN_ALGO", "RS256")
    OIDC_RP_SCOPES = os.environ.get("OIDC_RP_SCOPES", "openid email profile")
    OIDC_OP_ISSUER = os.environ.get("OIDC_OP_ISSUER", "")
    OIDC_OP_AUTHORIZATION_ENDPOINT = os.environ["OIDC_OP_AUTHORIZATION_ENDPOINT"]
    OIDC_OP_TOKEN_ENDPOINT = os.environ["OIDC_OP_TOKEN_ENDPOINT"]
    OIDC_OP_USER_ENDPOINT = os.environ["OIDC_OP_USER_ENDPOINT"]
    OIDC_OP_JWKS_ENDPOINT = os.environ.get("OIDC_OP_JWKS_ENDPOINT")
    OIDC_CREATE_USER = env_bool("AETHON_OIDC_CREATE_USERS", False)
    OIDC_USE_PKCE = True
    OIDC_TIMEOUT = float(os.environ.get("OIDC_TIMEOUT", 10))
    LOGIN_REDIRECT_URL_FAILURE = "/accounts/login/?sso=failed"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "planner:project_list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = os.environ.get("AETHON_TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "whitenoise.storage.CompressedManifestStaticFilesStorage"
            if PRODUCTION
            else "django.contrib.staticfiles.storage.StaticFilesStorage"
        )
    },
}
MEDIA_ROOT = Path(os.environ.get("AETHON_MEDIA_ROOT", VAR_DIR / "media"))

# The console default suits development only: planner.checks refuses it in production.
EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
EMAIL_HOST = os.environ.get("DJANGO_EMAIL_HOST", "localhost")
EMAIL_PORT = int(os.environ.get("DJANGO_EMAIL_PORT", 25))
EMAIL_HOST_USER = os.environ.get("DJANGO_EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("DJANGO_EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("DJANGO_EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("DJANGO_EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "aethon@localhost")

# Security. Production turns every HTTPS protection on; `manage.py check --deploy` is clean.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True  # htmx sends the token from the page (hx-headers), not the cookie
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# No inline script anywhere: behaviour lives in static/js and is wired by data attributes, so an
# injected <script> or onerror= never runs. Inline <style> only with this response's nonce (the
# runbook preview, whose stylesheets must be inline for the PDF).
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [CSP.SELF],
}
if PRODUCTION:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
    SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", 31536000))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    if env_bool("DJANGO_BEHIND_TLS_PROXY", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Celery: a filesystem broker by default so that no server is needed; set CELERY_BROKER_URL to
# redis://... or amqp://... to run workers on several machines.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("queue", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
    }
CELERY_TASK_IGNORE_RESULT = True  # progress and results live in our own tables
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)

# Validation runs (planner.validation): secrets at rest, the outbound guard, run liveness.
# Comma-separated Fernet keys; the first encrypts, all decrypt (rotate_secret_keys re-encrypts).
AETHON_SECRET_KEYS = env_list("AETHON_SECRET_KEYS", "")
if PRODUCTION and not AETHON_SECRET_KEYS:
    raise ImproperlyConfigured("AETHON_SECRET_KEYS must be set when AETHON_ENV=production.")
# Hosts/IPs/CIDRs connectors may reach although private, loopback or link-local.
# Absolute links in emails (sign-off requests, alerts) point here.
AETHON_BASE_URL = os.environ.get("AETHON_BASE_URL", "http://127.0.0.1:8000").rstrip("/")

AETHON_OUTBOUND_ALLOW_HOSTS = env_list("AETHON_OUTBOUND_ALLOW_HOSTS", "")
AETHON_CONNECTOR_GUARD = {
    "connect_timeout": float(os.environ.get("AETHON_CONNECT_TIMEOUT", 5)),
    "read_timeout": float(os.environ.get("AETHON_READ_TIMEOUT", 30)),
    "total_timeout": float(os.environ.get("AETHON_TOTAL_TIMEOUT", 300)),
    "max_response_bytes": int(os.environ.get("AETHON_MAX_RESPONSE_BYTES", 50 * 1024 * 1024)),
    "max_file_bytes": int(os.environ.get("AETHON_MAX_FILE_BYTES", 200 * 1024 * 1024)),
}
# Uploaded files are checked against these before any parser opens them (planner/filesafety.py):
# files read by validation runs, and mapping spreadsheets (rows include the header).
AETHON_FILE_LIMITS = {
    name: int(os.environ.get(f"AETHON_FILE_{name.upper()}", default))
    for name, default in {
        "max_uncompressed_bytes": 200 * 1024 * 1024,
        "max_compression_ratio": 100,
        "max_parts": 1_000,
        "max_rows": 1_000_000,
        "max_columns": 1_000,
        "max_cells": 5_000_000,
        "max_cell_chars": 32_767,
        "max_line_bytes": 1024 * 1024,
        "max_json_depth": 64,
    }.items()
}
AETHON_MAPPING_IMPORT_LIMITS = {
    "max_rows": int(os.environ.get("AETHON_MAPPING_IMPORT_MAX_ROWS", 20_000)),
    "max_columns": int(os.environ.get("AETHON_MAPPING_IMPORT_MAX_COLUMNS", 100)),
}
AETHON_RUN_HEARTBEAT_SECONDS = float(os.environ.get("AETHON_RUN_HEARTBEAT_SECONDS", 5))
AETHON_RUN_STALE_SECONDS = float(os.environ.get("AETHON_RUN_STALE_SECONDS", 90))
# Service levels: raw points older than this are rolled up to hours; a window must be measured
# over this share of its length before its compliance reads "met".
AETHON_SLO_ROLLUP_AFTER_DAYS = float(os.environ.get("AETHON_SLO_ROLLUP_AFTER_DAYS", 3))
AETHON_SLO_MIN_COVERAGE_PCT = float(os.environ.get("AETHON_SLO_MIN_COVERAGE_PCT", 90))
AETHON_RUN_TIME_LIMIT = int(os.environ.get("AETHON_RUN_TIME_LIMIT", 6 * 3600))
# Rows per chunk when a run reads SQL systems in key order: the worker holds about two chunks
# per side, so this bounds its memory, whatever the size of the tables. Each chunk row costs
# the worker about 1.7 KB at its peak (the COPY text, its parse, the mapped and compared
# frames, what the allocators keep between chunks): 20,000 rows keep a 1 M-row run under
# 300 MB, for the same CPU time as 50,000 (benchmarks/README.md).
AETHON_RUN_CHUNK_ROWS = int(os.environ.get("AETHON_RUN_CHUNK_ROWS", 20_000))
# Where a run sorts a CSV file or an API's records through disk (planner/runs/spill.py): about
# the size of the data for the length of the run. Empty: the system's temporary directory
# (choose a disk, not a RAM-backed /tmp, for large files).
AETHON_RUN_SPILL_DIR = os.environ.get("AETHON_RUN_SPILL_DIR", "")
# With a value, key ranges are compared inside the databases (checksums) where the mapping
# compiles to SQL, bisected down to ranges of at most this many rows, which are read. Off (0)
# by default: next to the database, reading every row (COPY + polars) measured faster than
# the checksum queries, even for identical tables (benchmarks/README.md); it pays where the
# link to the database is slow or its CPU is idle.
AETHON_RUN_FETCH_ROWS = int(os.environ.get("AETHON_RUN_FETCH_ROWS", 0))
# A run on SQL systems whose source holds more rows (with a whole key) than this is split into
# key ranges of about this many rows, compared by as many workers as are free (0: never split).
# Below it a run stays one task: a split costs a count, a boundary query and a merge.
AETHON_RUN_PARTITION_ROWS = int(os.environ.get("AETHON_RUN_PARTITION_ROWS", 1_000_000))
# A key range whose worker was lost (killed, out of memory) is compared again, up to this many
# attempts in all; then the run fails with the reason.
AETHON_RUN_PARTITION_ATTEMPTS = int(os.environ.get("AETHON_RUN_PARTITION_ATTEMPTS", 3))
# Two tables of one PostgreSQL database are compared by a join inside it, which sends only
# the rows that may differ (planner/runs/joined.py); 0 reads every row instead.
AETHON_RUN_JOIN = os.environ.get("AETHON_RUN_JOIN", "1") not in ("0", "false", "no", "")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("AETHON_LOG_LEVEL", "INFO")},
}
