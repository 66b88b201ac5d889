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


@pytest.fixture(autouse=True)
def _default_language():
    """Start every test in the site's language: a request in another one leaves it active on the thread."""
    from django.conf import settings
    from django.utils import translation

    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


def _broker_flush() -> None:
    """Drop messages left in the test broker by an earlier, interrupted run."""
    from elmsite.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()


@pytest.fixture(scope="session")
def celery_worker_process(django_db_setup, django_db_blocker, tmp_path_factory):
    """Start a real Celery worker process (both queues) against the test database and broker."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    from django.db import connection

    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    _broker_flush()
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "elmsite.settings.test",
        "ELM_DATABASE_NAME": db_name,
        "ELM_VISIBILITY_TIMEOUT": "30",
        "ELM_SHARD_SIZE": "8",  # small shards so every job is really split across tasks
    }
    cmd = [sys.executable, "-m", "celery", "-A", "elmsite", "worker", "-Q", "default,gpu,search", "-c", "2",
           "-n", f"test-{os.getpid()}@%h", "--without-gossip", "--without-mingle", "--loglevel", "INFO"]  # fmt: skip
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, cwd=Path(__file__).resolve().parent.parent, env=env, stdout=out, stderr=out)
    deadline = time.monotonic() + 60
    while b"ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"Celery worker did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    proc.log_path = log
    yield proc
    proc.terminate()
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()


def wait_for_job(job, *, timeout: float = 120):
    """Poll the database until the job pipeline finishes; return the jobs in order."""
    from jobs.progress import wait_for_pipeline

    return wait_for_pipeline(job, poll=0.2, timeout=timeout, stream=open(os.devnull, "w"))


@pytest.fixture
def every_user_holds_every_customer(db):
    """Put every customer into every user's book (for tests of other concerns than account scoping).

    Sales users see only their assigned customers (tests/accounts, tests/security test that); tests
    written about lists, filters or reasons use this so a plain user still sees the customers they create.
    """
    from django.contrib.auth import get_user_model
    from django.db.models.signals import post_save

    from accounts.models import AccountAssignment
    from recommendations.models import Customer

    User = get_user_model()

    def customer_created(sender, instance, created, **kwargs):
        if created:
            users = User.objects.values_list("pk", flat=True)
            AccountAssignment.objects.bulk_create(
                [AccountAssignment(customer=instance, user_id=pk) for pk in users], ignore_conflicts=True
            )

    def user_created(sender, instance, created, **kwargs):
        if created:
            customers = Customer.objects.values_list("pk", flat=True)
            AccountAssignment.objects.bulk_create(
                [AccountAssignment(customer_id=pk, user=instance) for pk in customers], ignore_conflicts=True
            )

    post_save.connect(customer_created, sender=Customer, weak=False, dispatch_uid="test-books-customer")
    post_save.connect(user_created, sender=User, weak=False, dispatch_uid="test-books-user")
    yield
    post_save.disconnect(sender=Customer, dispatch_uid="test-books-customer")
    post_save.disconnect(sender=User, dispatch_uid="test-books-user")
