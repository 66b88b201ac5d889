"""Shared helpers of the benchmark scripts: Django setup on the benchmark database, machine facts, results.

Every script runs against its own database (``ELM_DATABASE_NAME``, default ``elmsite_bench``) and broker
db (``ELM_BROKER_DB``, default 8), so a benchmark never touches the development data or a dev worker's
queue. Each script writes ``benchmarks/results/<row>.json``; ``run_all.py`` collects them.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# ELM_BENCH_RESULTS points a trial run (e.g. --quick in CI) somewhere else than the committed results.
RESULTS = Path(os.environ.get("ELM_BENCH_RESULTS", ROOT / "benchmarks" / "results"))
LOGS = ROOT / "benchmarks" / "logs"
# Run as plain scripts from anywhere: the project packages live at the repository root.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.dev")
os.environ.setdefault("ELM_DATABASE_NAME", "elmsite_bench")
os.environ.setdefault("ELM_BROKER_DB", "8")
os.environ.setdefault("ELM_LOG_LEVEL", "WARNING")
# Measure the production path: no per-query bookkeeping of DEBUG (dev settings otherwise default to it).
os.environ.setdefault("DJANGO_DEBUG", "0")

_DJANGO_READY = False


def setup_django() -> None:
    """Configure Django once (after the environment above is final)."""
    global _DJANGO_READY
    if not _DJANGO_READY:
        import django

        django.setup()
        _DJANGO_READY = True


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except OSError:
        return ""


def machine() -> dict:
    """Facts that make a number comparable: CPU, memory, load, versions."""
    mem_total = 0
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    mem_total = int(line.split()[1]) * 1024
    except OSError:
        pass
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "mem_total_gib": round(mem_total / 2**30, 1),
        "loadavg": loadavg(),
        "commit": git_commit(),
        "database": os.environ.get("ELM_DATABASE_NAME"),
    }


def percentile(values: Sequence[float], q: float) -> float:
    """Return the q-th percentile (0-100) with linear interpolation (numpy's default)."""
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=float), q))


def latency_summary(seconds: Sequence[float]) -> dict:
    """p50/p95/p99/mean in milliseconds."""
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 3),
        "p95_ms": round(percentile(ms, 95), 3),
        "p99_ms": round(percentile(ms, 99), 3),
        "mean_ms": round(statistics.fmean(ms), 3),
    }


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


class LoadTrace:
    """Record the load average at the start and end of a measurement (and sample it in between)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, list[float]]] = []
        self._t0 = time.monotonic()
        self.sample()

    def sample(self) -> None:
        self.samples.append((round(time.monotonic() - self._t0, 1), loadavg()))

    def as_dict(self) -> dict:
        self.sample()
        ones = [s[1][0] for s in self.samples]
        return {"start": self.samples[0][1], "end": self.samples[-1][1], "max_1min": max(ones)}


@contextmanager
def timer(out: dict, key: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        out[key] = time.perf_counter() - started


def self_peak_rss_mib() -> float:
    """Peak resident set size of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_measured(cmd: list[str], *, env: dict | None = None, log: Path | None = None, timeout: float | None = None):
    """Run a child process; return (returncode, wall seconds, peak RSS MiB of that child, output tail)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    out = open(log, "ab") if log else subprocess.PIPE  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})}, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout if timeout else None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline and time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            break
        time.sleep(0.1)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    tail = ""
    if log:
        out.close()
        tail = log.read_text(errors="replace")[-2000:]
    return proc.returncode, wall, usage.ru_maxrss / 1024, tail


def write_result(row: str, data: dict) -> Path:
    """Write one row's results (with the machine facts) to benchmarks/results/<row>.json."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{row}.json"
    payload = {"row": row, "finished_at": now_iso(), "machine": machine(), **data}
    path.write_text(json.dumps(payload, indent=2, default=float) + "\n")
    print(f"wrote {path}", file=sys.stderr)
    return path


def read_result(row: str) -> dict | None:
    path = RESULTS / f"{row}.json"
    return json.loads(path.read_text()) if path.exists() else None


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')} load {loadavg()[0]:.2f}] {msg}", file=sys.stderr, flush=True)


def interleave(runs: int, fns: dict[str, Callable[[], float]]) -> dict[str, list[float]]:
    """Call each function ``runs`` times, alternating between them, and collect what they return."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(runs):
        for name, fn in fns.items():
            out[name].append(fn())
    return out


# --------------------------------------------------------------------------- databases and workers


def admin_conninfo(dbname: str) -> str:
    """libpq conninfo for ``dbname`` on the configured server (embedded socket or DATABASE_URL)."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    parts = [f"dbname={dbname}"]
    for key, name in (("HOST", "host"), ("PORT", "port"), ("USER", "user"), ("PASSWORD", "password")):
        if db.get(key):
            parts.append(f"{name}={db[key]}")
    return " ".join(parts)


def ensure_database(name: str) -> bool:
    """Create the database if it is missing; return whether it was created."""
    import psycopg

    with psycopg.connect(admin_conninfo("postgres"), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            return False
        conn.execute(f'CREATE DATABASE "{name}"')
        return True


def start_workers(count: int, *, queues: str = "gpu,default", threads: int = 1, tag: str = "bench") -> list:
    """Start ``count`` Celery worker processes (concurrency 1 each) on the benchmark broker db."""
    from elmsite import processes

    LOGS.mkdir(parents=True, exist_ok=True)
    children = [
        processes.start_worker(
            name=f"{tag}{i + 1}",
            queues=queues,
            concurrency=1,
            log_dir=LOGS,
            cwd=ROOT,
            env={"ELM_TORCH_THREADS": str(threads), "ELM_LOG_LEVEL": "INFO"},
        )
        for i in range(count)
    ]
    for child in children:
        processes.wait_for_log(child, b"ready.", timeout=180)
    return children


def stop_workers(children: list) -> None:
    for child in children:
        child.stop()


def purge_queues() -> None:
    """Drop messages left in the benchmark broker db by an interrupted run."""
    from elmsite.celery import app

    app.control.purge()
