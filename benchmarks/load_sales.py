"""Load: concurrent sales users browse customer pages and record outcomes while an explanation batch runs.

    .venv/bin/python benchmarks/load_sales.py                 # 20 users, 120 s, language-model reasons
    .venv/bin/python benchmarks/load_sales.py --users 5 --seconds 20 --no-lm

Runs against its own database (ELM_DATABASE_NAME, default ``elmsite_load``) and broker db
(ELM_BROKER_DB, default 7) on the embedded servers; creates the shop, 20 sales users (distinct logins,
each with a book of customers), starts gunicorn on 127.0.0.1 and one Celery worker, queues the
explanation batch, then lets every user loop for a bounded time: customer list, a customer page,
an outcome POST (a new form token each time, and every fifth one sent twice, as a double click).
Reports p50/p95/p99 per request kind, errors, and checks that every outcome is stored exactly once.
Writes benchmarks/results/load_sales.json.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import socket
import sys
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("ELM_DATABASE_NAME", "elmsite_load")
os.environ.setdefault("ELM_BROKER_DB", "7")
os.environ.setdefault("DJANGO_DEBUG", "0")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import LOGS, ROOT, latency_summary, log, machine, setup_django, write_result

PASSWORD = "load-test-password-1"  # noqa: S105 - a made-up password for made-up users
_CSRF_RE = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
_OUTCOME_RE = re.compile(r'action="(/customers/[0-9a-f]+/recommendations/(\d+)/outcome/)"')


@dataclass
class Tally:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: list[str] = field(default_factory=list)
    outcome_tokens: dict[str, str] = field(default_factory=dict)  # token -> username (accepted POSTs)
    double_posts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, kind: str, seconds: float) -> None:
        with self.lock:
            self.latencies[kind].append(seconds)

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sales_user(base_url: str, username: str, pseudonyms: list[str], deadline: float, tally: Tally, seed: int) -> None:
    """One sales person: sign in, then browse and record outcomes until the deadline."""
    import requests

    rng = random.Random(seed)
    session = requests.Session()

    def timed(kind: str, method: str, path: str, **kwargs):
        began = time.monotonic()
        try:
            response = session.request(method, base_url + path, timeout=60, allow_redirects=False, **kwargs)
        except requests.RequestException as exc:
            tally.error(f"{kind} {path}: {type(exc).__name__}")
            return None
        tally.add(kind, time.monotonic() - began)
        if response.status_code >= 400:
            tally.error(f"{kind} {path}: HTTP {response.status_code}")
            return None
        return response

    page = timed("login form", "GET", "/login/")
    if page is None:
        return
    token = _CSRF_RE.search(page.text).group(1)
    signed_in = timed("login", "POST", "/login/", data={"username": username, "password": PASSWORD,
                                                        "csrfmiddlewaretoken": token})  # fmt: skip
    if signed_in is None or signed_in.status_code != 302:
        tally.error(f"login {username}: not signed in")
        return
    while time.monotonic() < deadline:
        if timed("customer list", "GET", "/customers/") is None:
            continue
        pseudonym = rng.choice(pseudonyms)
        page = timed("customer page", "GET", f"/customers/{pseudonym}/")
        if page is None:
            continue
        targets = _OUTCOME_RE.findall(page.text)
        if not targets:
            tally.error(f"customer page {pseudonym}: no outcome form")
            continue
        action, _ = rng.choice(targets)
        csrf = _CSRF_RE.search(page.text).group(1)
        form_token = str(uuid.uuid4())
        data = {"kind": rng.choice(["pitched", "won", "lost"]), "comment": "", "token": form_token,
                "csrfmiddlewaretoken": csrf}  # fmt: skip
        sends = 2 if rng.random() < 0.2 else 1  # a double click sends the same form twice
        for _ in range(sends):
            response = timed("outcome post", "POST", action, data=data)
            if response is not None and response.status_code == 302:
                with tally.lock:
                    tally.outcome_tokens[f"{form_token}:{data['kind']}"] = username
        if sends == 2:
            with tally.lock:
                tally.double_posts += 1


def run_load(*, base_url: str, books: dict[str, list[str]], seconds: float) -> Tally:
    """Run one thread per sales user for ``seconds``; return what they measured."""
    tally = Tally()
    deadline = time.monotonic() + seconds
    threads = [
        threading.Thread(target=sales_user, args=(base_url, user, pseudonyms, deadline, tally, i), daemon=True)
        for i, (user, pseudonyms) in enumerate(sorted(books.items()))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    return tally


def create_users(*, users: int, customers_per_user: int, prefix: str = "load-sales") -> dict[str, list[str]]:
    """Create ``users`` sales users with a book of customers each; return username -> pseudonyms."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from accounts.models import AccountAssignment
    from recommendations.models import Customer

    customers = list(Customer.objects.filter(recommendations__isnull=False).distinct().order_by("pk"))
    group, _ = Group.objects.get_or_create(name="sales")
    books = {}
    for i in range(users):
        user, _ = get_user_model().objects.get_or_create(username=f"{prefix}-{i + 1:02d}")
        user.set_password(PASSWORD)
        user.save()
        user.groups.add(group)
        book = [customers[(i * customers_per_user + j) % len(customers)] for j in range(customers_per_user)]
        for customer in book:
            AccountAssignment.objects.get_or_create(customer=customer, user=user)
        books[user.username] = [c.pseudonym for c in book]
    return books


def outcome_check(tally: Tally, usernames: list[str]) -> dict:
    """Compare accepted outcome POSTs with the rows stored: each exactly once."""
    from outcomes.models import Outcome

    stored = Outcome.objects.filter(user__username__in=usernames)
    return {
        "accepted_posts_distinct": len(tally.outcome_tokens),
        "double_clicks": tally.double_posts,
        "rows_stored": stored.count(),
        "exactly_once": stored.count() == len(tally.outcome_tokens),
    }


def _prepare_database(customers: int) -> None:
    from django.core.management import call_command

    from elmsite import embedded
    from recommendations.models import Recommendation

    embedded.start_all(Path(os.environ.get("ELM_VAR_DIR", ROOT / "var")))
    embedded._pg_ensure_database(Path(os.environ.get("ELM_VAR_DIR", ROOT / "var")), os.environ["ELM_DATABASE_NAME"])
    call_command("migrate", verbosity=0)
    if Recommendation.objects.filter(batch__status="active").exists():
        return
    sys.path.insert(0, str(ROOT))
    from tests.shop import build_shop, embed_and_recommend

    build_shop(customers=customers)
    embed_and_recommend()


def _forget_earlier_runs() -> None:
    """Drop what an interrupted earlier run left: its queued tasks (this run's own broker db) and jobs."""
    from elmsite.celery import app
    from jobs.services import jobs_interrupted_mark

    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    jobs_interrupted_mark(reason="Interrupted: an earlier load run was stopped.")  # no worker runs yet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=120)
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--no-lm", action="store_true", help="explain with template reasons only (faster)")
    args = parser.parse_args()
    setup_django()
    from elmsite.processes import start_web, start_worker, wait_for_log
    from jobs.services import job_create
    from outcomes.models import Outcome

    log("preparing the database (first run: import of the shop, embeddings, recommendations)")
    _prepare_database(args.customers)
    books = create_users(users=args.users, customers_per_user=3)
    _forget_earlier_runs()
    Outcome.objects.filter(user__username__in=list(books)).delete()
    port = free_port()
    env = {"ELM_TORCH_THREADS": "1", "DJANGO_DEBUG": "0"}
    web = start_web(host="127.0.0.1", port=port, workers=args.web_workers, log_dir=LOGS, cwd=ROOT, env=env)
    # Small explanation shards, so the batch visibly progresses during a bounded run.
    worker_env = {**env, "ELM_EXPLAIN_SHARD_SIZE": "4"}
    worker = start_worker(
        name="load", queues="default,gpu,search", concurrency=1, log_dir=LOGS, cwd=ROOT, env=worker_env
    )
    try:
        wait_for_log(web, b"Booting worker")
        wait_for_log(worker, b"ready.")
        from explanations.models import Explanation

        Explanation.objects.all().delete()  # the batch has work to do while the users browse
        job = job_create(kind="explain", params={"use_lm": not args.no_lm})
        log("waiting for the batch's first shard (the worker loads its models)")
        deadline = time.monotonic() + 900
        while job.items_done == 0 and time.monotonic() < deadline:
            time.sleep(2)
            job.refresh_from_db()
        before = job.items_done
        log(
            f"{args.users} sales users for {args.seconds:.0f} s against http://127.0.0.1:{port} (explain job #{job.pk})"
        )
        began = time.monotonic()
        tally = run_load(base_url=f"http://127.0.0.1:{port}", books=books, seconds=args.seconds)
        elapsed = time.monotonic() - began
        job.refresh_from_db()
    finally:
        web.stop()
        worker.stop()
    requests_total = sum(len(v) for v in tally.latencies.values())
    result = {
        "users": args.users,
        "seconds": round(elapsed, 1),
        "requests": requests_total,
        "requests_per_s": round(requests_total / elapsed, 1),
        "errors": len(tally.errors),
        "error_samples": tally.errors[:10],
        "latency": {kind: latency_summary(v) for kind, v in sorted(tally.latencies.items())},
        "all_requests": latency_summary([s for v in tally.latencies.values() for s in v]),
        # Browsing: everything but signing in (password hashing is deliberately slow).
        "browsing": latency_summary([s for k, v in tally.latencies.items() if not k.startswith("login") for s in v]),
        "outcomes": outcome_check(tally, list(books)),
        "explain_job": {"status": job.status, "items_done": job.items_done, "items_total": job.items_total,
                        "use_lm": not args.no_lm, "explained_during_load": job.items_done - before},
        "web_workers": args.web_workers,
        "machine": machine(),
    }  # fmt: skip
    path = write_result("load_sales", result)
    log(f"browsing p95 {result['browsing']['p95_ms']} ms, errors {result['errors']}, outcomes {result['outcomes']}")
    log(f"wrote {path}")
    if result["errors"] or not result["outcomes"]["exactly_once"]:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
