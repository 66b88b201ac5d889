"""Queue explanations for the active recommendation batch."""

from django.core.management.base import BaseCommand, CommandError

from jobs import pipeline
from jobs.progress import JobFailed, wait_for_pipeline
from jobs.services import pipeline_start


class Command(BaseCommand):
    help = "Explain recommendations that have no explanation yet (evidence, concepts, SIG words, reason)."

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=None, help="Only the N most active customers.")
        parser.add_argument("--ranks", type=int, default=None, help="Only the top K recommendations each.")
        parser.add_argument("--no-lm", action="store_true", help="Template reasons only (no language model).")
        parser.add_argument("--retrain", action="store_true", help="Retrain concepts and recalibrate first.")
        parser.add_argument("--wait", action="store_true", help="Follow progress until done.")
        parser.add_argument("--timeout", type=float, default=None)

    def handle(self, *args, customers, ranks, no_lm, retrain, wait, timeout, **options):
        params = {"customers": customers, "ranks": ranks, "use_lm": not no_lm, "force": retrain}
        job = pipeline_start(steps=pipeline.EXPLAIN, params=params)
        self.stdout.write(f"Queued job #{job.pk}: {' -> '.join(pipeline.EXPLAIN)}.")
        if wait:
            try:
                chain = wait_for_pipeline(job, timeout=timeout)
            except JobFailed as exc:
                raise CommandError(str(exc)) from exc
            self.stdout.write(f"Explained {chain[-1].items_done:,} recommendations.")
