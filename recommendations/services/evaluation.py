"""Evaluation runs: the offline evaluation of every recommender, stored as an EvaluationRun.

A full run (every customer, the full grids) chooses the production recommender; a reduced run (a slice of
customers, one setting per model, fewer bootstrap resamples) checks the machinery quickly and never does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.db import transaction

from recommendations.models import EvaluationRun

logger = logging.getLogger(__name__)

DEFAULT_CUTOFF = "2011-09-01"
# One setting per model: enough to exercise every code path on a slice in seconds.
REDUCED_GRIDS = {
    "popularity": [{"window_days": 30}],
    "item_knn": [{"neighbours": 50, "shrinkage": 10.0}],
    "ease": [{"l2": 300.0}],
    "als": [{"factors": 16, "regularization": 10.0, "alpha": 1.0, "iterations": 5}],
    "bpr": [{"factors": 16, "learning_rate": 0.05, "regularization": 0.01, "iterations": 20}],
    "embedding": [{"half_life_days": 180.0}],
}
REDUCED_AXES = {
    "knn": [{"neighbours": 50, "shrinkage": 10.0}],
    "half_life_days": [{"half_life_days": 90.0}],
    "pop_window_days": [{"pop_window_days": 14}],
    "item_item": [{"alpha": 1.0, "delta": 0.0, "ease_l2": 300.0}],
    "repeat": [{"rho": 2.0, "rho_rate": 8.0}],
    "blend": [{"rho": 2.0, "beta": 0.03, "gamma": 0.04}],
}


def evaluation_run_start(*, source: str = "db", reduced: bool = False, config: dict | None = None, job=None):
    """Record a new (running) evaluation."""
    if source not in ("db", "csv"):
        raise ValueError(f"unknown source {source!r}")
    return EvaluationRun.objects.create(source=source, reduced=reduced, config=config or {}, job=job)


def evaluation_run_reopen(*, run_id: int) -> EvaluationRun:
    """Put a failed run back to running before its job's retry runs it again (a running run stays)."""
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().get(pk=run_id)
        if run.status == EvaluationRun.Status.FAILED:
            run.retry()
            run.save(update_fields=["status", "error", "finished_at"])
    return run


def hashed_embeddings(codes, *, dim: int = 32) -> dict[str, np.ndarray]:
    """Return a deterministic random unit vector per stock code (reduced runs without an encoder)."""
    out = {}
    for code in codes:
        seed = int(hashlib.sha256(str(code).encode()).hexdigest()[:8], 16)
        v = np.random.default_rng(seed).normal(size=dim)
        out[code] = (v / np.linalg.norm(v)).astype(np.float32)
    return out


def customer_slice(interactions, *, customers: int, seed: int = 0):
    """Return the lines of ``customers`` customers drawn at random (seeded): a reduced evaluation's data."""
    everyone = np.sort(interactions["customer"].unique())
    if customers >= len(everyone):
        return interactions
    chosen = np.random.default_rng(seed).choice(everyone, size=customers, replace=False)
    return interactions.loc[interactions["customer"].isin(set(chosen.tolist()))].reset_index(drop=True)


def _load(run: EvaluationRun, *, csv_path: Path | None):
    """Return (interactions, embeddings or None, embeddings label) for the run's source."""
    cfg = run.config
    if run.source == "csv":
        from recommendations.evaluation.data import load_csv

        path = Path(csv_path or cfg.get("csv"))
        # Keyed by the file's hash: reruns order customers (and so the bootstrap resamples) identically.
        key = hashlib.sha256(b"elm-evaluation\x00" + path.read_bytes()).digest()
        interactions, descriptions = load_csv(path, key=key)
    else:
        from recommendations.evaluation.data import descriptions_from_db, interactions_from_db

        interactions = interactions_from_db()
        descriptions = descriptions_from_db()
    if cfg.get("customers"):
        interactions = customer_slice(interactions, customers=int(cfg["customers"]), seed=int(cfg.get("seed", 0)))
    kind = cfg.get("embeddings", "stored")
    if kind == "none":
        return interactions, None, "none"
    if kind == "hashed":
        return interactions, hashed_embeddings(interactions["item"].unique()), "hashed (random, for reduced runs)"
    from recommendations.evaluation.data import embeddings_from_db, product_embeddings

    if run.source == "db":
        stored = embeddings_from_db()
        if stored:
            return interactions, stored, "stored product vectors"
    return interactions, product_embeddings(descriptions), "encoded from descriptions"


def evaluation_run_execute(
    *, run_id: int, csv_path: Path | None = None, log: Callable[[str], None] | None = None
) -> EvaluationRun:
    """Run the evaluation recorded as ``run_id`` and store its results; a failure is recorded, then re-raised."""
    from recommendations.evaluation.run import run_evaluation

    run = EvaluationRun.objects.get(pk=run_id)
    cfg = run.config
    log = log or logger.info
    started = time.perf_counter()
    try:
        interactions, embeddings, embeddings_label = _load(run, csv_path=csv_path)
        loaded = time.perf_counter() - started
        log(f"loaded {len(interactions):,} lines in {loaded:.1f} s")
        result = run_evaluation(
            interactions,
            cutoff=cfg.get("cutoff", DEFAULT_CUTOFF),
            horizon_days=int(cfg.get("horizon_days", 90)),
            exclusion_days=int(cfg.get("exclusion_days", 90)),
            seed=int(cfg.get("seed", 0)),
            embeddings=embeddings,
            n_resamples=int(cfg.get("resamples", 200 if run.reduced else 1000)),
            grids=REDUCED_GRIDS if run.reduced else None,
            hybrid_axes=REDUCED_AXES if run.reduced else None,
            log=log,
        )
    except Exception as exc:
        with transaction.atomic():
            failed = EvaluationRun.objects.select_for_update().get(pk=run_id)
            if failed.status == EvaluationRun.Status.RUNNING:
                failed.fail(error=f"{type(exc).__name__}: {exc}")
                failed.wall_seconds = round(time.perf_counter() - started, 1)
                failed.save(update_fields=["status", "error", "finished_at", "wall_seconds"])
        raise
    result["config"].update(source=run.source, embeddings_label=embeddings_label, reduced=run.reduced)
    result["timings_s"]["load"] = round(loaded, 1)
    return evaluation_run_record(run_id=run_id, result=result, wall_seconds=time.perf_counter() - started)


def evaluation_run_record(*, run_id: int, result: dict, wall_seconds: float) -> EvaluationRun:
    """Store an evaluation result (the dict of ``run_evaluation``) on its run."""
    from recommendations.evaluation.report import to_json

    result = to_json(result)
    models = result["models"]
    with transaction.atomic():
        run = EvaluationRun.objects.select_for_update().get(pk=run_id)
        run.config = {**run.config, **result["config"], "timings_s": result["timings_s"], "tuning": result["tuning"]}
        run.split = {
            "test": result["split"],
            "validation": result["validation_splits"],
            "customers_counted": result["customers_counted"],
        }
        run.customers_active_both = result["customers_counted"]["test_active_in_both_periods"]
        run.customers_evaluated = result["customers_counted"]["test_evaluated"]
        run.metrics = {
            name: {key: value for key, value in entry.items() if key not in ("test_by_region", "calibration")}
            for name, entry in models.items()
        }
        run.by_region = {name: entry["test_by_region"] for name, entry in models.items()}
        run.goal = result["goal"]
        run.chosen_model = result["production"]["model"]
        run.chosen_version = result["production"]["version"]
        run.chosen_params = result["production"]["params"]
        run.calibration = result.get("calibration") or {}
        run.wall_seconds = round(wall_seconds, 1)
        run.succeed()
        run.save()
    return run


def evaluation_result(run: EvaluationRun) -> dict:
    """Rebuild the ``run_evaluation`` dict of a stored run (for the markdown report)."""
    models = {name: {**entry, "test_by_region": run.by_region.get(name, {})} for name, entry in run.metrics.items()}
    chosen = run.metrics[run.chosen_model]
    return {
        "config": {key: value for key, value in run.config.items() if key != "tuning"},
        "split": run.split["test"],
        "validation_splits": run.split["validation"],
        "customers_counted": run.split["customers_counted"],
        "models": models,
        "production": {
            "model": run.chosen_model,
            "version": run.chosen_version,
            "params": run.chosen_params,
            "validation_ndcg@10": chosen["validation_ndcg@10_mean_over_folds"],
        },
        "goal": run.goal,
        "calibration": run.calibration,
        "timings_s": run.config.get("timings_s", {}),
        "tuning": run.config.get("tuning", {}),
    }


def production_default_write(run: EvaluationRun, path: Path) -> None:
    """Record a full run's choice as the default production recommender (used before any run exists)."""
    if run.reduced:
        raise ValueError("a reduced evaluation never chooses the production recommender")
    payload = {
        "model": run.chosen_model,
        "version": run.chosen_version,
        "params": run.chosen_params,
        "chosen_by": "mean validation NDCG@10 over the validation folds, among explainable models",
        "evaluation": {
            "source": run.source,
            "cutoff": run.config.get("cutoff"),
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "test_ndcg@10": run.metrics[run.chosen_model]["test"]["ndcg@10"],
        },
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
