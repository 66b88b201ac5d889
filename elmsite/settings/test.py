"""Test settings: the same real servers as dev, a separate database and broker db."""

import os

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK, STORAGES, VAR_DIR, embedded, env_int

os.environ.setdefault("ELM_PSEUDONYM_KEY", "test-pseudonym-key-not-secret")
DEBUG = False
SECRET_KEY = "test-secret-key-not-secret-" + "x" * 40
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed: tests create many users
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or embedded.valkey_url(VAR_DIR, env_int("ELM_BROKER_DB", 1))
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "1000/min"}}
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
# No A/B control arm unless a test asks for one: a reason must not vanish by the luck of the ids.
ELM_AB_CONTROL_SHARE = 0.0
