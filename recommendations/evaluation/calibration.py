"""Confidence calibration of a recommender's scores: replay at a cutoff, fit on validation, judge on test.

A pair is (customer, recommended item) from the customer's top-N at the cutoff; its outcome is whether the
customer bought the item within the horizon after it. Every customer with a purchase before the cutoff
counts, whether or not they came back, because the confidence shown is P(buys it within the horizon).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from recommendations.evaluation.baselines import Recommender, rank_customers
from recommendations.evaluation.calibrator import expected_calibration_error, fit_calibrator, reliability_table
from recommendations.evaluation.split import recently_bought

# Fewer pairs in a window (or only one outcome) fit no calibration worth showing as a probability.
MIN_PAIRS = 50


class TooLittleData(ValueError):
    """Too little data to calibrate: a skip, not a failure. The message says what is missing."""


def require_pairs(window: str, scores: np.ndarray, outcomes: np.ndarray) -> None:
    """Raise TooLittleData unless the window has MIN_PAIRS pairs with both outcomes among them."""
    bought = int(np.sum(outcomes))
    if len(scores) < MIN_PAIRS or bought in (0, len(scores)):
        raise TooLittleData(
            f"too little data: the {window} window has {len(scores)} recommendation pairs ({bought} bought); "
            f"calibration needs at least {MIN_PAIRS}, some bought and some not"
        )


def replay_pairs(
    model: Recommender,
    interactions: pd.DataFrame,
    *,
    cutoff: str | pd.Timestamp,
    horizon_days: int = 90,
    exclusion_days: int = 90,
    top_n: int = 10,
    customers: Sequence[str] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return (score, bought within the horizon) of every top-``top_n`` pair of a model fitted before ``cutoff``."""
    cutoff = pd.Timestamp(cutoff)
    data = model.data
    when = interactions["occurred_at"]
    excluded = recently_bought(interactions.loc[when < cutoff], as_of=cutoff, days=exclusion_days)
    after = interactions.loc[(when >= cutoff) & (when < cutoff + pd.Timedelta(days=horizon_days))]
    bought = set(zip(after["customer"], after["item"], strict=True))
    customers = list(data.customers if customers is None else customers)
    ranked = rank_customers(model, customers, excluded, n=top_n)
    scores, outcomes = [], []
    chunk = 1024
    for start in range(0, len(customers), chunk):
        rows = np.array([data.customer_index[c] for c in customers[start : start + chunk]], dtype=np.int64)
        block = model.score(rows)
        for offset, items in enumerate(ranked[start : start + chunk]):
            customer = customers[start + offset]
            for item in items:
                scores.append(block[offset, data.item_index[item]])
                outcomes.append((customer, item) in bought)
    return np.asarray(scores, dtype=np.float64), np.asarray(outcomes, dtype=np.int64)


def calibration_report(
    validation: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], *, method: str = "isotonic"
) -> dict:
    """Fit score -> probability on the validation pairs; return ECE before/after and reliability tables on test.

    "Before" reads the raw score (clipped to [0, 1]) as a probability.
    """
    val_scores, val_outcomes = validation
    test_scores, test_outcomes = test
    calibrator = fit_calibrator(val_scores, val_outcomes, method=method)
    calibrated = calibrator.predict(test_scores)
    raw = np.clip(test_scores, 0.0, 1.0)
    return {
        "method": method,
        "params": calibrator.to_dict(),
        "validation_pairs": len(val_scores),
        "test_pairs": len(test_scores),
        "base_rate": float(np.mean(test_outcomes)) if len(test_outcomes) else 0.0,
        "ece_before": expected_calibration_error(raw, test_outcomes),
        "ece_after": expected_calibration_error(calibrated, test_outcomes),
        "reliability_before": reliability_table(raw, test_outcomes),
        "reliability_after": reliability_table(calibrated, test_outcomes),
    }
