"""Start and stop the child processes of ``manage.py demo``: Celery workers and the web server."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Seconds a child gets to stop by itself (a Celery worker: finish or hand back its task) before the
# cold shutdown, and after that before it is killed: Ctrl-C ends everything within about 10 s. Tasks
# are idempotent and acknowledged late, so a task cut short is redelivered and done again.
WARM_SECONDS = float(os.environ.get("ELM_STOP_WARM_SECONDS", 3))
COLD_SECONDS = float(os.environ.get("ELM_STOP_COLD_SECONDS", 2))


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log: Path
    offset: int = 0  # size of the (appended) log when the process started

    def stop(self, timeout: float = WARM_SECONDS) -> None:
        """Stop warmly, or at once when the wait times out or the user interrupts it again."""
        stop_all([self], timeout=timeout)


def stop_on_signals() -> None:
    """Turn SIGINT and SIGTERM into KeyboardInterrupt in this (main) thread, whatever was inherited.

    A script that starts a command in the background (``cmd &``) starts it with SIGINT ignored, and
    Python then installs no Ctrl-C handler of its own; the handler is installed here explicitly.
    """

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)


def _send(child: Child, signum: int, *, group: bool = False) -> None:
    """Send ``signum`` to the child, or with ``group`` to its whole process group (pool processes included).

    The children lead their own groups (``start_new_session``), so a terminal's Ctrl-C reaches only
    this process, which then stops them in order; a child that does not lead one gets the signal alone.
    """
    # Only while the child is not reaped: until then its pid, and so its group id, cannot be reused.
    if child.proc.poll() is not None:
        return
    try:
        if group and os.getpgid(child.proc.pid) == child.proc.pid:
            os.killpg(child.proc.pid, signum)
        else:
            os.kill(child.proc.pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _wait_all(children: Sequence[Child], seconds: float) -> bool:
    """Wait until every child has exited or ``seconds`` have passed; return False if interrupted meanwhile."""
    deadline = time.monotonic() + seconds
    try:
        for child in children:
            child.proc.wait(max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    except KeyboardInterrupt:
        return False
    return True


def stop_all(children: Sequence[Child], *, timeout: float = WARM_SECONDS, cold: float = COLD_SECONDS) -> None:
    """Stop every child and its processes: warm, then cold after ``timeout``, then killed after ``cold`` more.

    All children get SIGTERM at once (warm: a Celery worker finishes its current task, gunicorn its
    requests), so one child's shutdown does not delay the others; the ones still running after
    ``timeout`` get SIGQUIT (Celery's cold shutdown: its pool processes end now; gunicorn's quick
    exit), and what still runs ``cold`` seconds later is killed with its whole process group. An
    interrupt (a second Ctrl-C) while waiting skips to the kill, for every child still running.
    """
    alive = [c for c in children if c.proc.poll() is None]
    for child in alive:
        _send(child, signal.SIGTERM)
    if _wait_all(alive, timeout):
        left = [c for c in alive if c.proc.poll() is None]
        for child in left:
            _send(child, signal.SIGQUIT)
        _wait_all(left, cold)
    for child in alive:
        _send(child, signal.SIGKILL, group=True)
    for child in alive:
        with contextlib.suppress(subprocess.TimeoutExpired, KeyboardInterrupt):
            child.proc.wait(5)


def spawn(name: str, cmd: list[str], *, log_dir: Path, env: dict, cwd: Path) -> Child:
    """Start ``cmd`` in a session (and process group) of its own, its output appended to ``log_dir/<name>.log``."""
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
    return spawn(name, cmd, log_dir=log_dir, env={**os.environ, **(env or {})}, cwd=cwd)


def start_beat(*, log_dir: Path, cwd: Path, env: dict | None = None) -> Child:
    cmd = [sys.executable, "-m", "celery", "-A", "elmsite", "beat", "--loglevel", "INFO"]
    return spawn("beat", cmd, log_dir=log_dir, env={**os.environ, **(env or {})}, cwd=cwd)


def start_web(*, host: str, port: int, workers: int, log_dir: Path, cwd: Path, env: dict | None = None) -> Child:
    cmd = [
        sys.executable, "-m", "gunicorn", "elmsite.wsgi:application",
        "--bind", f"{host}:{port}", "--workers", str(workers), "--threads", "4",
        "--access-logfile", "-", "--timeout", "60",
    ]  # fmt: skip
    return spawn("web", cmd, log_dir=log_dir, env={**os.environ, **(env or {})}, cwd=cwd)


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
