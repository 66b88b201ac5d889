"""The explainable hybrid: a linear blend whose score splits exactly into one term per purchased product.

For customer c with purchase weights w_p (one per product p they bought; see :meth:`purchase_weights`)
and a candidate item i::

    score(c, i) = sum_p e_p(i) + base(i)
    e_p(i)      = w_p * (alpha * knn(p, i) + delta * ease(p, i) + (rho + rho_rate * r(i)) * [p == i]) / Z
                  + beta * w_p * cos(v_p, v_i) / |u|
    base(i)     = gamma * pop(i)

with Z = sum_p w_p (the item-item parts are weighted *means* over the purchases), u = sum_p w_p v_p (so
the embedding part is exactly cos(u, v_i), the customer-vector cosine of the embedding recommender),
knn = shrunk cosine of the binarized customer x item matrix restricted to each item's k nearest
neighbours, ease = EASE's learned item-item regression weights (delta = 0 switches it off), the rho term
the evidence "bought it before, longer ago than the exclusion window" (rho_rate scales it by the item's
repurchase rate r(i), see :meth:`TrainingData.repurchase_rate`: people re-order consumables, not one-off
gifts), and pop = recent distinct buyers scaled to [0, 1]. Only the base term is not attributable to a
purchase.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recommendations.evaluation.baselines import (
    Recommender,
    cosine_item_similarity,
    ease_item_weights,
    keep_top_neighbours,
)
from recommendations.evaluation.training import DAY, TrainingData

DEFAULT_PARAMS = {
    "alpha": 1.0,  # item-kNN cosine
    "delta": 0.0,  # EASE item-item weights
    "rho": 4.0,  # bought before
    "rho_rate": 0.0,  # bought before, times the item's repurchase rate
    "beta": 0.03,  # description-embedding cosine
    "gamma": 0.04,  # recent popularity (base term)
    "neighbours": 100,
    "shrinkage": 50.0,
    "ease_l2": 300.0,
    "half_life_days": 180.0,
    "pop_window_days": 30,
}
# Blend weight -> the score component it multiplies.
BLEND = {
    "alpha": "knn",
    "delta": "ease",
    "rho": "repeat",
    "rho_rate": "repeat_rate",
    "beta": "embedding",
    "gamma": "popularity",
}


class HybridRecommender(Recommender):
    name = "hybrid"

    def __init__(self, **params):
        unknown = set(params) - set(DEFAULT_PARAMS)
        if unknown:
            raise TypeError(f"unknown hybrid parameters: {sorted(unknown)}")
        super().__init__(**{**DEFAULT_PARAMS, **params})

    def fit(
        self,
        data: TrainingData,
        *,
        similarity: np.ndarray | None = None,
        ease_weights: np.ndarray | None = None,
    ) -> HybridRecommender:
        """Learn the item-side tables.

        ``similarity`` (the unpruned shrunk cosine) and ``ease_weights`` may be passed when already
        computed on the same data with the same parameters, to save recomputing them.
        """
        if data.item_vectors is None:
            raise ValueError("the hybrid needs item_vectors")
        super().fit(data)
        p = self.params
        if similarity is None:
            similarity = cosine_item_similarity(data.binary, shrinkage=p["shrinkage"])
        self.similarity = keep_top_neighbours(similarity, p["neighbours"])
        self.ease = None
        if p["delta"]:
            self.ease = ease_weights if ease_weights is not None else ease_item_weights(data.binary, l2=p["ease_l2"])
        self.vectors = data.item_vectors.astype(np.float64)
        self.popularity = scaled_popularity(data, p["pop_window_days"])
        self.repurchase = data.repurchase_rate() if p["rho_rate"] else np.zeros(data.n_items)
        self.weights = data.purchase_weights(half_life_days=p["half_life_days"], quantity="binary")
        return self

    # ------------------------------------------------------------------ batch scoring
    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.score_weights(self.weights[rows])

    def score_weights(self, weights) -> np.ndarray:
        """Return scores for customers given as a customers x items purchase-weight matrix (sparse or dense)."""
        return blend(self.components(weights), self.params)

    def components(self, weights) -> dict[str, np.ndarray]:
        """Return the unweighted score parts (each customers x items); the score is their linear blend."""
        weights, total = normalized_weights(weights)
        repeat = repeat_part(weights, total)
        parts = {
            "knn": item_item_part(weights, total, self.similarity),
            "repeat": repeat,
            "repeat_rate": repeat * self.repurchase[None, :],
            "embedding": embedding_part(weights, self.vectors),
            "popularity": np.broadcast_to(self.popularity, (weights.shape[0], len(self.popularity))),
        }
        if self.ease is not None:
            parts["ease"] = item_item_part(weights, total, self.ease)
        return parts

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

        ``sum(contributions.values()) + base_term == score`` up to float rounding; products outside the
        model's catalogue are ignored (they carry no evidence, here or in batch scoring).
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
        repeat = p["rho"] + p["rho_rate"] * self.repurchase[target]
        item_item = p["alpha"] * self.similarity[cols, target] + repeat * (cols == target)
        if self.ease is not None:
            item_item = item_item + p["delta"] * self.ease[cols, target]
        profile_norm = np.linalg.norm(w @ self.vectors[cols])
        cosine = self.vectors[cols] @ self.vectors[target] / profile_norm if profile_norm > 0 else np.zeros(len(w))
        contributions = w * item_item / w.sum() + p["beta"] * w * cosine
        score = float(contributions.sum() + base)
        return score, dict(zip(bought, contributions.tolist(), strict=True)), base


def scaled_popularity(data: TrainingData, window_days: int | None) -> np.ndarray:
    """Return each item's distinct buyers in the last ``window_days``, divided by the maximum."""
    recent = data.recent_buyers(window_days)
    return recent / recent.max() if recent.max() > 0 else recent


def normalized_weights(weights) -> tuple:
    """Return (weights as sparse or float64 array, Z = row sums as a column, 1 where a row is empty)."""
    weights = weights if hasattr(weights, "toarray") else np.asarray(weights, dtype=np.float64)
    total = np.asarray(weights.sum(axis=1), dtype=np.float64).reshape(-1, 1)
    return weights, np.where(total > 0, total, 1.0)


def item_item_part(weights, total: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Return sum_p w_p table(p, i) / Z for every customer row and item column."""
    return np.asarray(weights @ table) / total


def repeat_part(weights, total: np.ndarray) -> np.ndarray:
    """Return w_i / Z: the weight of having bought item i itself."""
    dense = weights.toarray() if hasattr(weights, "toarray") else weights
    return dense / total


def embedding_part(weights, vectors: np.ndarray) -> np.ndarray:
    """Return cos(sum_p w_p v_p, v_i) for every customer row and item column."""
    profile = np.asarray(weights @ vectors)
    norm = np.linalg.norm(profile, axis=1, keepdims=True)
    return (profile / np.where(norm > 0, norm, 1.0)) @ vectors.T


def blend(parts: Mapping[str, np.ndarray], params: Mapping) -> np.ndarray:
    """Return the weighted sum of the score components under the blend weights in ``params``."""
    total = np.zeros(parts["popularity"].shape)
    for weight, component in BLEND.items():
        if params[weight]:
            total = total + params[weight] * parts[component]
    return total


def hybrid_score_with_evidence(
    model: HybridRecommender, customer_weights: Mapping[str, float], item: str
) -> tuple[float, dict[str, float], float]:
    """Return (score, contributions by purchased product, base term) of ``item`` for one customer under ``model``."""
    return model.hybrid_score_with_evidence(customer_weights, item)
