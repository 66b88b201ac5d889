"""Fixtures of the fault tests: real worker processes that can be killed, brokers, figures."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
# A broker db of their own, so a session-wide test worker on the default test db never takes their tasks.
FAULTS_BROKER_DB = int(os.environ.get("ELM_FAULTS_BROKER_DB", 15))
REDIS_URL = os.environ.get("ELM_FAULTS_REDIS_URL", f"redis://127.0.0.1:6379/{FAULTS_BROKER_DB}")
RESULTS = ROOT / "var" / "reliability" / "results.jsonl"


def record(test: str, **figures) -> None:
    """Append a test's measured figures to var/reliability/results.jsonl (read into docs/reliability.md)."""
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    line = {"test": test, "at": time.strftime("%Y-%m-%d %H:%M:%S"), **figures}
    with RESULTS.open("a") as fh:
        fh.write(json.dumps(line) + "\n")
    print(json.dumps(line))  # shown with -s, and in the CI log on failure


def valkey_url() -> str:
    """The embedded (shared) Valkey, on the fault tests' own db."""
    from django.conf import settings

    from elmsite import embedded

    return embedded.valkey_url(settings.VAR_DIR, FAULTS_BROKER_DB)


def redis_available(url: str = REDIS_URL) -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@contextmanager
def broker(url: str):
    """Publish from this process to ``url`` (and flush its db) for the duration, then restore the broker."""
    from elmsite.celery import app

    before = app.conf.broker_url

    def switch(to: str) -> None:
        from kombu import pools

        # app.pool is kombu's global pool for the URL, and kombu's producer pools keep references to it:
        # closing only app._pool leaves a closed pool behind for the next publish ("Acquire on closed
        # pool" in later tests); reset() closes and forgets every global pool.
        pools.reset()
        app._pool = None
        app.amqp._producer_pool = None
        app.conf.broker_url = to

    switch(url)
    try:
        with app.connection_for_write() as conn:
            conn.default_channel.client.flushdb()  # a dedicated db: leftovers of an interrupted run only
        yield url
    finally:
        switch(before)


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen
    log: Path
    pids: set[int] = field(default_factory=set)

    def kill(self) -> None:
        """SIGKILL the worker and its pool children at once, as a machine or OOM kill would."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture
def spawn_worker(tmp_path, django_db_blocker):
    """Return a function that starts a worker (own process group) on the test database; all stop at the end."""
    from django.db import connection

    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    started: list[Worker] = []

    def spawn(*, name: str = "w", broker_url: str | None = None, faults: dict | None = None, **env) -> Worker:
        log = tmp_path / f"worker-{name}-{len(started)}.log"
        environment = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "elmsite.settings.test",
            "ELM_DATABASE_NAME": db_name,
            "ELM_VISIBILITY_TIMEOUT": "8",
            "ELM_JOB_RETRY_BACKOFF": "0.5",
            "ELM_TORCH_THREADS": "1",
            "ELM_FAULT_INJECT": json.dumps(faults or {}),
            **({"CELERY_BROKER_URL": broker_url} if broker_url else {}),
            **{k: str(v) for k, v in env.items()},
        }
        cmd = [sys.executable, "-m", "tests.faults.worker", "-Q", "default,gpu,search", "-c", "1",
               "-n", f"faults-{name}-{os.getpid()}-{len(started)}@%h",
               "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "INFO"]  # fmt: skip
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=environment, stdout=out, stderr=out, start_new_session=True)
        worker = Worker(name, proc, log)
        started.append(worker)
        deadline = time.monotonic() + 90
        while b"ready." not in log.read_bytes():
            if proc.poll() is not None or time.monotonic() > deadline:
                worker.kill()
                raise RuntimeError(f"worker {name} did not start:\n{worker.text()[-3000:]}")
            time.sleep(0.2)
        return worker

    yield spawn
    for worker in started:
        worker.kill()


def wait_until(predicate, *, timeout: float, poll: float = 0.1, what: str = "condition"):
    """Poll ``predicate`` until it returns something truthy; return it (TimeoutError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout} s")
        time.sleep(poll)


@pytest.fixture
def private_var_dir():
    """A var dir of our own for embedded servers that a test may kill or restart (never the shared ones)."""
    import shutil
    import tempfile

    from elmsite import embedded

    # Not under pytest's tmp_path: that is 0700, and PostgreSQL runs as the ``pgserver`` user under root.
    var_dir = Path(tempfile.mkdtemp(prefix="elm-faults-"))
    var_dir.chmod(0o755)
    yield var_dir
    for stop in (embedded.valkey_stop, embedded.pg_stop):
        with suppress(Exception):  # best effort: a test may have left the server half dead on purpose
            stop(var_dir)
    _kill_leftovers(var_dir)
    shutil.rmtree(var_dir, ignore_errors=True)
    shutil.rmtree(embedded.pg_socket_dir(var_dir), ignore_errors=True)


def _kill_leftovers(var_dir: Path) -> None:
    """SIGKILL any process still serving ``var_dir`` (a test's own servers only: matched by the unique path)."""
    import psutil

    for proc in psutil.process_iter(attrs=("pid", "cmdline")):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(var_dir) in cmdline and proc.info["pid"] != os.getpid():
            with suppress(psutil.Error):
                proc.kill()
