"""Measure the confidence model on the real data's folds; write docs/results/confidence.json and the doc section."""

import hashlib
import json
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from recommendations.evaluation.confidence_doc import CONFIDENCE_JSON, REPO_ROOT, write_confidence_section


class Command(BaseCommand):
    help = (
        "Fit, choose (validation only), calibrate and test the confidence model on temporal folds of the served "
        "hybrid's lists, and write docs/results/confidence.json and the Confidence section of docs/evaluation.md. "
        "Stores nothing: the calibrate job fits and stores the served model the same way."
    )

    def add_arguments(self, parser):
        parser.add_argument("--source", choices=("db", "csv"), default="db")
        parser.add_argument("--csv", type=Path, default=settings.ELM_DATASET_PATH)
        parser.add_argument("--horizon-days", type=int, default=90)
        parser.add_argument("--json", type=Path, default=CONFIDENCE_JSON)
        parser.add_argument("--doc", type=Path, default=REPO_ROOT / "docs" / "evaluation.md")
        parser.add_argument("--no-write", action="store_true", help="print the measures only")

    def handle(self, *args, **options):
        from explanations.confidence_folds import confidence_fit_report
        from recommendations.evaluation.report import to_json

        def log(message: str) -> None:
            print(message, file=sys.stderr, flush=True)

        if options["source"] == "csv":
            from recommendations.evaluation.data import load_csv, product_embeddings
            from recommendations.services.production import DEFAULT_CHOICE_FILE

            # Keyed by the file's hash like the evaluation's CSV runs; the pseudonyms never leave this process.
            key = hashlib.sha256(b"elm-evaluation\x00" + options["csv"].read_bytes()).digest()
            interactions, descriptions = load_csv(options["csv"], key=key)
            embeddings = product_embeddings(descriptions)
            params = json.loads(DEFAULT_CHOICE_FILE.read_text())["params"]
        else:
            from recommendations.evaluation.data import embeddings_from_db
            from recommendations.services.production import HYBRID, interactions_for_fit, production_choice

            choice = production_choice()
            if choice.recommender != HYBRID:
                log(f"the production recommender is {choice.recommender}: its confidence maps the score alone")
                return
            interactions, _ = interactions_for_fit()
            embeddings = embeddings_from_db()
            params = choice.params
        _, report = confidence_fit_report(
            interactions,
            embeddings=embeddings,
            params=params,
            horizon_days=options["horizon_days"],
            exclusion_days=settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS,
            top_n=settings.ELM_RECOMMENDATIONS_PER_CUSTOMER,
            log=log,
        )
        report = to_json({**report, "source": options["source"], "recommender_params": params})
        test = report["test"]
        log(f"test: AUC {test['auc']:.4f}, within-list AUC {test['within_list_auc']:.4f}, ECE {test['ece']:.4f}")
        if not options["no_write"]:
            options["json"].parent.mkdir(parents=True, exist_ok=True)
            options["json"].write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
            write_confidence_section(options["doc"], report)
            log(f"wrote {options['json']} and the Confidence section of {options['doc']}")
