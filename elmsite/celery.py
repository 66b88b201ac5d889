"""Celery application: model work on the ``gpu`` queue, everything else on ``default``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.dev")

app = Celery("elmsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
