"""Fine-tune the sentence encoder on co-purchase pairs, stage the new vectors, report the gain; switch on request."""

import sys

from django.core.management.base import BaseCommand, CommandError

from recommendations.services.encoder_tuning import DEFAULT_CUTOFF, encoder_activate, encoder_tune


class Command(BaseCommand):
    help = (
        "Fine-tune all-MiniLM-L6-v2 on co-purchase pairs from before the evaluation cutoff "
        "(MultipleNegativesRankingLoss), versioned under var/models/encoder/, re-embed the catalogue aside and "
        "report product-search and recommendation NDCG@10 before/after. --activate switches to a tuned version."
    )

    def add_arguments(self, parser):
        parser.add_argument("--preset", choices=("cpu", "gpu", "smoke"), default="cpu")
        parser.add_argument("--cutoff", default=DEFAULT_CUTOFF)
        parser.add_argument("--max-steps", type=int, default=None)
        parser.add_argument("--time-budget", type=float, default=None, help="Training wall-time budget (s).")
        parser.add_argument("--threads", type=int, default=None)
        parser.add_argument("--no-evaluate", action="store_true")
        parser.add_argument("--queue", action="store_true", help="Run as a background job (gpu queue).")
        parser.add_argument(
            "--activate", metavar="VERSION", help="Switch to a tuned version (needs ELM_ENCODER=tuned)."
        )

    def handle(self, *args, **opts):
        if opts["activate"]:
            try:
                written = encoder_activate(version=opts["activate"])
            except (FileNotFoundError, RuntimeError) as exc:
                raise CommandError(str(exc)) from exc
            from jobs import pipeline
            from jobs.services import pipeline_start

            # Product vectors are already switched: the rest of the pipeline from the customer vectors on.
            job = pipeline_start(steps=pipeline.steps("embed_customers", "recommend"))
            self.stdout.write(
                f"{written} product vectors switched to {opts['activate']}; customer vectors and recommendations "
                f"follow in job #{job.pk}."
            )
            return
        overrides = {
            key: opts[opt]
            for key, opt in (("max_steps", "max_steps"), ("time_budget_s", "time_budget"), ("threads", "threads"))
            if opts[opt] is not None
        }
        if opts["queue"]:
            from jobs.services import job_create

            params = {"preset": opts["preset"], "cutoff": opts["cutoff"], "overrides": overrides}
            job = job_create(kind="tune_encoder", params=params)
            self.stdout.write(f"Queued encoder tuning job #{job.pk}.")
            return
        report = encoder_tune(
            preset=opts["preset"],
            cutoff=opts["cutoff"],
            overrides=overrides,
            evaluate=not opts["no_evaluate"],
            log=lambda m: print(m, file=sys.stderr, flush=True),
        )
        self.stdout.write(f"tuned encoder {report['version']} ({report['training']['steps']} steps)")
        if "search" in report:
            s = report["search"]
            self.stdout.write(f"product search NDCG@10 ({s['queries']} queries): {s['before']:.4f} -> {s['after']:.4f}")
            for name in ("embedding", "hybrid"):
                entry = report["evaluation_split"][name]
                self.stdout.write(
                    f"{name} test NDCG@10: {entry['before']['mean']:.4f} {entry['before']['ci95']} -> "
                    f"{entry['after']['mean']:.4f} {entry['after']['ci95']}"
                )
        self.stdout.write(f"{report['wall_seconds']:.0f} s; switch with: tune_encoder --activate {report['version']}")
