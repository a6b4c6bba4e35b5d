"""Settings for Control Plane, read from the environment (see `.env.example` and docs/configuration.md).

`CONTROLPLANE_ENV` selects the posture: `dev` (the quickstart: SQLite and in-process tasks unless told
otherwise), `stage` and `prod` (secrets required, strict signing, secure cookies).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

CONTROLPLANE_ENV = env.str("CONTROLPLANE_ENV", default="dev")
if CONTROLPLANE_ENV not in {"dev", "stage", "prod"}:
    raise ImproperlyConfigured(f"CONTROLPLANE_ENV must be dev, stage or prod, not {CONTROLPLANE_ENV!r}")
IS_DEV = CONTROLPLANE_ENV == "dev"

if IS_DEV:
    # A development-only key; any other environment must bring its own.
    SECRET_KEY = env.str("SECRET_KEY", default="dev-insecure-0c1d5e7a-not-for-production-use-8f2b")
else:
    SECRET_KEY = env.str("SECRET_KEY", default="")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("SECRET_KEY (at least 50 characters) is required outside dev")

DEBUG = env.bool("DEBUG", default=IS_DEV)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if IS_DEV else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    # The admin site with principal, capability and TOTP checks (controlplane/admin_site.py).
    "controlplane.admin_site.ControlPlaneAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_filters",
    "django_htmx",
    "template_partials",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "controlplane.ledger",
    "controlplane.identity",
    "controlplane.policy",
    "controlplane.channels",
    "controlplane.console",
    "approvals",
    "skills",
    "controlplane.runtime",
    "incidents",
    "plugins",
    "learning",
    "governance",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Quickstart only (no broker): runs the beat schedule in-process; see controlplane/runtime/inprocess.py.
    "controlplane.runtime.inprocess.InProcessPeriodicMiddleware",
    "controlplane.middleware.RequestIdMiddleware",
    # Content-Security-Policy, Cache-Control: no-store, TRACE refused (controlplane/security_headers.py).
    "controlplane.security_headers.SecurityHeadersMiddleware",
    # Past CONTROLPLANE_MAX_INFLIGHT_REQUESTS or with no database connection to be had: a coded 503 with
    # Retry-After (SERVER_OVERLOADED, DATABASE_BUSY) before anything else runs.
    "controlplane.middleware.AdmissionMiddleware",
    # PostgreSQL or Redis lost mid-request: a coded 503 (DATABASE_UNAVAILABLE, BROKER_UNAVAILABLE).
    "controlplane.middleware.OutageMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",  # request.user.is_verified(): the admin's second factor
    # Sessions end when idle or too old (CONTROLPLANE_SESSION_*_SECONDS).
    "controlplane.security_headers.SessionLifetimeMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"
ASGI_APPLICATION = "controlplane.asgi.application"

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
                "controlplane.console.context_processors.console",
            ],
        },
    },
]

# The quickstart alone runs on SQLite; the suite, benchmarks and production use PostgreSQL.
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'var' / 'quickstart.sqlite3'}")
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    (BASE_DIR / "var").mkdir(exist_ok=True)
# PostgreSQL connections come from a bounded pool per process (Django's psycopg pool): at most
# DATABASE_POOL_MAX_SIZE, a request waiting at most DATABASE_POOL_TIMEOUT seconds for one before it is
# answered 503 DATABASE_BUSY (controlplane.middleware.AdmissionMiddleware). Size it with the process's
# threads (gunicorn gthread: threads <= max size; ASGI: CONTROLPLANE_MAX_INFLIGHT_REQUESTS bounds them)
# and keep processes x max size under PostgreSQL's max_connections (docs/operations.md). 0: no pool,
# a persistent connection per thread (DATABASE_CONN_MAX_AGE), as before.
DATABASE_POOL_MAX_SIZE = env.int("DATABASE_POOL_MAX_SIZE", default=10)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
    if DATABASE_POOL_MAX_SIZE > 0:
        DATABASES["default"]["CONN_MAX_AGE"] = 0  # a pooled connection goes back to the pool instead
        DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
            "min_size": min(env.int("DATABASE_POOL_MIN_SIZE", default=2), DATABASE_POOL_MAX_SIZE),
            "max_size": DATABASE_POOL_MAX_SIZE,
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=2.0),
            # how long an idle connection above min_size is kept, and the longest any one lives
            "max_idle": env.float("DATABASE_POOL_MAX_IDLE", default=300.0),
            "max_lifetime": env.float("DATABASE_POOL_MAX_LIFETIME", default=1800.0),
        }
    else:
        DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DATABASE_CONN_MAX_AGE", default=60))
elif not IS_DEV:
    raise ImproperlyConfigured("stage and prod require a PostgreSQL DATABASE_URL")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if not REDIS_URL and not IS_DEV:
    raise ImproperlyConfigured("stage and prod require REDIS_URL (the Celery broker)")

if REDIS_URL:
    # Short socket timeouts: an unreachable Redis must fail a cache call fast (callers degrade), not hang.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# Celery: a real Redis broker when REDIS_URL is set, otherwise tasks run in-process (quickstart).
# The in-memory transport names a host so kombu does not warn "No hostname was supplied" on every publish.
CELERY_BROKER_URL = REDIS_URL or "memory://localhost/"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {"socket_connect_timeout": 2, "socket_timeout": 5}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
CSRF_FAILURE_VIEW = "controlplane.console.views.csrf_failure"
LOGIN_URL = "console:login"
LOGIN_REDIRECT_URL = "console:dashboard"
LOGOUT_REDIRECT_URL = "console:login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if IS_DEV
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "controlplane.identity.authentication.BearerTokenAuthentication",
        "controlplane.identity.authentication.ConsoleSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["controlplane.identity.permissions.HasCapability"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # JSON only (docs/security.md, "Fuzzing and input limits"): a form-encoded body reads a blank field as
    # "" where JSON would carry null or nothing, so forms are refused (415) unless a view declares its own
    # parsers (the webhooks and ingest read their raw bytes: signatures are over them).
    "DEFAULT_PARSER_CLASSES": ["controlplane.parsers.BoundedJSONParser"],
    # Every answer carries the telemetry envelope as `meta` (docs/telemetry.md).
    "DEFAULT_RENDERER_CLASSES": ["controlplane.renderers.EnvelopeJSONRenderer"],
    "DEFAULT_PAGINATION_CLASS": "controlplane.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "controlplane.exceptions.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Control Plane API",
    "DESCRIPTION": "Governs what AI agents and automation may do in production; runs SRE incidents.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["controlplane.identity.permissions.HasCapability"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Every operation documents its error answers and the Error body {detail, code, request_id}.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "controlplane.schema.document_error_responses",
        # Every answer's `meta` (the telemetry envelope, docs/telemetry.md).
        "controlplane.schema.document_telemetry_envelope",
    ],
    "ENUM_NAME_OVERRIDES": {
        "PrincipalKindEnum": "controlplane.identity.models.PrincipalKind",
        "PolicyVerdictEnum": "controlplane.policy.models.PolicyVerdict",
        "IncidentSeverityEnum": "incidents.models.Severity",
        "IncidentStatusEnum": "incidents.models.IncidentStatus",
        "PromotionDecisionEnum": "incidents.models.PromotionOutcome",
        "ApprovalDecisionEnum": "approvals.models.ApprovalVote",
        "SignalStatusEnum": "incidents.models.SignalStatus",
        "SignalSourceKindEnum": "incidents.models.SourceKind",
        "SilenceStatusEnum": "incidents.models.SilenceStatus",
    },
}

# --- Control Plane -------------------------------------------------------------------------------

# Where ledger private keys live (one file per key id, mode 0600). Never inside the repository in
# production: mount a secret volume. `CONTROLPLANE_LEDGER_KEY` may instead carry the active key's seed.
CONTROLPLANE_KEY_DIR = Path(env.str("CONTROLPLANE_KEY_DIR", default=str(BASE_DIR / "var" / "keys")))
CONTROLPLANE_LEDGER_KEY = env.str("CONTROLPLANE_LEDGER_KEY", default="")
# Dev generates a ledger key on first use; stage and prod fail closed without one.
CONTROLPLANE_LEDGER_AUTOGENERATE_KEY = env.bool("CONTROLPLANE_LEDGER_AUTOGENERATE_KEY", default=IS_DEV)
# The witness: every checkpoint is cosigned under its own Ed25519 key (never the ledger key) and appended to
# an append-only log per ledger in this directory (another volume in production; docs/ledger.md).
CONTROLPLANE_WITNESS_DIR = Path(
    env.str("CONTROLPLANE_WITNESS_DIR", default=str(BASE_DIR / "var" / "witness"))
)
# The witness key: base64 of a 32-byte Ed25519 seed. Dev generates one in CONTROLPLANE_WITNESS_DIR.
CONTROLPLANE_WITNESS_KEY = env.str("CONTROLPLANE_WITNESS_KEY", default="")
# Optionally, an external witness each checkpoint is POSTed to, and its pinned public key (base64).
CONTROLPLANE_WITNESS_URL = env.str("CONTROLPLANE_WITNESS_URL", default="")
CONTROLPLANE_WITNESS_URL_PUBLIC_KEY = env.str("CONTROLPLANE_WITNESS_URL_PUBLIC_KEY", default="")

_SIGNING_MODE_DEFAULTS = {
    "dev": "allow-unsigned",
    "stage": "require-signed",
    "prod": "require-valid-signature",
}
CONTROLPLANE_EVENT_SIGNING_MODE = env.str(
    "CONTROLPLANE_EVENT_SIGNING_MODE", default=_SIGNING_MODE_DEFAULTS[CONTROLPLANE_ENV]
)
if CONTROLPLANE_EVENT_SIGNING_MODE not in {
    "off",
    "allow-unsigned",
    "require-signed",
    "require-valid-signature",
}:
    raise ImproperlyConfigured(f"unknown CONTROLPLANE_EVENT_SIGNING_MODE {CONTROLPLANE_EVENT_SIGNING_MODE!r}")
CONTROLPLANE_EVENT_TOLERANCE_SECONDS = env.int("CONTROLPLANE_EVENT_TOLERANCE_SECONDS", default=300)
CONTROLPLANE_REPLAY_SEED = env.int("CONTROLPLANE_REPLAY_SEED", default=0)
# Signed checkpoints: how often Celery beat makes one.
CONTROLPLANE_CHECKPOINT_INTERVAL_SECONDS = env.int("CONTROLPLANE_CHECKPOINT_INTERVAL_SECONDS", default=300)
# Failed authentications allowed per source within the window before it is throttled (AUTH_THROTTLED).
CONTROLPLANE_AUTH_FAILURE_LIMIT = env.int("CONTROLPLANE_AUTH_FAILURE_LIMIT", default=10)
CONTROLPLANE_AUTH_FAILURE_WINDOW_SECONDS = env.int("CONTROLPLANE_AUTH_FAILURE_WINDOW_SECONDS", default=300)
# Proxies (CIDRs, comma-separated) whose X-Forwarded-For is believed: the client address the throttle
# counts against is the first hop, read right to left, that is not one of them. Empty: REMOTE_ADDR only.
CONTROLPLANE_TRUSTED_PROXIES = env.list("CONTROLPLANE_TRUSTED_PROXIES", default=[])
for _proxy in CONTROLPLANE_TRUSTED_PROXIES:
    try:
        ipaddress.ip_network(_proxy.strip(), strict=False)
    except ValueError as _exc:
        raise ImproperlyConfigured(f"CONTROLPLANE_TRUSTED_PROXIES: {_proxy!r} is not a CIDR") from _exc
# Ingest load shedding: concurrent in-flight ingests per process before answering 503 INGEST_OVERLOADED
# (a thread pool bounds them by its threads anyway; on the ASGI path they cost only memory).
CONTROLPLANE_INGEST_MAX_INFLIGHT = env.int("CONTROLPLANE_INGEST_MAX_INFLIGHT", default=256)
# Past this wait an ingest is answered 503 INGEST_OVERLOADED before any work: on the ASGI path
# (controlplane.asgi) when the event loop runs this late or a batch has waited this long for the chain;
# under gunicorn's controlplane.serving.QueueTimeWorker, when it waited this long for a thread. 0: off.
CONTROLPLANE_INGEST_QUEUE_BUDGET_MS = env.int("CONTROLPLANE_INGEST_QUEUE_BUDGET_MS", default=50)
# Every endpoint but the lean ingest path: requests served at once per process before one more is answered
# 503 SERVER_OVERLOADED with Retry-After (controlplane.middleware.AdmissionMiddleware). 0 admits none.
CONTROLPLANE_MAX_INFLIGHT_REQUESTS = env.int("CONTROLPLANE_MAX_INFLIGHT_REQUESTS", default=64)
# Ingest caches successful token/producer/key lookups this long per process: the bound on how late a
# revocation (token, grant, key, principal) made in another process takes effect on ingest. 0: no cache.
CONTROLPLANE_INGEST_AUTH_CACHE_SECONDS = env.float("CONTROLPLANE_INGEST_AUTH_CACHE_SECONDS", default=1.0)

# Input limits (docs/security.md, "Fuzzing and input limits"). Bodies past DATA_UPLOAD_MAX_MEMORY_SIZE
# (Django's, 2.5 MiB by default; ingest and webhooks too) are refused 413 PAYLOAD_TOO_LARGE before they
# are parsed; an API JSON body nested deeper than CONTROLPLANE_JSON_MAX_DEPTH is 400 MALFORMED_JSON.
CONTROLPLANE_JSON_MAX_DEPTH = env.int("CONTROLPLANE_JSON_MAX_DEPTH", default=32)
# List endpoints: ?limit= in 1..CONTROLPLANE_API_MAX_LIMIT, ?offset= in 0..CONTROLPLANE_API_MAX_OFFSET.
CONTROLPLANE_API_MAX_LIMIT = env.int("CONTROLPLANE_API_MAX_LIMIT", default=500)
CONTROLPLANE_API_MAX_OFFSET = env.int("CONTROLPLANE_API_MAX_OFFSET", default=1_000_000_000)

# Runtime (docs/runtime.md). The signing secret (whsec_<base64>) of http.webhook runners: never stored in
# the database; a runner may name its own variable instead (CONTROLPLANE_RUNNER_SECRET_<NAME>).
CONTROLPLANE_RUNNER_SECRET = env.str("CONTROLPLANE_RUNNER_SECRET", default="")
CONTROLPLANE_RUNNER_TIMEOUT_SECONDS = env.float("CONTROLPLANE_RUNNER_TIMEOUT_SECONDS", default=10.0)
# Retryable failures: attempts in all, and the exponential backoff between them (base, cap).
CONTROLPLANE_STEP_MAX_ATTEMPTS = env.int("CONTROLPLANE_STEP_MAX_ATTEMPTS", default=3)
CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS = env.float("CONTROLPLANE_STEP_RETRY_BACKOFF_SECONDS", default=2.0)
CONTROLPLANE_STEP_RETRY_BACKOFF_MAX_SECONDS = env.float(
    "CONTROLPLANE_STEP_RETRY_BACKOFF_MAX_SECONDS", default=60.0
)
# A running step's lease, renewed by its worker every third of it; once past, the sweeper re-dispatches it.
CONTROLPLANE_STEP_LEASE_SECONDS = env.float("CONTROLPLANE_STEP_LEASE_SECONDS", default=30.0)
# A task the broker accepted but no worker started within this long is published again.
CONTROLPLANE_STEP_REDISPATCH_AFTER_SECONDS = env.int(
    "CONTROLPLANE_STEP_REDISPATCH_AFTER_SECONDS", default=300
)
# Celery beat period of the runtime sweeper (lost workers, the outbox).
CONTROLPLANE_SWEEP_INTERVAL_SECONDS = env.float("CONTROLPLANE_SWEEP_INTERVAL_SECONDS", default=15.0)
# Without a broker (the quickstart) the beat schedule runs in the web process, on requests (throttled).
CONTROLPLANE_INPROCESS_PERIODIC = env.bool("CONTROLPLANE_INPROCESS_PERIODIC", default=not REDIS_URL)

# Plugins (docs/plugins.md): the supervision beat's period; how long a plugin may stay blocked by a dependency
# before it is quarantined (PLUGIN_DEPENDENCY_BROKEN); how often heartbeats are digested onto the ledger;
# how long a step may wait for its plugin (PLUGIN_UNHEALTHY) before it is blocked (0: no limit); the
# whsec_ secret restart requests to a plugin's control URL are signed with (environment only).
CONTROLPLANE_PLUGIN_SUPERVISE_SECONDS = env.float("CONTROLPLANE_PLUGIN_SUPERVISE_SECONDS", default=5.0)
CONTROLPLANE_PLUGIN_DEPENDENCY_BREAK_SECONDS = env.int(
    "CONTROLPLANE_PLUGIN_DEPENDENCY_BREAK_SECONDS", default=600
)
CONTROLPLANE_PLUGIN_DIGEST_SECONDS = env.int("CONTROLPLANE_PLUGIN_DIGEST_SECONDS", default=300)
CONTROLPLANE_PLUGIN_HOLD_FAIL_AFTER_SECONDS = env.int(
    "CONTROLPLANE_PLUGIN_HOLD_FAIL_AFTER_SECONDS", default=3600
)
CONTROLPLANE_PLUGIN_CONTROL_SECRET = env.str("CONTROLPLANE_PLUGIN_CONTROL_SECRET", default="")

# Incidents: the longest a silence may last, and Grafana's webhook HMAC (secret from the environment only;
# when set, every Grafana delivery must carry a valid signature). See docs/incidents.md.
CONTROLPLANE_SILENCE_MAX_SECONDS = env.int("CONTROLPLANE_SILENCE_MAX_SECONDS", default=7 * 24 * 3600)
CONTROLPLANE_GRAFANA_HMAC_SECRET = env.str("CONTROLPLANE_GRAFANA_HMAC_SECRET", default="")
CONTROLPLANE_GRAFANA_SIGNATURE_HEADER = env.str(
    "CONTROLPLANE_GRAFANA_SIGNATURE_HEADER", default="X-Grafana-Alerting-Signature"
)
CONTROLPLANE_GRAFANA_TIMESTAMP_HEADER = env.str(
    "CONTROLPLANE_GRAFANA_TIMESTAMP_HEADER", default="X-Grafana-Alerting-Signature-Timestamp"
)
# Per-tenant Grafana secrets, `tenant/principal=secret,...`: a delivery to /api/v1/signals/grafana/?tenant=T
# signed with T's secret acts as that principal (it needs signals.ingest) with no bearer token.
CONTROLPLANE_GRAFANA_TENANT_SECRETS = env.dict("CONTROLPLANE_GRAFANA_TENANT_SECRETS", default={})

# GET /api/v1/ledger/verify/ runs as a job: one start per tenant per interval; a job's state is kept
# for the TTL.
CONTROLPLANE_LEDGER_VERIFY_START_INTERVAL_SECONDS = env.int(
    "CONTROLPLANE_LEDGER_VERIFY_START_INTERVAL_SECONDS", default=60
)
CONTROLPLANE_LEDGER_VERIFY_JOB_TTL_SECONDS = env.int(
    "CONTROLPLANE_LEDGER_VERIFY_JOB_TTL_SECONDS", default=3600
)

# The Django admin's second factor (TOTP, django-otp; see docs/security.md). Off only in dev, on request.
CONTROLPLANE_ADMIN_OTP_REQUIRED = env.bool("CONTROLPLANE_ADMIN_OTP_REQUIRED", default=True)
if not CONTROLPLANE_ADMIN_OTP_REQUIRED and not IS_DEV:
    raise ImproperlyConfigured("CONTROLPLANE_ADMIN_OTP_REQUIRED=false is allowed in dev only")
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Control Plane")

# Channels (docs/channels.md). Channel secrets are encrypted at rest with CONTROLPLANE_SECRETS_KEY: one or
# more Fernet keys (32 bytes, URL-safe base64), comma-separated, the first encrypting, all decrypting (for
# rotation). Dev generates one under CONTROLPLANE_KEY_DIR on first use, as it does the ledger key.
CONTROLPLANE_SECRETS_KEY = env.str("CONTROLPLANE_SECRETS_KEY", default="")
# The public base URL the providers call (e.g. https://cp.example.com): webhook URLs are printed from it and
# Twilio's signature is checked over it, never over the Host or X-Forwarded-* headers.
CONTROLPLANE_PUBLIC_URL = env.str("CONTROLPLANE_PUBLIC_URL", default="http://localhost:8000")
# Slack's signed timestamp window (seconds), and the providers' API base URLs (tests point them at a
# local stand-in).
CONTROLPLANE_SLACK_TOLERANCE_SECONDS = env.int("CONTROLPLANE_SLACK_TOLERANCE_SECONDS", default=300)
CONTROLPLANE_SLACK_API_URL = env.str("CONTROLPLANE_SLACK_API_URL", default="https://slack.com/api/")
CONTROLPLANE_TWILIO_API_URL = env.str("CONTROLPLANE_TWILIO_API_URL", default="https://api.twilio.com")
CONTROLPLANE_META_API_URL = env.str("CONTROLPLANE_META_API_URL", default="https://graph.facebook.com/v21.0")
CONTROLPLANE_GITHUB_API_URL = env.str("CONTROLPLANE_GITHUB_API_URL", default="https://api.github.com")
# The channels outbox: first retry after this many seconds, doubling (at most 300 s), given up after
# this many attempts; the sweeper's beat period.
CONTROLPLANE_CHANNEL_OUTBOX_BACKOFF_SECONDS = env.int("CONTROLPLANE_CHANNEL_OUTBOX_BACKOFF_SECONDS", 5)
CONTROLPLANE_CHANNEL_OUTBOX_MAX_ATTEMPTS = env.int("CONTROLPLANE_CHANNEL_OUTBOX_MAX_ATTEMPTS", 6)
CONTROLPLANE_CHANNEL_OUTBOX_SWEEP_SECONDS = env.float("CONTROLPLANE_CHANNEL_OUTBOX_SWEEP_SECONDS", 10.0)
# GitHub: how far back an incident page looks for change signals, and how long a deployment held by a
# protection rule waits for a decision (then it is rejected: fail closed).
CONTROLPLANE_CHANGE_WINDOW_SECONDS = env.int("CONTROLPLANE_CHANGE_WINDOW_SECONDS", 7200)
CONTROLPLANE_GITHUB_REVIEW_TIMEOUT_SECONDS = env.int("CONTROLPLANE_GITHUB_REVIEW_TIMEOUT_SECONDS", 3600)
# Refused deliveries kept per connection for its admins (with mismatch diagnostics); the digest's period.
CONTROLPLANE_CHANNEL_REFUSALS_KEPT = env.int("CONTROLPLANE_CHANNEL_REFUSALS_KEPT", 20)
CONTROLPLANE_CHANNEL_REFUSAL_DIGEST_SECONDS = env.float("CONTROLPLANE_CHANNEL_REFUSAL_DIGEST_SECONDS", 3600.0)
# Identity links: the one-time code's digits, how long it is valid, and how many wrong codes void a link.
CONTROLPLANE_CHANNEL_LINK_CODE_DIGITS = env.int("CONTROLPLANE_CHANNEL_LINK_CODE_DIGITS", default=8)
CONTROLPLANE_CHANNEL_LINK_TTL_SECONDS = env.int("CONTROLPLANE_CHANNEL_LINK_TTL_SECONDS", default=600)
CONTROLPLANE_CHANNEL_LINK_MAX_FAILURES = env.int("CONTROLPLANE_CHANNEL_LINK_MAX_FAILURES", default=5)
# The longest message text a channel event keeps (longer text is cut, and says so).
CONTROLPLANE_CHANNEL_TEXT_MAX = env.int("CONTROLPLANE_CHANNEL_TEXT_MAX", default=2000)

# --- Security posture outside dev ------------------------------------------------------------------

if not IS_DEV:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SECURE_CONTENT_TYPE_NOSNIFF = True
    SECURE_REFERRER_POLICY = "same-origin"
    X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# Console sessions (docs/security.md, OWASP ASVS 5.0 7.3): signed out after this long without a request,
# and this long after signing in however active (NIST SP 800-63B AAL2: 30 minutes, 12 hours).
CONTROLPLANE_SESSION_IDLE_SECONDS = env.int("CONTROLPLANE_SESSION_IDLE_SECONDS", default=30 * 60)
CONTROLPLANE_SESSION_MAX_SECONDS = env.int("CONTROLPLANE_SESSION_MAX_SECONDS", default=12 * 3600)
SESSION_COOKIE_AGE = CONTROLPLANE_SESSION_MAX_SECONDS
if not IS_DEV:
    # `__Host-`: sent only over HTTPS, only to this host, for the whole site (ASVS 3.3.1, 3.3.3).
    SESSION_COOKIE_NAME = "__Host-sessionid"
    CSRF_COOKIE_NAME = "__Host-csrftoken"
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # One line per record: CR/LF and other control characters in a message are escaped (ASVS 16.4.1).
    "filters": {"escape_controls": {"()": "controlplane.logfilters.EscapeControlCharacters"}},
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["escape_controls"]}
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}

# --- Learning (docs/learning.md) ---------------------------------------------------------------------------
# Seconds between offline calibration runs of every tenant (nightly by default).
CONTROLPLANE_LEARNING_CALIBRATE_SCHEDULE = env.int(
    "CONTROLPLANE_LEARNING_CALIBRATE_SCHEDULE", default=24 * 3600
)
# --- Governance and telemetry (docs/governance.md, docs/telemetry.md) --------------------------------------
# The one rollback toggle: `warn` turns every enforce-mode check to warn. A ledgered runtime setting
# (`manage.py governance enforcement warn|enforce|clear`, POST /api/v1/governance/enforcement/) overrides it
# without a redeploy; every process reads it at each check, cached for at most one second.
CONTROLPLANE_ENFORCEMENT = env.str("CONTROLPLANE_ENFORCEMENT", default="")
if CONTROLPLANE_ENFORCEMENT not in {"", "warn", "enforce"}:
    raise ImproperlyConfigured(
        f"CONTROLPLANE_ENFORCEMENT is warn or enforce, not {CONTROLPLANE_ENFORCEMENT!r}"
    )
# The mode matrix per environment, over the defaults of controlplane/kernel/governance.py (JSON, e.g.
# {"dev": {"envelope": "enforce"}}); `governance validate` checks its schema and that prod >= stage >= dev.
CONTROLPLANE_GOVERNANCE_MODES = env.json("CONTROLPLANE_GOVERNANCE_MODES", default={})
# Preflight: the largest rejection ratio (basis points) that is "ready", and how long a ready one counts.
CONTROLPLANE_PREFLIGHT_MAX_REJECTION_BP = env.int("CONTROLPLANE_PREFLIGHT_MAX_REJECTION_BP", default=500)
CONTROLPLANE_PREFLIGHT_MAX_AGE_SECONDS = env.int(
    "CONTROLPLANE_PREFLIGHT_MAX_AGE_SECONDS", default=7 * 24 * 3600
)
# Tenants whose agents' prompt and response text is kept with their model-call telemetry (else: hashes only).
CONTROLPLANE_TELEMETRY_TEXT_TENANTS = env.list("CONTROLPLANE_TELEMETRY_TEXT_TENANTS", default=[])
