"""Concept Activation Vectors: one linear probe per concept over customer embeddings.

numpy + scikit-learn only (no torch), so the default worker can train them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, roc_auc_score
from sklearn.model_selection import train_test_split

MIN_CLASS = 15  # fewer examples of either class than this: not trainable


@dataclass
class CavResult:
    direction: np.ndarray  # unit vector in embedding space
    weights: np.ndarray  # raw logistic-regression weights
    bias: float
    auc: float
    auc_low: float  # lower end of the 95% bootstrap interval of the held-out AUC
    accuracy: float
    positives: int
    negatives: int
    usable: bool
    bootstrap_weights: np.ndarray  # (B, d) refits on resampled training data, for score intervals
    bootstrap_bias: np.ndarray  # (B,)


def _fit(x: np.ndarray, y: np.ndarray, seed: int) -> LogisticRegression:
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed)
    return model.fit(x, y)


def train_cav(x: np.ndarray, y: np.ndarray, *, seed: int = 0, bootstraps: int = 20, min_auc: float = 0.6) -> CavResult:
    """Fit a CAV on 75% of the customers, measure AUC on the other 25%, bootstrap for intervals."""
    y = np.asarray(y, dtype=int)
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    if min(pos, neg) < MIN_CLASS:
        raise ValueError(f"not enough examples: {pos} positive, {neg} negative (need {MIN_CLASS} of each)")
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)
    model = _fit(x_tr, y_tr, seed)
    proba = model.predict_proba(x_te)[:, 1]
    auc = float(roc_auc_score(y_te, proba))
    acc = float(accuracy_score(y_te, proba >= 0.5))
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(100):
        idx = rng.integers(0, len(y_te), len(y_te))
        if 0 < y_te[idx].sum() < len(idx):
            aucs.append(roc_auc_score(y_te[idx], proba[idx]))
    auc_low = float(np.percentile(aucs, 2.5)) if aucs else 0.0
    boot_w, boot_b = [], []
    # Refits start from the previous solution (warm start): a resample moves the optimum only a little.
    refit = LogisticRegression(C=1.0, class_weight="balanced", max_iter=2000, random_state=seed, warm_start=True)
    refit.coef_, refit.intercept_ = model.coef_.copy(), model.intercept_.copy()
    for _ in range(bootstraps):
        idx = rng.integers(0, len(y_tr), len(y_tr))
        if 0 < y_tr[idx].sum() < len(idx):
            refit.fit(x_tr[idx], y_tr[idx])
            boot_w.append(refit.coef_[0].copy())
            boot_b.append(refit.intercept_[0])
    w = model.coef_[0]
    return CavResult(
        direction=(w / np.linalg.norm(w)).astype(np.float32),
        weights=w.astype(np.float32),
        bias=float(model.intercept_[0]),
        auc=auc,
        auc_low=auc_low,
        accuracy=acc,
        positives=pos,
        negatives=neg,
        usable=bool(auc >= min_auc and auc_low > 0.5),
        bootstrap_weights=np.asarray(boot_w, dtype=np.float32),
        bootstrap_bias=np.asarray(boot_b, dtype=np.float32),
    )


def concept_scores(x: np.ndarray, cav: CavResult, *, level: float = 0.90) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return each row's concept probability and its bootstrap interval at ``level``."""
    score = 1 / (1 + np.exp(-(x @ cav.weights + cav.bias)))
    if len(cav.bootstrap_weights) == 0:
        return score, score, score
    boot = 1 / (1 + np.exp(-(x @ cav.bootstrap_weights.T + cav.bootstrap_bias)))  # (n, B)
    tail = (1 - level) / 2 * 100
    return score, np.percentile(boot, tail, axis=1), np.percentile(boot, 100 - tail, axis=1)


def directional_sensitivity(direction: np.ndarray, item_vector: np.ndarray) -> float:
    """Return d score / d t for the customer vector moved along the CAV direction (score = c . v_item)."""
    return float(np.dot(direction, item_vector))
