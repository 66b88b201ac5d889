"""Queue the embedding of products and customers whose inputs changed."""

from django.core.management.base import BaseCommand, CommandError

from jobs import pipeline
from jobs.progress import JobFailed, wait_for_pipeline
from jobs.services import pipeline_start


class Command(BaseCommand):
    help = "Embed changed products (gpu queue) and then changed customers, in a Celery worker."

    def add_arguments(self, parser):
        parser.add_argument("--wait", action="store_true", help="Follow progress until done.")
        parser.add_argument("--then-recommend", action="store_true", help="Refresh recommendations afterwards.")
        parser.add_argument("--timeout", type=float, default=None)

    def handle(self, *args, wait, then_recommend, timeout, **options):
        steps = pipeline.steps(*pipeline.EMBED, "recommend") if then_recommend else pipeline.EMBED
        job = pipeline_start(steps=steps)
        self.stdout.write(f"Queued embedding job #{job.pk} (then: {', '.join(steps[1:])}).")
        if wait:
            try:
                chain = wait_for_pipeline(job, timeout=timeout)
            except JobFailed as exc:
                raise CommandError(str(exc)) from exc
            for j in chain:
                self.stdout.write(f"{j.kind}: {j.items_done} items in {j.shards_total} shards, {j.status}")
