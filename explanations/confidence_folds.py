"""Temporal folds of the confidence model: replay the served recommender at past cutoffs, fit, calibrate, test.

With horizon h and the latest purchase L (the cutoffs at midnight)::

    test cutoff       T = L - h            judged once: every served pair, bought within h after T?
    validation cutoff V = T - h            chooses the candidate (raw AUC) and fits the calibration map
    fitting cutoffs   V - 45 d, V - 90 d   the classifier learns from these folds' pairs only

Every fold's window ends at or before the next fold's use of it, so the test window is never seen. The
served model is the measured one: what the test window judged is what the cards show (and the calibrate
job, on the demo's critical path, replays four cutoffs, not six).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from explanations import confidence_model as cm
from recommendations.evaluation.calibrator import expected_calibration_error, reliability_table

FIT_OFFSETS_DAYS = (45, 90)  # fitting folds, days before the calibration fold's cutoff
MIN_PAIRS = 50  # per fold; fewer (or only one outcome) is too little data to fit or calibrate


class TooLittleData(ValueError):
    """Raised where a fold has too few served pairs; the calibrate job reports it as a skip."""


def replay_served(
    interactions: pd.DataFrame,
    *,
    embeddings,
    params: Mapping,
    cutoff: pd.Timestamp,
    horizon_days: int,
    exclusion_days: int,
    top_n: int,
) -> pd.DataFrame:
    """Return every served pair of the hybrid fitted before ``cutoff``: customer, item, rank, score, bought.

    Every customer with a purchase before the cutoff gets a top-``top_n`` list (the production exclusion
    rule applied); bought = the customer bought the item within ``horizon_days`` after the cutoff.
    """
    from recommendations.evaluation.baselines import rank_customers
    from recommendations.evaluation.hybrid import HybridRecommender
    from recommendations.evaluation.split import recently_bought
    from recommendations.evaluation.training import TrainingData

    cutoff = pd.Timestamp(cutoff)
    when = interactions["occurred_at"]
    train = interactions.loc[when < cutoff]
    if train["customer"].nunique() < 2:
        raise TooLittleData(
            f"too little data: purchases of {train['customer'].nunique()} customers before {cutoff:%Y-%m-%d}"
        )
    data = TrainingData.from_interactions(train, as_of=cutoff, embeddings=embeddings)
    model = HybridRecommender(**dict(params)).fit(data)
    customers = list(data.customers)
    excluded = recently_bought(train, as_of=cutoff, days=exclusion_days)
    ranked = rank_customers(model, customers, excluded, n=top_n)
    after = interactions.loc[(when >= cutoff) & (when < cutoff + pd.Timedelta(days=horizon_days))]
    bought = set(zip(after["customer"], after["item"], strict=True))
    out_customer = [c for c, items in zip(customers, ranked, strict=True) for _ in items]
    out_item = [i for items in ranked for i in items]
    out_rank = [r for items in ranked for r in range(1, len(items) + 1)]
    rows = np.array([data.customer_index[c] for c in out_customer], dtype=np.int64)
    cols = np.array([data.item_index[i] for i in out_item], dtype=np.int64)
    scores = np.empty(len(rows))
    unique_rows, inverse = np.unique(rows, return_inverse=True)
    for start in range(0, len(unique_rows), 1024):
        block = model.score(unique_rows[start : start + 1024])
        mask = (inverse >= start) & (inverse < start + 1024)
        scores[mask] = block[inverse[mask] - start, cols[mask]]
    return pd.DataFrame(
        {
            "customer": out_customer,
            "item": out_item,
            "rank": out_rank,
            "score": scores,
            "bought": np.array([(c, i) in bought for c, i in zip(out_customer, out_item, strict=True)], dtype=int),
        }
    )


def fold_features(interactions: pd.DataFrame, pairs: pd.DataFrame, *, cutoff) -> np.ndarray:
    """Return the feature matrix of a fold's served pairs, from the lines before its cutoff."""
    return cm.pair_features(
        interactions,
        as_of=cutoff,
        customers=pairs["customer"].to_numpy(),
        items=pairs["item"].to_numpy(),
        scores=pairs["score"].to_numpy(),
        ranks=pairs["rank"].to_numpy(),
    )


def _require(name: str, pairs: pd.DataFrame) -> None:
    bought = int(pairs["bought"].sum())
    if len(pairs) < MIN_PAIRS or bought in (0, len(pairs)):
        raise TooLittleData(
            f"too little data: the {name} fold has {len(pairs)} recommendation pairs ({bought} bought); "
            f"the confidence model needs at least {MIN_PAIRS}, some bought and some not"
        )


def confidence_fit_report(
    interactions: pd.DataFrame,
    *,
    embeddings,
    params: Mapping,
    horizon_days: int = 90,
    exclusion_days: int = 90,
    top_n: int = 10,
    candidates=cm.CANDIDATES,
    log: Callable[[str], None] = lambda message: None,
) -> tuple[cm.FittedConfidence, dict]:
    """Choose and measure the confidence model on the folds; return (the model, served as measured; the report)."""
    latest = pd.Timestamp(interactions["occurred_at"].max())
    test = (latest - pd.Timedelta(days=horizon_days)).normalize()
    validation = test - pd.Timedelta(days=horizon_days)
    fit_cutoffs = [validation - pd.Timedelta(days=d) for d in FIT_OFFSETS_DAYS]
    folds: dict[pd.Timestamp, tuple[pd.DataFrame, np.ndarray]] = {}

    def fold(cutoff: pd.Timestamp, name: str):
        if cutoff not in folds:
            pairs = replay_served(interactions, embeddings=embeddings, params=params, cutoff=cutoff,
                                  horizon_days=horizon_days, exclusion_days=exclusion_days, top_n=top_n)  # fmt: skip
            _require(name, pairs)
            folds[cutoff] = (pairs, fold_features(interactions, pairs, cutoff=cutoff))
            log(f"fold {cutoff:%Y-%m-%d} ({name}): {len(pairs):,} pairs, {pairs['bought'].mean():.1%} bought")
        return folds[cutoff]

    def stacked(cutoffs, name):
        parts = [fold(c, name) for c in cutoffs]
        return np.vstack([x for _, x in parts]), np.concatenate([p["bought"].to_numpy() for p, _ in parts])

    x_fit, y_fit = stacked(fit_cutoffs, "fitting")
    val_pairs, x_val = fold(validation, "validation")
    y_val = val_pairs["bought"].to_numpy()
    trials = []
    for kind, candidate in candidates:
        model = cm.fit_estimator(kind, candidate, x_fit, y_fit)
        raw = model.raw(x_val)
        measured = cm.measures(val_pairs["customer"].to_numpy(), val_pairs["rank"].to_numpy(), raw, y_val)
        trial = {"kind": kind, "params": candidate, "model": model}
        trials.append(
            trial | {"validation_auc": measured["auc"], "validation_within_list_auc": measured["within_list_auc"]}
        )
        log(f"candidate {kind} {candidate}: validation AUC {measured['auc']:.4f}")
    # The two discrimination goals weigh equally: across customers and inside each list.
    best = max(trials, key=lambda t: t["validation_auc"] + (t["validation_within_list_auc"] or 0.0))
    chosen = cm.calibrate(best["model"], x_val, y_val)
    test_pairs, x_test = fold(test, "test")
    y_test = test_pairs["bought"].to_numpy()
    groups, ranks = test_pairs["customer"].to_numpy(), test_pairs["rank"].to_numpy()
    reorder = x_test[:, cm.FEATURE_NAMES.index("times_bought")] > 0
    probabilities = chosen.predict(x_test)
    report = {
        "cutoffs": {
            "fitting": [c.isoformat() for c in fit_cutoffs],
            "validation": validation.isoformat(),
            "test": test.isoformat(),
            "latest": latest.isoformat(),
        },
        "horizon_days": horizon_days,
        "features": [{"name": n, "meaning": m} for n, m in cm.FEATURES],
        "candidates": [{k: v for k, v in t.items() if k != "model"} for t in trials],
        "chosen": {"kind": chosen.kind, "params": chosen.params, "calibration": chosen.calibrator.method},
        "fitting_pairs": len(y_fit),
        "validation_pairs": len(y_val),
        "test": cm.measures(groups, ranks, probabilities, y_test, reorder=reorder),
        "test_uncalibrated_ece": float(expected_calibration_error(chosen.raw(x_test), y_test)),
        "test_rank_only_auc": cm.measures(groups, ranks, -ranks.astype(float), y_test)["auc"],
        "test_reliability": reliability_table(probabilities, y_test),
        "test_reliability_uncalibrated": reliability_table(chosen.raw(x_test), y_test),
    }
    return chosen, report
