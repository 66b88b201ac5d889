"""Production settings: secrets must already exist, HTTPS only, hardened cookies and headers.

Required environment: ``DJANGO_SECRET_KEY`` (or a 0600 ``var/django-secret.key``), ``ELM_PSEUDONYM_KEY``
(or a 0600 ``var/pseudonym.key``) and ``DJANGO_ALLOWED_HOSTS``. ``manage.py check --deploy`` is clean
with them set (tests/security/test_settings.py runs it).
"""

import os

from django.core.exceptions import ImproperlyConfigured

from core.keys import read_secret

from .base import *  # noqa: F403
from .base import ELM_PSEUDONYM_KEY_FILE, SECRET_KEY_FILE, env_bool, env_int

DEBUG = False
ELM_CREATE_KEY_FILES = False
SECRET_KEY = read_secret(env="DJANGO_SECRET_KEY", key_file=SECRET_KEY_FILE, create=False)
# Fail at start-up, not at the first import or erasure, when the pseudonym key is missing.
read_secret(env="ELM_PSEUDONYM_KEY", key_file=ELM_PSEUDONYM_KEY_FILE, create=False)

if not os.environ.get("DJANGO_ALLOWED_HOSTS"):
    raise ImproperlyConfigured("Set DJANGO_ALLOWED_HOSTS (comma-separated host names) in production.")
ALLOWED_HOSTS = [h.strip() for h in os.environ["DJANGO_ALLOWED_HOSTS"].split(",") if h.strip()]
# Origins allowed to POST forms over HTTPS, e.g. "https://elm.example.com" (defaults to the hosts).
CSRF_TRUSTED_ORIGINS = [
    o.strip()
    for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", ",".join(f"https://{h}" for h in ALLOWED_HOSTS)).split(",")
    if o.strip() and "*" not in o
]

SESSION_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_COOKIE_NAME = "__Host-sessionid"  # __Host-: Secure, no Domain, Path=/ (browsers enforce it)
SESSION_COOKIE_AGE = env_int("ELM_SESSION_HOURS", 8) * 3600
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_SECURE = True
CSRF_COOKIE_HTTPONLY = True  # no script reads the token: forms carry it
CSRF_COOKIE_NAME = "__Host-csrftoken"
CSRF_COOKIE_SAMESITE = "Lax"
SECURE_SSL_REDIRECT = env_bool("DJANGO_SECURE_SSL_REDIRECT", True)
# Only trusted when a TLS-terminating proxy sets it (and strips it from clients).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_HSTS_SECONDS = 31536000
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# The browsable API is for development; production clients speak JSON.
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"]}
