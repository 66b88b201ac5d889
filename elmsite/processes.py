"""Start and stop the child processes of ``manage.py demo``: Celery workers and the web server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path
    offset: int = 0  # size of the (appended) log when the process started

    def stop(self, timeout: float = 30) -> None:
        """Stop warmly, or at once when the wait times out or the user interrupts it again."""
        stop_all([self], timeout=timeout)


def stop_all(children: Sequence[Child], *, timeout: float = 30) -> None:
    """Stop every child warmly and in parallel; kill those left after ``timeout`` or a second Ctrl-C.

    All children get SIGTERM at once, so a busy worker's warm shutdown does not delay the others, and
    an interrupt while waiting means "now" for every child still running, not only the one waited on.
    """
    alive = [c for c in children if c.proc.poll() is None]
    # Warm shutdown: a Celery worker finishes (or, with acks_late, requeues) its current task.
    for child in alive:
        child.proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    try:
        for child in alive:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        pass  # "now": what still runs is killed below; its unacknowledged task is redelivered by the broker
    for child in alive:
        if child.proc.poll() is None:
            child.proc.kill()
            child.proc.wait(5)


def _spawn(name: str, cmd: list[str], *, log_dir: Path, env: dict, cwd: Path) -> Child:
    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{name}.log"
    offset = log.stat().st_size if log.exists() else 0
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return Child(name, proc, log, offset)


def start_worker(
    *, name: str, queues: str, concurrency: int, log_dir: Path, cwd: Path, env: dict | None = None
) -> Child:
    cmd = [
        sys.executable, "-m", "celery", "-A", "elmsite", "worker",
        "-Q", queues, "-c", str(concurrency), "-n", f"{name}@%h",
        "--without-gossip", "--without-mingle", "--loglevel", "INFO",
    ]  # fmt: skip
    return _spawn(name, cmd, log_dir=log_dir, env={**os.environ, **(env or {})}, cwd=cwd)


def start_beat(*, log_dir: Path, cwd: Path, env: dict | None = None) -> Child:
    cmd = [sys.executable, "-m", "celery", "-A", "elmsite", "beat", "--loglevel", "INFO"]
    return _spawn("beat", cmd, log_dir=log_dir, env={**os.environ, **(env or {})}, cwd=cwd)


def start_web(*, host: str, port: int, workers: int, log_dir: Path, cwd: Path, env: dict | None = None) -> Child:
    cmd = [
        sys.executable, "-m", "gunicorn", "elmsite.wsgi:application",
        "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", "4",
        "--access-logfile", "-", "--timeout", "60",
    ]  # fmt: skip
    return _spawn("web", cmd, log_dir=log_dir, env={**os.environ, **(env or {})}, cwd=cwd)


def wait_for_log(child: Child, marker: bytes, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        data = child.log.read_bytes()[child.offset :] if child.log.exists() else b""
        if marker in data:
            return
        if child.proc.poll() is not None:
            raise RuntimeError(f"{child.name} exited early; see {child.log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{child.name} not ready after {timeout:.0f} s; see {child.log}")
        time.sleep(0.2)
