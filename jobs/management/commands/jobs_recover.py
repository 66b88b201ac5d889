"""Mark the jobs a stopped run left queued or running as interrupted, and optionally resume them."""

from __future__ import annotations

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from jobs.models import Job
from jobs.services import STALE_REASON, job_resume, job_stale_after, jobs_interrupted_mark

ALL_REASON = "Interrupted: the workers were stopped before this job finished (the run that started it ended)."


class Command(BaseCommand):
    help = (
        "Mark queued or running jobs that no worker runs any more as interrupted (by default those "
        "without a heartbeat for ELM_JOB_STALE_AFTER_HOURS), then list them; --resume goes on with them."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--all",
            dest="take_all",
            action="store_true",
            help="Take every queued or running job. Only when no worker runs anywhere (all stopped).",
        )
        parser.add_argument(
            "--stale-after-minutes",
            type=float,
            default=None,
            help="Take jobs without a heartbeat for this long (default: ELM_JOB_STALE_AFTER_HOURS). "
            "Keep it well above ELM_JOB_HEARTBEAT_SECONDS.",
        )
        parser.add_argument("--resume", action="store_true", help="Queue their unfinished shards again.")

    def handle(self, *args, take_all, stale_after_minutes, resume, **options):
        from jobs.heartbeat import heartbeat_seconds

        if take_all and stale_after_minutes is not None:
            raise CommandError("Use --all or --stale-after-minutes, not both.")
        if take_all:
            ids = jobs_interrupted_mark(reason=ALL_REASON)
        else:
            stale_after = job_stale_after() if stale_after_minutes is None else timedelta(minutes=stale_after_minutes)
            # Three missed beats at least: a live worker's job must never be taken.
            if stale_after.total_seconds() < 3 * heartbeat_seconds():
                raise CommandError(
                    f"--stale-after-minutes must be at least {3 * heartbeat_seconds() / 60:g} "
                    "(three heartbeats), or a live worker's job could be taken."
                )
            ids = jobs_interrupted_mark(reason=STALE_REASON, stale_after=stale_after)
        if not ids:
            self.stdout.write("No queued or running job without a worker.")
            return
        for job in Job.objects.filter(pk__in=ids).order_by("pk"):
            done = f"{job.shards_done}/{job.shards_total} shards done"
            self.stdout.write(f"job #{job.pk} {job.kind}: interrupted ({done})")
            if resume:
                job = job_resume(job_id=job.pk)
                self.stdout.write(f"  resumed: {job.status}")
        if not resume:
            self.stdout.write("Resume or retry them on the jobs page, or run this command again with --resume.")
