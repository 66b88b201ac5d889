"""The reduced load run of benchmarks/load_sales.py: sales users browse and record outcomes during a batch.

The full run (20 users, 120 s, language-model reasons) is ``.venv/bin/python benchmarks/load_sales.py``;
this one runs the same user loop with 5 users for 20 s against gunicorn on 127.0.0.1, on the test
database, while a real worker explains the recommendations.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys

import pytest
from django.utils import timezone

from elmsite.processes import start_web, wait_for_log
from jobs.models import Job
from jobs.services import job_create
from tests.faults.conftest import ROOT, broker, record, valkey_url, wait_until
from tests.shop import build_shop, embed_and_recommend

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(600)]

USERS = 5
SECONDS = 20


def load_sales_module():
    """Import benchmarks/load_sales.py without letting its benchmark defaults leak into this process."""
    saved = dict(os.environ)
    try:
        spec = importlib.util.spec_from_file_location("load_sales", ROOT / "benchmarks" / "load_sales.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["load_sales"] = module  # dataclasses look their module up there
        spec.loader.exec_module(module)
        return module
    finally:
        os.environ.clear()
        os.environ.update(saved)


def test_sales_users_under_load_get_no_error_and_each_outcome_is_stored_once(spawn_worker, tmp_path, django_db_blocker):
    """Run 5 concurrent sales users for 20 s during an explanation batch: 0 errors, outcomes stored once."""
    from django.db import connection

    load_sales = load_sales_module()
    # Given a shop with recommendations, sales users with their books, a web server and a worker
    build_shop(customers=6, now=timezone.now())
    embed_and_recommend()
    books = load_sales.create_users(users=USERS, customers_per_user=2)
    env = {
        "DJANGO_SETTINGS_MODULE": "elmsite.settings.test",
        "ELM_DATABASE_NAME": connection.settings_dict["NAME"],
        "ELM_LOG_LEVEL": "WARNING",
    }
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    web = start_web(host="127.0.0.1", port=port, workers=2, log_dir=tmp_path, cwd=ROOT, env=env)
    try:
        wait_for_log(web, b"Booting worker")
        with broker(valkey_url()) as url:
            spawn_worker(name="load", broker_url=url, ELM_EXPLAIN_SHARD_SIZE=2, ELM_SIG_STEPS=4)
            job = job_create(kind="explain", params={"use_lm": False})
            # The worker is warm (models loaded) once a shard is done; the rest of the batch runs under load.
            wait_until(lambda: Job.objects.get(pk=job.pk).items_done > 0, timeout=300, what="first shard explained")
            before = Job.objects.get(pk=job.pk).items_done

            # When the users browse and record outcomes
            tally = load_sales.run_load(base_url=f"http://127.0.0.1:{port}", books=books, seconds=SECONDS)
            job.refresh_from_db()
    finally:
        web.stop()

    # Then no request failed, the batch ran meanwhile, and every accepted outcome is stored exactly once
    assert tally.errors == []
    assert len(tally.latencies["customer page"]) >= USERS
    assert job.items_done > before, "no explanation was written while the users browsed"
    outcomes = load_sales.outcome_check(tally, list(books))
    assert outcomes["accepted_posts_distinct"] > 0
    assert outcomes["exactly_once"], outcomes
    summary = load_sales.latency_summary([s for v in tally.latencies.values() for s in v])
    record(
        "load[reduced CI run]",
        users=USERS,
        seconds=SECONDS,
        requests=summary["n"],
        errors=len(tally.errors),
        p95_ms=summary["p95_ms"],
        customer_page_p95_ms=load_sales.latency_summary(tally.latencies["customer page"])["p95_ms"],
        outcomes=outcomes,
        explained_during_load=job.items_done - before,
    )
