"""Test session: start the embedded PostgreSQL and Valkey (real servers) unless URLs are given."""

from __future__ import annotations

import os

import pytest

_started: list[str] = []


def pytest_configure(config):
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.test")
    from django.conf import settings

    from elmsite import embedded

    if settings.EMBEDDED_DATABASE and not embedded.pg_status(settings.VAR_DIR).running:
        embedded.pg_start(settings.VAR_DIR)
        _started.append("pg")
    if settings.EMBEDDED_BROKER and not embedded.valkey_status(settings.VAR_DIR).running:
        embedded.valkey_start(settings.VAR_DIR)
        _started.append("valkey")


def pytest_unconfigure(config):
    if getattr(config, "workerinput", None) is not None:
        return  # xdist workers leave the servers to the controller
    from django.conf import settings

    from elmsite import embedded

    if "valkey" in _started:
        embedded.valkey_stop(settings.VAR_DIR)
    if "pg" in _started:
        embedded.pg_stop(settings.VAR_DIR)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
