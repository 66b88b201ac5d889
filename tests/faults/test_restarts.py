"""The database restarts during an import and during a batch; the broker restarts during a batch.

Everything runs against a private PostgreSQL and Valkey in a temporary var dir (ELM_VAR_DIR), which
the test stops and starts; the shared development servers are never touched. The import and the
jobs are driven by subprocesses (tests/faults/driver.py) and a real worker.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timedelta

import pytest

from elmsite import embedded
from tests.faults.conftest import ROOT, record, wait_until
from tests.shop import DESCRIPTIONS

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

IMPORT_ROWS = 150_000  # enough for the import to still be streaming when the database stops
CUSTOMERS = 6
RESTART_PAUSE = 3.0  # seconds each server stays down


def write_transactions(path, rows: int) -> None:
    """Write a valid Online Retail file: 24 products bought by a few customers over 2011."""
    start = datetime(2011, 1, 1, 8, 0)
    with path.open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice",
                      "CustomerID", "Country"])  # fmt: skip
        for i in range(rows):
            product = (i * 7 + i // 1000) % len(DESCRIPTIONS)
            customer = 99900 + (i % CUSTOMERS)
            # Each customer buys mostly from its own third of the catalogue, so recommendations differ.
            product = (product % 8) + 8 * (customer % 3)
            when = start + timedelta(minutes=3 * i)
            out.writerow([500000 + i, 21000 + product, DESCRIPTIONS[product], 1 + i % 5,
                          when.strftime("%Y-%m-%d %H:%M:%S"), "2.10", customer, "United Kingdom"])  # fmt: skip


class Site:
    """The private site: its servers, its driver and its worker."""

    def __init__(self, var_dir, spawn_worker):
        self.var_dir = var_dir
        self.spawn_worker = spawn_worker
        self.env = {**os.environ, "ELM_VAR_DIR": str(var_dir), "ELM_DATABASE_NAME": embedded.DATABASE_NAME,
                    "DJANGO_SETTINGS_MODULE": "elmsite.settings.test", "ELM_LOG_LEVEL": "WARNING"}  # fmt: skip
        self.env.pop("CELERY_BROKER_URL", None)
        self.env.pop("DATABASE_URL", None)

    def driver(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "tests.faults.driver", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=600)  # fmt: skip
        if check and proc.returncode != 0:
            raise AssertionError(f"driver {args} failed:\n{proc.stderr[-3000:]}")
        return proc

    def driver_async(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tests.faults.driver", *args], cwd=ROOT, env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip

    def state(self) -> dict:
        return json.loads(self.driver("state").stdout.splitlines()[-1])

    def worker(self, name: str, **faults):
        sizes = {"ELM_SHARD_SIZE": 2, "ELM_EXPLAIN_SHARD_SIZE": 2, "ELM_SIG_STEPS": 4}
        return self.spawn_worker(
            name=name,
            faults=faults,
            ELM_VAR_DIR=self.var_dir,
            ELM_DATABASE_NAME=embedded.DATABASE_NAME,
            ELM_RECOMMENDATIONS_PER_CUSTOMER=3,
            **sizes,
        )

    def query(self, sql: str, params=()):
        import psycopg

        try:
            with psycopg.connect(embedded.pg_conninfo(self.var_dir), autocommit=True, connect_timeout=3) as conn:
                return conn.execute(sql, params).fetchall()
        except psycopg.OperationalError:
            return None

    def restart_database(self) -> float:
        began = time.monotonic()
        embedded.pg_stop(self.var_dir)
        time.sleep(RESTART_PAUSE)
        embedded.pg_start(self.var_dir)
        return time.monotonic() - began

    def restart_broker(self) -> float:
        began = time.monotonic()
        embedded.valkey_stop(self.var_dir)
        time.sleep(RESTART_PAUSE)
        embedded.valkey_start(self.var_dir)
        return time.monotonic() - began

    def when_half_done(self, kind: str) -> None:
        """Wait until a job of ``kind`` has finished a shard and has at least two pending."""

        def half():
            rows = self.query(
                "SELECT count(*) FILTER (WHERE s.status = 'done'), count(*) FILTER (WHERE s.status = 'pending') "
                "FROM jobs_jobshard s JOIN jobs_job j ON j.id = s.job_id WHERE j.kind = %s",
                [kind],
            )
            return rows and rows[0][0] >= 1 and rows[0][1] >= 2

        wait_until(half, timeout=400, poll=0.1, what=f"{kind} half done")

    def finish_pipeline(self, expected_jobs: int, timeout: float = 500) -> tuple[dict, int]:
        """Wait for the pipeline; re-run a failed job once (it must say why it failed). Return state and re-runs."""
        reruns = 0
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.state()
            jobs = state["jobs"]
            failed = [j for j in jobs if j["status"] == "failed"]
            if failed:
                assert all(j["error"] for j in failed), failed  # a clear status: the error is recorded
                for j in failed:
                    self.driver("retry", str(j["id"]))
                    reruns += 1
            elif len(jobs) >= expected_jobs and all(j["status"] == "succeeded" for j in jobs):
                return state, reruns
            time.sleep(1)
        raise TimeoutError(f"pipeline not finished: {self.state()['jobs']}")


def test_database_and_broker_restarts_lose_nothing_and_write_nothing_twice(private_var_dir, spawn_worker, tmp_path):
    """Restart PostgreSQL during an import and during a batch, and Valkey during a batch; all ends complete."""
    embedded.start_all(private_var_dir)
    site = Site(private_var_dir, spawn_worker)
    site.driver("migrate")
    data = tmp_path / "transactions.csv"
    write_transactions(data, IMPORT_ROWS)
    figures = {}

    # --- the database restarts during an import
    # Given an import streaming a large file
    importing = site.driver_async("import", str(data))
    wait_until(lambda: site.query("SELECT 1 FROM recommendations_importrun WHERE status = 'running'"),
               timeout=120, poll=0.05, what="import running")  # fmt: skip
    time.sleep(1.0)
    # When the database restarts
    figures["db_restart_during_import_s"] = round(site.restart_database(), 1)
    _, stderr = importing.communicate(timeout=300)
    # Then the import failed, said so on its run, and kept no row
    assert importing.returncode != 0
    state = site.state()
    assert [r["status"] for r in state["imports"]] == ["failed"], (state["imports"], stderr[-2000:])
    assert state["imports"][0]["error"]
    assert (state["purchases"], state["products"], state["customers"]) == (0, 0, 0)
    figures["import_error"] = state["imports"][0]["error"][:120]
    # And importing again completes
    site.driver("import", str(data))
    state = site.state()
    assert [r["status"] for r in state["imports"]] == ["failed", "succeeded"]
    assert state["purchases"] == IMPORT_ROWS and state["customers"] == CUSTOMERS

    # --- the database restarts during a batch
    # Given the embedding pipeline running in a worker whose model is slow
    site.worker("first", encode_delay=0.5)
    site.driver("job", "embed_products", "embed_customers", "recommend")
    site.when_half_done("embed_products")
    # When the database restarts
    figures["db_restart_during_batch_s"] = round(site.restart_database(), 1)
    # Then the pipeline completes (resumed, or failed with its reason and re-run)
    state, reruns = site.finish_pipeline(expected_jobs=3)
    figures["db_restart_batch_reruns"] = reruns
    assert state["embedded_products"] == len(DESCRIPTIONS)
    assert state["recommendations"] == CUSTOMERS * 3

    # --- the broker restarts during a batch
    # Given the explanation batch running
    site.driver("job", "explain")
    site.when_half_done("explain")
    # When the broker restarts
    figures["broker_restart_during_batch_s"] = round(site.restart_broker(), 1)
    # Then the batch completes
    state, reruns = site.finish_pipeline(expected_jobs=4)
    figures["broker_restart_batch_reruns"] = reruns

    # And nothing was lost or written twice, no explanation is failed or half written
    assert state["shards"].keys() == {"done"}
    assert sum(state["explanations"].values()) == state["recommendations"]
    assert "failed" not in state["explanations"]
    assert not any(state["duplicates"].values()), state["duplicates"]
    record(
        "restarts[db during import, db during batch, broker during batch]",
        tasks_lost=0,
        duplicates=sum(state["duplicates"].values()),
        purchases=state["purchases"],
        explanations=sum(state["explanations"].values()),
        **figures,
    )
