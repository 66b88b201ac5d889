"""Run the whole offline evaluation: tune every model on a validation split, test once, pick production.

CLI (no database needed for the CSV)::

    python -m recommendations.evaluation.run [--source csv|db] [--cutoff 2011-09-01] [--seed 0]

prints a markdown table and writes ``benchmarks/results/evaluation.json`` and ``docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from recommendations.evaluation.baselines import (
    Recommender,
    rank_customers,
)
from recommendations.evaluation.calibration import calibration_report, replay_pairs
from recommendations.evaluation.kinds import kind_report
from recommendations.evaluation.metrics import (
    PER_CUSTOMER_METRICS,
    bootstrap_indices,
    bootstrap_interval,
    summarize,
)
from recommendations.evaluation.registry import BASELINES, build_model
from recommendations.evaluation.report import MIN_REGION_CUSTOMERS, markdown_report, markdown_table, to_json
from recommendations.evaluation.split import TemporalSplit, temporal_split, validation_splits
from recommendations.evaluation.training import TrainingData
from recommendations.evaluation.tuning import Fold, tune_hybrid, validation_ndcg

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CSV = REPO_ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "evaluation.json"
DEFAULT_DOC = REPO_ROOT / "docs" / "evaluation.md"
LIST_LENGTH = 100  # recommendation lists are cut at 100 (MRR is over these 100)
GOAL_RATIO = 1.10
POOLED_REGIONS = "regions with < 5 evaluated customers (pooled)"

# Grids iterate the costly-to-compute parameter (shrinkage) in the outer loop so its cache is reused.
GRIDS: dict[str, list[dict]] = {
    "popularity": [{"window_days": w} for w in (14, 30, 60, 90, None)],
    "item_knn": [
        {"neighbours": k, "shrinkage": s}
        for s, k in itertools.product((10.0, 50.0, 100.0, 200.0), (10, 20, 50, 100, 200))
    ],
    "ease": [{"l2": lam} for lam in (100.0, 300.0, 1000.0)],
    "als": [
        *(
            {"factors": f, "regularization": r, "alpha": a, "iterations": 15}
            for f, r, a in itertools.product((128, 256), (3.0, 10.0), (1.0, 2.0))
        ),
        {"factors": 512, "regularization": 10.0, "alpha": 1.0, "iterations": 15},
    ],
    "bpr": [
        {"factors": f, "learning_rate": lr, "regularization": 0.01, "iterations": 100}
        for f, lr in ((128, 0.05), (128, 0.1), (256, 0.05))
    ],
    # The brief fixes the embedding recommender (log1p(qty), 180-day half-life): nothing to tune.
    "embedding": [{"half_life_days": 180.0}],
}
# Hybrid: coordinate descent, two rounds, over these axes. alpha stays 1 unless delta (EASE) takes over:
# the ranking is invariant to rescaling all blend weights together.
HYBRID_AXES = {
    "knn": [{"neighbours": k, "shrinkage": s} for s, k in itertools.product((10.0, 50.0, 100.0), (50, 100, 200))],
    "half_life_days": [{"half_life_days": h} for h in (90.0, 180.0, 365.0, None)],
    "pop_window_days": [{"pop_window_days": w} for w in (14, 30, 60)],
    "item_item": [
        {"alpha": a, "delta": d, "ease_l2": lam}
        for a, d, lam in itertools.product((0.5, 1.0), (0.0, 1.0, 2.0, 4.0), (100.0, 300.0))
        if d or lam == 300.0
    ],
    "repeat": [
        {"rho": r, "rho_rate": q} for r, q in itertools.product((0.0, 1.0, 2.0, 4.0), (0.0, 4.0, 8.0, 16.0, 32.0))
    ],
    "blend": [
        {"rho": r, "beta": b, "gamma": g}
        for r, b, g in itertools.product((1.0, 2.0, 4.0, 8.0), (0.0, 0.01, 0.03, 0.1), (0.0, 0.02, 0.04, 0.08))
    ],
}
SEEDED = {"als", "bpr"}
# Models whose score is an exact sum of per-purchase terms (+ a popularity base term): production candidates.
EXPLAINABLE = ("hybrid", "embedding")
CALIBRATION_TOP_N = 10  # the lists sales people see


def run_evaluation(
    interactions: pd.DataFrame,
    *,
    cutoff: str | pd.Timestamp = "2011-09-01",
    horizon_days: int = 90,
    exclusion_days: int = 90,
    seed: int = 0,
    embeddings: Mapping[str, np.ndarray] | None = None,
    n_resamples: int = 1000,
    validation_folds: int = 2,
    grids: Mapping[str, list[dict]] | None = None,
    hybrid_axes: Mapping[str, list[dict]] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Tune on validation folds (carved from training only), evaluate once on test, choose production.

    Every hyper-parameter and the production model are chosen by the mean validation NDCG@10 over
    ``validation_folds`` folds. Without ``embeddings`` the embedding recommender and the hybrid are skipped.
    """
    started = time.perf_counter()
    grids = {**GRIDS, **(grids or {})}
    hybrid_axes = {**HYBRID_AXES, **(hybrid_axes or {})}
    split = temporal_split(interactions, cutoff=cutoff, horizon_days=horizon_days, exclusion_days=exclusion_days)
    folds = [
        Fold(v, TrainingData.from_interactions(v.train, as_of=v.cutoff, embeddings=embeddings))
        for v in validation_splits(split, folds=validation_folds)
    ]
    test_data = TrainingData.from_interactions(split.train, as_of=split.cutoff, embeddings=embeddings)
    log(f"split: {split.summary()}")
    for number, fold in enumerate(folds, start=1):
        log(f"validation fold {number}: {fold.split.summary()}")

    families = [name for name in GRIDS if embeddings is not None or name != "embedding"]
    tuning: dict[str, list[dict]] = {}
    chosen: dict[str, dict] = {}
    timings: dict[str, float] = {}
    for family in families:
        t0 = time.perf_counter()
        trials = []
        for params in grids[family]:
            params = {**params, "seed": seed} if family in SEEDED else dict(params)
            per_fold = [validation_ndcg(fold.fit(family, params), fold.split) for fold in folds]
            trials.append({"params": params, "validation_ndcg@10": float(np.mean(per_fold)), "per_fold": per_fold})
        best = max(trials, key=lambda t: t["validation_ndcg@10"])
        tuning[family] = trials
        chosen[family] = best["params"]
        timings[f"tune_{family}"] = round(time.perf_counter() - t0, 1)
        log(f"tuned {family}: {best} ({timings[f'tune_{family}']} s)")

    if embeddings is not None:
        t0 = time.perf_counter()
        tuning["hybrid"], chosen["hybrid"] = tune_hybrid(folds, hybrid_axes)
        timings["tune_hybrid"] = round(time.perf_counter() - t0, 1)
        log(f"tuned hybrid: {chosen['hybrid']} ({timings['tune_hybrid']} s)")

    indices = bootstrap_indices(len(split.customers), n_resamples=n_resamples, seed=seed)
    val_indices = bootstrap_indices(len(folds[0].split.customers), n_resamples=n_resamples, seed=seed)
    models: dict[str, dict] = {}
    per_customer: dict[str, dict[str, np.ndarray]] = {}
    for family, params in chosen.items():
        t0 = time.perf_counter()
        # Full metrics on the most recent validation fold; model choice uses the mean over all folds.
        val_model = folds[0].fit(family, params)
        val_metrics, _ = _evaluate(val_model, folds[0].split, folds[0].data, val_indices)
        fold_means = next(t for t in tuning[family] if t["params"] == params)
        test_model = build_model(family, params).fit(test_data)
        test_metrics, values = _evaluate(test_model, split, test_data, indices)
        calibration = None
        if family in EXPLAINABLE:
            # Fitted on the most recent validation window, judged on the test window.
            window = {"horizon_days": horizon_days, "exclusion_days": exclusion_days, "top_n": CALIBRATION_TOP_N}
            calibration = calibration_report(
                replay_pairs(val_model, interactions, cutoff=folds[0].split.cutoff, **window),
                replay_pairs(test_model, interactions, cutoff=split.cutoff, **window),
            )
        by_kind = None
        if family in EXPLAINABLE:
            window = {"horizon_days": horizon_days, "exclusion_days": exclusion_days, "top_n": CALIBRATION_TOP_N}
            by_kind = kind_report(test_model, interactions, cutoff=split.cutoff, **window)
        version = test_model.version()
        del val_model, test_model  # dense item x item tables: free them before the next family
        per_customer[family] = values
        models[family] = {
            "params": params,
            "version": version,
            "baseline": family in BASELINES,
            "validation_ndcg@10_mean_over_folds": fold_means["validation_ndcg@10"],
            "validation_ndcg@10_per_fold": fold_means["per_fold"],
            "validation": val_metrics,
            "test": test_metrics,
            "test_by_region": _by_region(values, split, seed=seed, n_resamples=n_resamples),
            "explainable": family in EXPLAINABLE,
        }
        if calibration is not None:
            models[family]["calibration"] = calibration
        if by_kind is not None:
            models[family]["test_by_kind"] = by_kind
        timings[f"final_{family}"] = round(time.perf_counter() - t0, 1)
        log(f"{family}: validation ndcg@10 {fold_means['validation_ndcg@10']:.4f}, test {test_metrics['ndcg@10']}")

    best_on_validation = max(models, key=lambda name: models[name]["validation_ndcg@10_mean_over_folds"])
    # Production serves only models whose score splits exactly into per-purchase evidence.
    explainable = [name for name in models if name in EXPLAINABLE] or list(models)
    production = max(explainable, key=lambda name: models[name]["validation_ndcg@10_mean_over_folds"])
    baselines = [name for name in models if name in BASELINES]
    best_baseline = max(baselines, key=lambda name: models[name]["test"]["ndcg@10"]["mean"])
    goal = _goal(production, best_baseline, models, per_customer, indices)
    timings["total"] = round(time.perf_counter() - started, 1)
    return {
        "config": {
            "cutoff": split.cutoff.isoformat(),
            "horizon_days": horizon_days,
            "exclusion_days": exclusion_days,
            "seed": seed,
            "bootstrap_resamples": n_resamples,
            "list_length": LIST_LENGTH,
            "validation_cutoffs": [fold.split.cutoff.isoformat() for fold in folds],
            "grids": {name: grids[name] for name in families},
            "hybrid_axes": dict(hybrid_axes) if embeddings is not None else None,
            "interactions": {
                "lines": len(interactions),
                "customers": int(interactions["customer"].nunique()),
                "items": int(interactions["item"].nunique()),
                "first": pd.Timestamp(interactions["occurred_at"].min()).isoformat(),
                "last": pd.Timestamp(interactions["occurred_at"].max()).isoformat(),
            },
            "embeddings": None if embeddings is None else {"products": len(embeddings)},
        },
        "split": {
            **split.summary(),
            "relevant_items_not_in_training_catalogue": _unreachable(split, test_data),
        },
        "validation_splits": [
            {**fold.split.summary(), "relevant_items_not_in_training_catalogue": _unreachable(fold.split, fold.data)}
            for fold in folds
        ],
        "customers_counted": {
            "test_active_in_both_periods": split.customers_active_both,
            "test_evaluated": len(split.customers),
            "validation_active_in_both_periods": [fold.split.customers_active_both for fold in folds],
            "validation_evaluated": [len(fold.split.customers) for fold in folds],
        },
        "tuning": tuning,
        "models": models,
        "production": {
            "model": production,
            "version": models[production]["version"],
            "params": models[production]["params"],
            "chosen_by": f"mean validation ndcg@10 over {len(folds)} folds, among explainable models",
            "best_on_validation": best_on_validation,
        },
        "calibration": models[production].get("calibration"),
        "goal": goal,
        "timings_s": timings,
        "environment": {"python": platform.python_version(), "threads": 2},
    }


def _evaluate(
    model: Recommender, split: TemporalSplit, data: TrainingData, indices: np.ndarray
) -> tuple[dict, dict[str, np.ndarray]]:
    customers = split.customers
    ranked = rank_customers(model, customers, split.excluded, n=LIST_LENGTH)
    popularity = dict(zip(data.items.tolist(), data.popularity.tolist(), strict=True))
    return summarize(
        ranked, [split.relevant[c] for c in customers], popularity, catalogue_size=data.n_items, indices=indices
    )


def _by_region(values: dict[str, np.ndarray], split: TemporalSplit, *, seed: int, n_resamples: int) -> dict:
    """Return per-region metrics; regions with fewer than MIN_REGION_CUSTOMERS evaluated customers are pooled.

    Pooling keeps every published figure an aggregate over at least that many customers (the regions are
    k-anonymous over all customers, but the evaluated subset of a region can be a single customer).
    """
    regions = np.array([split.region[c] for c in split.customers])
    names, counts = np.unique(regions, return_counts=True)
    small = set(names[counts < MIN_REGION_CUSTOMERS].tolist())
    if small:
        regions = np.where(np.isin(regions, list(small)), POOLED_REGIONS, regions)
    result = {}
    for region in sorted(set(regions.tolist())):
        members = np.flatnonzero(regions == region)
        if len(members) < MIN_REGION_CUSTOMERS:
            continue  # a pool of tiny regions that is itself too small is not published
        # A seed per region that does not depend on the order regions are visited in.
        region_seed = seed + int(hashlib.sha256(region.encode()).hexdigest()[:8], 16)
        idx = bootstrap_indices(len(members), n_resamples=n_resamples, seed=region_seed)
        entry: dict = {"customers": len(members)}
        if region == POOLED_REGIONS:
            entry["regions"] = sorted(small)
        for name in PER_CUSTOMER_METRICS:
            sub = values[name][members]
            entry[name] = {"mean": float(sub.mean())}
            if name == "ndcg@10":
                entry[name]["ci95"] = list(bootstrap_interval(sub, idx))
        result[region] = entry
    return result


def _goal(production: str, baseline: str, models: dict, per_customer: dict, indices: np.ndarray) -> dict:
    prod = models[production]["test"]["ndcg@10"]
    base = models[baseline]["test"]["ndcg@10"]
    prod_means = per_customer[production]["ndcg@10"][indices].mean(axis=1)
    base_means = per_customer[baseline]["ndcg@10"][indices].mean(axis=1)
    ratios = prod_means / np.where(base_means > 0, base_means, np.nan)
    ratio = prod["mean"] / base["mean"] if base["mean"] > 0 else float("inf")
    separated = prod["ci95"][0] > base["ci95"][1]
    return {
        "metric": "test ndcg@10",
        "production_model": production,
        "best_baseline": baseline,
        "best_baseline_chosen_by": "test ndcg@10 (the strongest baseline on test, the conservative comparison)",
        "ratio": ratio,
        "paired_bootstrap_ratio_ci95": [float(np.nanpercentile(ratios, 2.5)), float(np.nanpercentile(ratios, 97.5))],
        "intervals_non_overlapping": bool(separated),
        "target_ratio": GOAL_RATIO,
        "met": bool(production != baseline and ratio >= GOAL_RATIO and separated),
    }


def _unreachable(split: TemporalSplit, data: TrainingData) -> float:
    total = sum(len(v) for v in split.relevant.values())
    missing = sum(1 for v in split.relevant.values() for item in v if item not in data.item_index)
    return missing / total if total else 0.0


# ---------------------------------------------------------------------------------------------- report


def _configure_encoder_settings() -> None:
    """Give the encoder the few settings it reads when no Django project settings are in use."""
    from django.conf import settings

    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        settings.configure(ELM_ENCODER="bundled", ELM_ENCODER_BATCH_SIZE=64, ELM_DEVICE="cpu")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("csv", "db"), default="csv")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--cutoff", default="2011-09-01")
    parser.add_argument("--horizon-days", type=int, default=90)
    parser.add_argument("--exclusion-days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--render", type=Path, help="only rewrite --doc from this evaluation.json")
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads(args.render.read_text())
        _write_doc(args.doc, markdown_report(result))
        return result

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    if args.source == "csv":
        from recommendations.evaluation.data import load_csv, product_embeddings

        _configure_encoder_settings()
        # Pseudonyms keyed by the file's own hash: reruns order customers (and so the bootstrap resamples)
        # identically. They never leave this process, and whoever has the file has the raw ids anyway.
        key = hashlib.sha256(b"elm-evaluation\x00" + args.csv.read_bytes()).digest()
        interactions, descriptions = load_csv(args.csv, key=key)
        embeddings = product_embeddings(descriptions)
    else:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.dev")
        django.setup()
        from recommendations.evaluation.data import (
            descriptions_from_db,
            embeddings_from_db,
            interactions_from_db,
            product_embeddings,
        )

        interactions = interactions_from_db()
        embeddings = embeddings_from_db() or product_embeddings(descriptions_from_db())
    log(f"loaded {len(interactions):,} lines and {len(embeddings):,} embeddings in {time.perf_counter() - t0:.1f} s")

    result = run_evaluation(
        interactions,
        cutoff=args.cutoff,
        horizon_days=args.horizon_days,
        exclusion_days=args.exclusion_days,
        seed=args.seed,
        embeddings=embeddings,
        n_resamples=args.resamples,
        log=log,
    )
    result["config"]["source"] = args.source
    result["timings_s"]["load"] = round(time.perf_counter() - t0 - result["timings_s"]["total"], 1)
    print(markdown_table(result))
    goal = result["goal"]
    print(
        f"\nproduction: {result['production']['model']} {result['production']['version']}; "
        f"test NDCG@10 ratio to {goal['best_baseline']}: {goal['ratio']:.3f}, "
        f"intervals non-overlapping: {goal['intervals_non_overlapping']}, goal met: {goal['met']}"
    )
    if not args.no_write:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(to_json(result), indent=2, sort_keys=False) + "\n")
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        _write_doc(args.doc, markdown_report(result))
    return result


def _write_doc(path: Path, text: str) -> None:
    """Write the report, keeping the sections other scripts wrote into the previous file."""
    from recommendations.evaluation.report import keep_marked_sections

    path.write_text(keep_marked_sections(path.read_text() if path.exists() else "", text))


if __name__ == "__main__":
    main()
