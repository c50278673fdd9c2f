"""Settings of the metaserver, read only from environment variables.

Every value goes through the typed helpers of `shared.env`, so junk fails at start
with the variable's name. There are no per-environment settings files: production,
the embedded `voxelhub up` and the tests differ only in their environment.

Secrets: `VOXELHUB_SECRET_KEY` (or `VOXELHUB_SECRET_KEY_FILE`) is required unless
`VOXELHUB_DEBUG` or `VOXELHUB_EMBEDDED` is on, or the process runs under pytest
(pytest sets `PYTEST_VERSION` before any plugin loads these settings). In those
cases a random per-process key is used: it is never guessable, it only means that
sessions do not survive a restart.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url

from shared.env import (
    SettingError,
    env_bool,
    env_int,
    env_list,
    env_path,
    env_str,
)

BASE_DIR = Path(__file__).resolve().parent.parent

VOXELHUB_HOME = env_path("VOXELHUB_HOME", "./data").resolve()
DEBUG = env_bool("VOXELHUB_DEBUG", False)
VOXELHUB_EMBEDDED = env_bool("VOXELHUB_EMBEDDED", False)
VOXELHUB_TESTING = bool(os.environ.get("PYTEST_VERSION"))
VOXELHUB_HTTPS = env_bool("VOXELHUB_HTTPS", False)

SECRET_KEY = env_str("VOXELHUB_SECRET_KEY")
if not SECRET_KEY:
    if not (DEBUG or VOXELHUB_EMBEDDED or VOXELHUB_TESTING):
        raise SettingError(
            "VOXELHUB_SECRET_KEY must be set (50+ random characters) unless "
            "VOXELHUB_DEBUG or VOXELHUB_EMBEDDED is on"
        )
    SECRET_KEY = "ephemeral-" + secrets.token_urlsafe(48)

ALLOWED_HOSTS = env_list("VOXELHUB_ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("VOXELHUB_CSRF_TRUSTED_ORIGINS")
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise SettingError(
            "VOXELHUB_CSRF_TRUSTED_ORIGINS: each origin needs a scheme, "
            f"like https://example.org, got {_origin!r}"
        )

# redis://..., amqp://... or empty for the in-process broker of the embedded mode.
VOXELHUB_BROKER_URL = env_str("VOXELHUB_BROKER_URL")
if VOXELHUB_BROKER_URL and not VOXELHUB_BROKER_URL.startswith(
    ("redis://", "rediss://", "amqp://", "amqps://")
):
    raise SettingError(
        "VOXELHUB_BROKER_URL must start with redis://, rediss://, amqp:// or "
        f"amqps://, or be empty, got {VOXELHUB_BROKER_URL.split('://')[0]!r}"
    )

# A datastore without a heartbeat for this long is shown as unreachable.
VOXELHUB_DATASTORE_STALE_SECONDS = env_int(
    "VOXELHUB_DATASTORE_STALE_SECONDS", 30, minimum=1
)

# Links in emails (job ended) point here.
VOXELHUB_PUBLIC_URL = env_str("VOXELHUB_PUBLIC_URL", "http://127.0.0.1:8000")
# Email: printed to the console unless an SMTP host is set.
EMAIL_HOST = env_str("VOXELHUB_EMAIL_HOST")
EMAIL_BACKEND = env_str(
    "VOXELHUB_EMAIL_BACKEND",
    "django.core.mail.backends.smtp.EmailBackend"
    if EMAIL_HOST
    else "django.core.mail.backends.console.EmailBackend",
)
EMAIL_PORT = env_int("VOXELHUB_EMAIL_PORT", 587, minimum=1)
EMAIL_HOST_USER = env_str("VOXELHUB_EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("VOXELHUB_EMAIL_HOST_PASSWORD")  # or ..._FILE
EMAIL_USE_TLS = env_bool("VOXELHUB_EMAIL_USE_TLS", True)
EMAIL_TIMEOUT = env_int("VOXELHUB_EMAIL_TIMEOUT_SECONDS", 10, minimum=1)
DEFAULT_FROM_EMAIL = env_str("VOXELHUB_DEFAULT_FROM_EMAIL", "voxelhub@localhost")


def _database() -> dict[str, Any]:
    default_url = f"sqlite:///{VOXELHUB_HOME / 'metaserver.sqlite3'}"
    url = env_str("DATABASE_URL", default_url)
    try:
        config: dict[str, Any] = dict(
            dj_database_url.parse(
                url,
                conn_max_age=env_int("VOXELHUB_DB_CONN_MAX_AGE", 60, minimum=0),
                conn_health_checks=True,
            )
        )
    except ValueError as e:
        # Never echo the URL: it may carry a password.
        raise SettingError(f"DATABASE_URL is not a valid database URL: {e}") from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # The embedded mode runs the web server, the datastore reports and the
        # worker against one file: WAL and IMMEDIATE transactions avoid "database
        # is locked" errors under that light concurrency.
        config["CONN_MAX_AGE"] = 0
        config["CONN_HEALTH_CHECKS"] = False
        config["OPTIONS"] = {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    elif config["ENGINE"].startswith("django.db.backends.postgresql"):
        # The visibility predicate of a large listing passes PostgreSQL's JIT cost
        # threshold; compiling then takes ~55 ms for a query that runs in ~10 ms.
        options = config.setdefault("OPTIONS", {})
        options["options"] = (options.get("options", "") + " -c jit=off").strip()
    return config


DATABASES = {"default": _database()}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "guardian",
    "metaserver.accounts",
    "metaserver.datastores",
    "metaserver.datasets",
    "metaserver.jobs",
    "metaserver.uploads",
    "metaserver.dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "metaserver.config.urls"
WSGI_APPLICATION = "metaserver.config.wsgi.application"
ASGI_APPLICATION = "metaserver.config.asgi.application"
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
# Anonymous visitors see public datasets through the gates, not through guardian;
# without this guardian would add a user row called "AnonymousUser".
ANONYMOUS_USER_NAME = None
# The dashboard's pages (metaserver.dashboard); the API answers 401/403 instead.
LOGIN_URL = "dashboard:login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "dashboard:login"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

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

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env_path("VOXELHUB_STATIC_ROOT", VOXELHUB_HOME / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# The embedded mode serves the admin's files without a collectstatic step.
WHITENOISE_USE_FINDERS = DEBUG or VOXELHUB_EMBEDDED

# Bodies of ordinary API calls; the dataset report of a datastore has its own,
# larger bound (see metaserver.datasets.api.views).
VOXELHUB_MAX_BODY_BYTES = env_int("VOXELHUB_MAX_BODY_BYTES", 2 * 1024 * 1024, minimum=1)
VOXELHUB_MAX_REPORT_BYTES = env_int(
    "VOXELHUB_MAX_REPORT_BYTES", 64 * 1024 * 1024, minimum=1
)
VOXELHUB_MAX_REPORT_DATASETS = env_int(
    "VOXELHUB_MAX_REPORT_DATASETS", 50_000, minimum=1
)

if VOXELHUB_HTTPS:
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env_int("VOXELHUB_HSTS_SECONDS", 31_536_000, minimum=0)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Only behind a proxy that terminates TLS and always sets this header;
    # otherwise a client could claim https itself.
    if env_bool("VOXELHUB_TRUST_X_FORWARDED_PROTO", False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "metaserver.accounts.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["metaserver.api_errors.BoundedJSONParser"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "metaserver.api_errors.api_exception_handler",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "voxelhub metaserver API",
    "DESCRIPTION": "Organizations, datasets and datastores of a voxelhub installation.",
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Several serializers have a `status`; name the dataset's one explicitly.
    "ENUM_NAME_OVERRIDES": {"DatasetStatusEnum": "metaserver.datasets.models.Status"},
}

VOXELHUB_LOG_LEVEL = env_str("VOXELHUB_LOG_LEVEL", "INFO").upper()
if VOXELHUB_LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise SettingError(
        "VOXELHUB_LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, "
        f"got {VOXELHUB_LOG_LEVEL!r}"
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "metaserver.logging_filters.RedactSecretsFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["redact"],
        },
    },
    "root": {
        "handlers": ["console"],
        "level": VOXELHUB_LOG_LEVEL,
    },
    "loggers": {
        # Request bodies and headers never reach the log; 4xx are expected noise.
        "django.request": {"level": "ERROR"},
        "django.security.DisallowedHost": {"level": "ERROR"},
    },
}
