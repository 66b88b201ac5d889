"""Run the offline evaluation of every recommender and store it as an EvaluationRun."""

import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from recommendations.services.evaluation import (
    DEFAULT_CUTOFF,
    evaluation_result,
    evaluation_run_execute,
    evaluation_run_start,
    production_default_write,
)


class Command(BaseCommand):
    help = (
        "Evaluate the recommenders on a temporal split (tuning on validation folds only), store an EvaluationRun "
        "and, for a full run, choose the production recommender."
    )

    def add_arguments(self, parser):
        parser.add_argument("--source", choices=("db", "csv"), default="db")
        parser.add_argument("--csv", type=Path, default=settings.ELM_DATASET_PATH)
        parser.add_argument("--cutoff", default=DEFAULT_CUTOFF)
        parser.add_argument("--horizon-days", type=int, default=90)
        parser.add_argument("--exclusion-days", type=int, default=90)
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--resamples", type=int, default=None, help="Bootstrap resamples (1000; 200 reduced).")
        parser.add_argument("--reduced", action="store_true", help="One setting per model (a quick check).")
        parser.add_argument("--customers", type=int, default=None, help="Evaluate a random slice of customers.")
        parser.add_argument("--embeddings", choices=("stored", "hashed", "none"), default="stored")
        parser.add_argument("--queue", action="store_true", help="Run as a background job in a worker instead.")
        parser.add_argument("--then-recommend", action="store_true", help="Refresh recommendations afterwards.")
        parser.add_argument(
            "--docs-from", type=int, metavar="RUN", help="Only rewrite the docs from a stored full run."
        )
        parser.add_argument(
            "--write-docs",
            action="store_true",
            help="Write docs/evaluation.md, benchmarks/results/evaluation.json and the default production choice.",
        )

    def handle(self, *args, **opts):
        if opts["docs_from"]:
            from recommendations.models import EvaluationRun

            run = EvaluationRun.objects.get(pk=opts["docs_from"], status=EvaluationRun.Status.SUCCEEDED)
            self._write_docs(run)
            return
        reduced = opts["reduced"] or bool(opts["customers"])
        config = {
            "cutoff": opts["cutoff"],
            "horizon_days": opts["horizon_days"],
            "exclusion_days": opts["exclusion_days"],
            "seed": opts["seed"],
            "embeddings": opts["embeddings"],
        }
        if opts["resamples"]:
            config["resamples"] = opts["resamples"]
        if opts["customers"]:
            config["customers"] = opts["customers"]
        if opts["source"] == "csv":
            config["csv"] = str(opts["csv"])
        if opts["write_docs"] and reduced:
            raise CommandError("--write-docs needs a full run (no --reduced, no --customers)")
        if opts["queue"]:
            from jobs.services import job_create

            job = job_create(
                kind="evaluate",
                params={"source": opts["source"], "reduced": reduced, "config": config},
                then=["recommend"] if opts["then_recommend"] else [],
            )
            self.stdout.write(f"Queued evaluation job #{job.pk}.")
            return
        run = evaluation_run_start(source=opts["source"], reduced=reduced, config=config)
        self.stdout.write(f"Evaluation run #{run.pk} ({'reduced' if reduced else 'full'}, source {opts['source']}).")
        try:
            run = evaluation_run_execute(
                run_id=run.pk, csv_path=opts["csv"], log=lambda m: print(m, file=sys.stderr, flush=True)
            )
        except Exception as exc:
            raise CommandError(f"evaluation run #{run.pk} failed: {exc}") from exc
        from recommendations.evaluation.report import markdown_table

        result = evaluation_result(run)
        self.stdout.write(markdown_table(result))
        goal = run.goal
        self.stdout.write(
            f"\nproduction: {run.chosen_model} {run.chosen_version}; test NDCG@10 ratio to {goal['best_baseline']}: "
            f"{goal['ratio']:.3f}, intervals non-overlapping: {goal['intervals_non_overlapping']}, "
            f"goal met: {goal['met']}; {run.customers_evaluated} customers evaluated; {run.wall_seconds:.0f} s"
        )
        if run.calibration:
            cal = run.calibration
            self.stdout.write(
                f"calibration of {run.chosen_model}: ECE {cal['ece_before']:.4f} -> {cal['ece_after']:.4f}"
            )
        if opts["write_docs"]:
            self._write_docs(run)
        if opts["then_recommend"] and not reduced:
            from jobs.services import job_create

            job = job_create(kind="recommend")
            self.stdout.write(f"Queued recommendation job #{job.pk} with the chosen recommender.")

    def _write_docs(self, run) -> None:
        import json

        from recommendations.evaluation.report import markdown_report, to_json
        from recommendations.evaluation.run import DEFAULT_DOC, DEFAULT_JSON
        from recommendations.services.production import DEFAULT_CHOICE_FILE

        result = evaluation_result(run)
        DEFAULT_JSON.write_text(json.dumps(to_json({**result, "evaluation_run": run.pk}), indent=2) + "\n")
        DEFAULT_DOC.write_text(markdown_report(result))
        production_default_write(run, DEFAULT_CHOICE_FILE)
        self.stdout.write(f"wrote {DEFAULT_DOC}, {DEFAULT_JSON} and {DEFAULT_CHOICE_FILE}")
