"""Row 7 (and the web part of row 9): the customer page and the recommendations API under load.

    .venv/bin/python benchmarks/bench_load.py [--duration 60] [--connections 20] [--workers 2]

Starts the production web server the way ``demo`` does (``elmsite.processes.start_web``: gunicorn, 2
workers x 4 threads, ``DJANGO_DEBUG=0``) on a free port of 127.0.0.1 against the benchmark database,
signs in a sales user whose book holds the sampled customers (the busiest ones, those with the most
explanations first), and drives it with ``wrk`` (Debian package; ``--connections`` connections, 2
threads, ``--duration`` seconds, a Lua script that picks a random customer per request and reports
p50/p95/p99 and errors). Targets, one after another:

* ``/healthz``: the trivial view on the same server (one ``SELECT 1``): the in-run baseline;
* ``/customers/<pseudonym>/``: the customer page (a sales user's view also records the exposure);
* ``/api/customers/<pseudonym>/recommendations/``: the API.

Queries per request are counted in-process with Django's test client and ``CaptureQueriesContext`` on
the same URLs and user: on a repeated view (the card cache filled, as under load) and on the first.
While the load runs, the RSS of every gunicorn process is sampled (peak per process), and each
worker's memory map is checked for libtorch (the web tier must stay torch-free).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import threading
import time
from pathlib import Path

from common import LOGS, ROOT, LoadTrace, log, setup_django, write_result

LUA = r"""
local paths = {}
for line in io.lines(os.getenv("BENCH_PATHS")) do paths[#paths + 1] = line end
local cookie = os.getenv("BENCH_COOKIE")
math.randomseed(os.time())
request = function()
  return wrk.format("GET", paths[math.random(#paths)], {["Cookie"] = cookie, ["Host"] = "127.0.0.1"})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "p50_ms": %.3f, "p95_ms": %.3f, '
    .. '"p99_ms": %.3f, "max_ms": %.3f, "mean_ms": %.3f, "errors": {"connect": %d, "read": %d, '
    .. '"write": %d, "status": %d, "timeout": %d}}\n',
    summary.requests, summary.duration, summary.bytes, latency:percentile(50) / 1000,
    latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000, latency.mean / 1000,
    e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(n_customers: int) -> tuple[object, list[str]]:
    """Return a sales user and the pseudonyms of its book (created for the benchmark)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.db.models import Count, Q

    from accounts.models import AccountAssignment
    from recommendations.models import Customer, RecommendationBatch

    user, _ = get_user_model().objects.get_or_create(username="bench_sales", defaults={"first_name": "Bench"})
    user.groups.add(Group.objects.get_or_create(name="sales")[0])
    active = Q(recommendations__batch__status=RecommendationBatch.Status.ACTIVE)
    customers = list(
        Customer.objects.filter(active)
        .annotate(explained=Count("recommendations__explanation", filter=active))
        .order_by("-explained", "-order_count", "id")[:n_customers]
    )
    for c in customers:
        AccountAssignment.objects.get_or_create(customer=c, user=user)
    return user, [c.pseudonym for c in customers]


def session_cookie(user) -> str:
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend

    SessionStore = import_module(settings.SESSION_ENGINE).SessionStore  # the server's (cached_db with Valkey)
    # The first backend that can load users (django-axes' backend only guards sign-ins).
    backend = next(b for b in settings.AUTHENTICATION_BACKENDS if hasattr(load_backend(b), "get_user"))
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = backend
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store.create()
    return f"{settings.SESSION_COOKIE_NAME}={store.session_key}"


def queries_per_request(user, paths: list[str]) -> dict:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client()
    client.force_login(user)
    first, counts, statuses = [], [], []
    # The first view of a page fills the card cache (and may assign the A/B arms, a new version: the
    # second view fills it again); from the third on it is what the load run sees.
    for path in paths:
        views = []
        for _ in range(3):
            with CaptureQueriesContext(connection) as ctx:
                response = client.get(path, HTTP_HOST="127.0.0.1")
            statuses.append(response.status_code)
            views.append(len(ctx.captured_queries))
        first.append(views[0])
        counts.append(views[-1])
    return {"mean": statistics.fmean(counts), "min": min(counts), "max": max(counts),
            "first_view_mean": statistics.fmean(first), "statuses": sorted(set(statuses))}  # fmt: skip


class RssSampler(threading.Thread):
    """Sample the RSS of a process tree (gunicorn master and workers), keeping each process's peak."""

    def __init__(self, root_pid: int):
        super().__init__(daemon=True)
        self.root_pid = root_pid
        self.peaks: dict[int, float] = {}
        self.torch_loaded: dict[int, bool] = {}
        self._halt = threading.Event()

    def run(self) -> None:
        import psutil

        while not self._halt.is_set():
            try:
                root = psutil.Process(self.root_pid)
                for proc in [root, *root.children(recursive=True)]:
                    rss = proc.memory_info().rss / 2**20
                    self.peaks[proc.pid] = max(self.peaks.get(proc.pid, 0), rss)
            except psutil.Error:
                pass
            self._halt.wait(0.5)

    def check_torch(self) -> None:
        for pid in self.peaks:
            try:
                maps = Path(f"/proc/{pid}/maps").read_text()
            except OSError:
                continue
            self.torch_loaded[pid] = "libtorch" in maps

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_wrk(*, url: str, paths: list[str], cookie: str, connections: int, duration: int) -> dict:
    LOGS.mkdir(parents=True, exist_ok=True)
    script = LOGS / "wrk_bench.lua"
    script.write_text(LUA)
    path_file = LOGS / "wrk_paths.txt"
    path_file.write_text("\n".join(paths) + "\n")
    load = LoadTrace()
    out = subprocess.run(
        ["wrk", "-t", "2", "-c", str(connections), "-d", f"{duration}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_PATHS": str(path_file), "BENCH_COOKIE": cookie},
        timeout=duration + 60,
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise SystemExit(f"wrk gave no result:\n{out.stdout}\n{out.stderr}")
    result = json.loads(line.removeprefix("BENCH_JSON "))
    result["requests_per_s"] = result["requests"] / (result["duration_us"] / 1e6)
    result["error_count"] = sum(result["errors"].values())
    result["load"] = load.as_dict()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=60)
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes (4 threads each)")
    parser.add_argument("--customers", type=int, default=50, help="customers in the sales user's book")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from elmsite import processes

    user, pseudonyms = prepare(args.customers)
    cookie = session_cookie(user)
    targets = {
        "trivial": ["/healthz"],
        "customer_page": [f"/customers/{p}/" for p in pseudonyms],
        "recommendations_api": [f"/api/customers/{p}/recommendations/" for p in pseudonyms],
    }
    qpr = {name: queries_per_request(user, random.Random(0).sample(paths, min(10, len(paths))))
           for name, paths in targets.items()}  # fmt: skip
    for name, q in qpr.items():
        if q["statuses"] != [200]:
            raise SystemExit(f"{name} answered {q['statuses']} in the test client")
    log(f"queries per request: { {k: v['mean'] for k, v in qpr.items()} }")

    port = _free_port()
    web = processes.start_web(host="127.0.0.1", port=port, workers=args.workers, log_dir=LOGS, cwd=ROOT,
                              env={"DJANGO_DEBUG": "0", "ELM_LOG_LEVEL": "WARNING"})  # fmt: skip
    results = {}
    try:
        processes.wait_for_log(web, b"Booting worker", timeout=120)
        time.sleep(3)
        sampler = RssSampler(web.proc.pid)
        sampler.start()
        url = f"http://127.0.0.1:{port}"
        for name, paths in targets.items():
            # Warm-up: imports, template compilation, connections (not measured).
            run_wrk(url=url, paths=paths, cookie=cookie, connections=4, duration=3)
            res = run_wrk(url=url, paths=paths, cookie=cookie, connections=args.connections, duration=args.duration)
            res["queries_per_request"] = qpr[name]
            results[name] = res
            log(
                f"{name}: {res['requests_per_s']:.1f} req/s, p50 {res['p50_ms']:.1f} ms, p95 {res['p95_ms']:.1f} ms, "
                f"errors {res['error_count']}"
            )
        sampler.check_torch()
        sampler.stop()
    finally:
        web.stop()
    workers = {pid: mib for pid, mib in sampler.peaks.items() if pid != web.proc.pid}
    base = results["trivial"]
    for name in ("customer_page", "recommendations_api"):
        results[name]["p95_ratio_vs_trivial"] = results[name]["p95_ms"] / base["p95_ms"]
        results[name]["throughput_ratio_vs_trivial"] = results[name]["requests_per_s"] / base["requests_per_s"]
    write_result(
        "load",
        {
            "server": f"gunicorn, {args.workers} workers x 4 threads, DJANGO_DEBUG=0",
            "connections": args.connections,
            "duration_s": args.duration,
            "customers": len(pseudonyms),
            "targets": results,
            "web_rss_mib": {
                "master": round(sampler.peaks.get(web.proc.pid, 0), 1),
                "workers_peak": round(max(workers.values(), default=0), 1),
                "total_peak": round(sum(sampler.peaks.values()), 1),
            },
            "web_torch_free": not any(sampler.torch_loaded.values()),
        },
    )


if __name__ == "__main__":
    main()
