"""Queue a new recommendation batch for every embedded customer."""

from django.core.management.base import BaseCommand, CommandError

from jobs.progress import JobFailed, wait_for_pipeline
from jobs.services import job_create


class Command(BaseCommand):
    help = "Compute top-N recommendations per customer through the HNSW index, as a new batch."

    def add_arguments(self, parser):
        parser.add_argument("--wait", action="store_true", help="Follow progress until done.")
        parser.add_argument("--timeout", type=float, default=None)

    def handle(self, *args, wait, timeout, **options):
        job = job_create(kind="recommend")
        self.stdout.write(f"Queued recommendation job #{job.pk}.")
        if wait:
            try:
                (job,) = wait_for_pipeline(job, timeout=timeout)
            except JobFailed as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(
                f"Batch {job.result.get('batch_id')}: {job.result.get('recommendations')} recommendations."
            )
