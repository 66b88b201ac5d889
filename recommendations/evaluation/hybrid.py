"""The explainable hybrid: a linear blend whose score splits exactly into one term per purchased product.

For customer c with purchase weights w_p (one per product p they bought; see :meth:`purchase_weights`)
and a candidate item i::

    score(c, i) = sum_p e_p(i) + base(i)
    e_p(i)      = alpha * w_p * knn(p, i) / Z  +  rho * w_p * [p == i] / Z  +  beta * w_p * cos(v_p, v_i) / |u|
    base(i)     = gamma * pop(i)

with Z = sum_p w_p (so the co-purchase part is a weighted *mean* of similarities), u = sum_p w_p v_p
(so the embedding part is exactly cos(u, v_i), the customer-vector cosine), knn = shrunk cosine of the
binarized customer x item matrix restricted to each item's k nearest neighbours, the rho term the
"bought it before (more than the exclusion window ago)" evidence, and pop = recent distinct buyers
scaled to [0, 1]. Only the base term is not attributable to a purchase.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recommendations.evaluation.baselines import Recommender, cosine_item_similarity, keep_top_neighbours
from recommendations.evaluation.training import DAY, TrainingData

DEFAULT_PARAMS = {
    "alpha": 1.0,
    "rho": 4.0,
    "beta": 0.03,
    "gamma": 0.04,
    "neighbours": 100,
    "shrinkage": 50.0,
    "half_life_days": 180.0,
    "pop_window_days": 30,
}


class HybridRecommender(Recommender):
    name = "hybrid"

    def __init__(self, **params):
        unknown = set(params) - set(DEFAULT_PARAMS)
        if unknown:
            raise TypeError(f"unknown hybrid parameters: {sorted(unknown)}")
        super().__init__(**{**DEFAULT_PARAMS, **params})

    def fit(self, data: TrainingData, *, similarity: np.ndarray | None = None) -> HybridRecommender:
        """Learn the item-side tables; ``similarity`` (unpruned cosine) may be passed to save recomputing it."""
        if data.item_vectors is None:
            raise ValueError("the hybrid needs item_vectors")
        super().fit(data)
        p = self.params
        if similarity is None:
            similarity = cosine_item_similarity(data.binary, shrinkage=p["shrinkage"])
        self.similarity = keep_top_neighbours(similarity, p["neighbours"])
        self.vectors = data.item_vectors.astype(np.float64)
        recent = data.recent_buyers(p["pop_window_days"])
        self.popularity = recent / recent.max() if recent.max() > 0 else recent
        self.weights = data.purchase_weights(half_life_days=p["half_life_days"], quantity="binary")
        return self

    # ------------------------------------------------------------------ batch scoring
    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.score_weights(self.weights[rows])

    def score_weights(self, weights) -> np.ndarray:
        """Return scores for customers given as a customers x items purchase-weight matrix (sparse or dense)."""
        p = self.params
        parts = self.components(weights)
        return (
            p["alpha"] * parts["knn"]
            + p["rho"] * parts["repeat"]
            + p["beta"] * parts["embedding"]
            + p["gamma"] * parts["popularity"]
        )

    def components(self, weights) -> dict[str, np.ndarray]:
        """Return the four unweighted score parts (each customers x items); the score is their linear blend."""
        weights = weights if hasattr(weights, "toarray") else np.asarray(weights, dtype=np.float64)
        total = np.asarray(weights.sum(axis=1), dtype=np.float64).reshape(-1, 1)
        total = np.where(total > 0, total, 1.0)
        dense = weights.toarray() if hasattr(weights, "toarray") else weights
        profile = np.asarray(weights @ self.vectors)
        norm = np.linalg.norm(profile, axis=1, keepdims=True)
        return {
            "knn": np.asarray(weights @ self.similarity) / total,
            "repeat": dense / total,
            "embedding": (profile / np.where(norm > 0, norm, 1.0)) @ self.vectors.T,
            "popularity": np.broadcast_to(self.popularity, dense.shape),
        }

    # ------------------------------------------------------------------ one customer, with evidence
    def purchase_weights(self, lines: pd.DataFrame, *, as_of: str | pd.Timestamp | None = None) -> dict[str, float]:
        """Return stock code -> w_p for one customer's sale lines: 0.5 ** (days since latest purchase / half-life).

        Products outside the model's catalogue carry no evidence and are left out.
        """
        as_of = pd.Timestamp(as_of) if as_of is not None else self.data.as_of
        latest = lines.groupby("item")["occurred_at"].max()
        age = np.maximum(((as_of - pd.to_datetime(latest)) / DAY).to_numpy(dtype=np.float64), 0.0)
        half_life = self.params["half_life_days"]
        weight = np.ones_like(age) if half_life is None else np.power(0.5, age / half_life)
        return {code: float(w) for code, w in zip(latest.index, weight, strict=True) if code in self.data.item_index}

    def hybrid_score_with_evidence(
        self, customer_weights: Mapping[str, float], item: str
    ) -> tuple[float, dict[str, float], float]:
        """Return (score, contribution of each purchased product, base term) for one customer and item.

        ``sum(contributions.values()) + base_term == score`` up to float rounding.
        """
        p = self.params
        index = self.data.item_index
        target = index[item]
        bought = [code for code in customer_weights if code in index]
        cols = np.array([index[code] for code in bought], dtype=np.int64)
        w = np.array([customer_weights[code] for code in bought], dtype=np.float64)
        base = float(p["gamma"] * self.popularity[target])
        if not len(cols) or w.sum() <= 0:
            return base, dict.fromkeys(bought, 0.0), base
        total = w.sum()
        knn = p["alpha"] * w * self.similarity[cols, target] + p["rho"] * w * (cols == target)
        profile_norm = np.linalg.norm(w @ self.vectors[cols])
        cosine = w * (self.vectors[cols] @ self.vectors[target]) / profile_norm if profile_norm > 0 else 0.0 * w
        contributions = knn / total + p["beta"] * cosine
        score = float(contributions.sum() + base)
        return score, dict(zip(bought, contributions.tolist(), strict=True)), base


def hybrid_score_with_evidence(
    model: HybridRecommender, customer_weights: Mapping[str, float], item: str
) -> tuple[float, dict[str, float], float]:
    """Return (score, contributions by purchased product, base term) of ``item`` for one customer under ``model``."""
    return model.hybrid_score_with_evidence(customer_weights, item)
