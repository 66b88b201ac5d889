"""The main job: real servers, the real data, a real worker, and the site on http://127.0.0.1:8000."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from core.demo_users import DEMO_USERS
from elmsite import embedded, processes
from search.services import search_workers_warm_up


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class Command(BaseCommand):
    help = "Start everything on the embedded defaults, load the real data, compute, and serve the site."

    def add_arguments(self, parser):
        parser.add_argument("--dataset", type=Path, default=None, help="Online Retail .csv or .csv.gz")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--no-serve", action="store_true", help="Prepare everything, then stop.")
        parser.add_argument("--reset-passwords", action="store_true", help="Print new passwords for demo users.")

    def handle(self, *args, dataset, host, port, no_serve, reset_passwords, **options):
        t0 = time.monotonic()
        var = settings.VAR_DIR
        dataset = dataset or settings.ELM_DATASET_PATH
        if not dataset.exists():
            raise CommandError(
                f"Dataset not found at {dataset}. Download 'Online Retail' from the UCI Machine Learning "
                "Repository (https://doi.org/10.24432/C5BW33), save it as CSV, and pass --dataset PATH."
            )
        # Ctrl-C and SIGTERM stop everything, also when a script started us with SIGINT ignored.
        processes.stop_on_signals()
        started = self._servers_to_start(var)
        children: list[processes.Child] = []  # each child is added as soon as it runs: an interrupt stops it
        stopping = False
        try:
            self._start_servers(var)
            self._step("Migrating the database")
            call_command("migrate", interactive=False, verbosity=0)
            call_command("jobs_recover", "--all")  # a stopped run's unfinished jobs: interrupted, before our workers
            self._import(dataset)
            self._start_workers(var, children)
            self._start_beat(var, children)
            self._compute()
            self._users(reset_passwords)
            self._books()
            elapsed = time.monotonic() - t0
            if no_serve:
                self.stdout.write(self.style.SUCCESS(f"Ready in {elapsed:.0f} s (not serving: --no-serve)."))
                return
            call_command("collectstatic", interactive=False, verbosity=0)
            web = processes.start_web(
                host=host, port=port, workers=2, log_dir=var / "log", cwd=settings.BASE_DIR, env={"DJANGO_DEBUG": "0"}
            )
            children.append(web)
            processes.wait_for_log(web, b"Booting worker", timeout=60)
            self.stdout.write(
                self.style.SUCCESS(f"Ready in {elapsed:.0f} s. Serving http://{host}:{port}/ — press Ctrl-C to stop.")
            )
            while all(c.proc.poll() is None for c in children):
                time.sleep(1)
            dead = [c.name for c in children if c.proc.poll() is not None]
            raise CommandError(f"{', '.join(dead)} stopped unexpectedly; see {var / 'log'}")
        except KeyboardInterrupt:
            stopping = True
            self.stdout.write(
                f"\nStopping… (workers get {processes.WARM_SECONDS:g} s to finish their current task, then stop "
                "cold; Ctrl-C again stops them at once)"
            )
        finally:
            stop_started = time.monotonic()
            processes.stop_all(children)  # a further Ctrl-C while it waits kills the children at once
            # The servers stop in a few seconds; an interrupt must not leave them half stopped.
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            if started:
                embedded.stop_all(var)
            if stopping or children:
                took = time.monotonic() - stop_started
                self.stdout.write(f"Stopped everything this command started (in {took:.1f} s).")

    # ----------------------------------------------------------------- steps

    def _step(self, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"» {text}"))

    def _servers_to_start(self, var: Path) -> bool:
        """Whether this command starts the embedded servers (and so stops them when it ends)."""
        if not (settings.EMBEDDED_DATABASE or settings.EMBEDDED_BROKER):
            return False
        return not (embedded.pg_status(var).running and embedded.valkey_status(var).running)

    def _start_servers(self, var: Path) -> None:
        self._step("Starting the embedded servers")
        if not (settings.EMBEDDED_DATABASE or settings.EMBEDDED_BROKER):
            self.stdout.write("  using DATABASE_URL and CELERY_BROKER_URL")
            return
        for status in embedded.start_all(var, database=settings.EMBEDDED_DATABASE, broker=settings.EMBEDDED_BROKER):
            self.stdout.write(f"  {status}")

    def _import(self, dataset: Path) -> None:
        from recommendations.models import ImportRun

        self._step(f"Importing {dataset}")
        digest = _sha256(dataset)
        done = ImportRun.objects.filter(file_sha256=digest, status=ImportRun.Status.SUCCEEDED).first()
        if done:
            self.stdout.write(f"  already imported (run #{done.pk}, {done.rows_inserted:,} lines); reusing the data")
            return
        call_command("import_transactions", str(dataset))

    def _start_workers(self, var: Path, children: list[processes.Child]) -> None:
        self._step("Starting Celery workers (queues: gpu, default, search)")
        log_dir = var / "log"
        # Two single-threaded processes rather than one with two torch threads: on a shared 2-core CPU,
        # OpenMP spin-waits make threaded small matmuls slower, while two shards in parallel scale.
        gpu = processes.start_worker(
            name="gpu", queues="gpu", concurrency=2, log_dir=log_dir, cwd=settings.BASE_DIR,
            env={"ELM_TORCH_THREADS": os.environ.get("ELM_TORCH_THREADS", "1")},
        )  # fmt: skip
        children.append(gpu)
        default = processes.start_worker(
            name="default", queues="default", concurrency=2, log_dir=log_dir, cwd=settings.BASE_DIR
        )
        children.append(default)
        # Searches are interactive: one small process (the encoder only) keeps them answered while the
        # gpu processes spend minutes on adapter training and explanation shards.
        search = processes.start_worker(
            name="search", queues=settings.ELM_SEARCH_QUEUE, concurrency=1, log_dir=log_dir, cwd=settings.BASE_DIR,
            env={"ELM_TORCH_THREADS": "1"},
        )  # fmt: skip
        children.append(search)
        for child in (gpu, default, search):
            processes.wait_for_log(child, b"ready.", timeout=90)
            self.stdout.write(f"  worker {child.name}: pid {child.proc.pid}, log {child.log}")
        search_workers_warm_up()

    def _start_beat(self, var: Path, children: list[processes.Child]) -> None:
        self._step("Starting Celery beat (nightly refresh; schedules editable in the admin)")
        beat = processes.start_beat(log_dir=var / "log", cwd=settings.BASE_DIR)
        children.append(beat)
        processes.wait_for_log(beat, b"beat: Starting", timeout=60)
        self.stdout.write(f"  beat: pid {beat.proc.pid}, log {beat.log}")

    def _compute(self) -> None:
        from jobs import pipeline
        from jobs.progress import JobFailed, wait_for_pipeline
        from jobs.services import job_create, pipeline_start

        self._step("Embedding, recommending, training concepts, calibrating, explaining (in the workers)")
        # The first wave of explanations (top 3 for the 50 most active customers) is ready before serving,
        # written with a quickly trained ELM adapter (or the one already there); the rest is explained in the
        # background while the site runs, after the fuller adapter training.
        job = pipeline_start(steps=pipeline.DEMO, params={"customers": 50, "ranks": 3, "preset": "quick"})
        try:
            chain = wait_for_pipeline(job)
        except JobFailed as exc:
            raise CommandError(f"{exc}. Worker logs: {settings.VAR_DIR / 'log'}") from exc
        for j in chain:
            took = (j.finished_at - j.started_at).total_seconds() if j.started_at and j.finished_at else 0
            note = " (unchanged, reused)" if j.result.get("reused") else ""
            self.stdout.write(f"  {j.kind}: {j.items_done:,} items in {j.shards_total} shards, {took:.1f} s{note}")
        # In the background, while the site serves (progress on /jobs/). Chains share their params, so
        # the top customers' descriptions are a chain of their own; the two gpu processes run them side by side.
        background = [
            # the dashboard's replay of the real data at a past cutoff (reused when done), then segments
            pipeline_start(steps=pipeline.ANALYSIS),
            job_create(kind="describe_customers", params={"customers": 50}),
            # the fuller ELM adapter (reused when trained already), then everything else
            pipeline_start(steps=pipeline.DEMO_BACKGROUND),
        ]
        self.stdout.write(
            "  in the background (jobs " + ", ".join(f"#{j.pk}" for j in background) + "): the replay for the "
            "dashboard and segments; descriptions of the top customers; the fuller ELM adapter, then the remaining "
            "explanations and descriptions — progress on /jobs/"
        )

    def _books(self) -> None:
        from accounts.services import assignment_demo_books

        self._step("Account books of the sales users")
        User = get_user_model()
        sales = [User.objects.get(username=u.username) for u in DEMO_USERS if u.role == "sales"]
        for username, n in assignment_demo_books(users=sales).items():
            self.stdout.write(f"  {username}: {n:,} customers")

    def _users(self, reset: bool) -> None:
        from core.demo_users import demo_users_ensure

        self._step("Demo users")
        passwords = demo_users_ensure(reset_passwords=reset)
        lines = [f"  {username:<10} password: {password}" for username, password in passwords.items() if password]
        if lines:
            self.stdout.write("  Sign in at /login/ with (shown only now; --reset-passwords prints new ones):")
            for line in lines:
                self.stdout.write(line)
        else:
            names = ", ".join(u.username for u in DEMO_USERS)
            self.stdout.write(f"  users {names} exist; run with --reset-passwords to get new passwords")
