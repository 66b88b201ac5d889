"""Hyper-parameter search of the hybrid on the validation folds (validation NDCG only; the test split is never read)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from recommendations.evaluation.baselines import (
    Recommender,
    cosine_item_similarity,
    ease_item_weights,
    keep_top_neighbours,
    rank_customers,
    top_n,
)
from recommendations.evaluation.hybrid import (
    DEFAULT_PARAMS,
    blend,
    embedding_part,
    item_item_part,
    normalized_weights,
    repeat_part,
    scaled_popularity,
)
from recommendations.evaluation.metrics import (
    ndcg_at_k,
)
from recommendations.evaluation.registry import build_model
from recommendations.evaluation.split import TemporalSplit
from recommendations.evaluation.training import TrainingData


class _LRU:
    """A tiny least-recently-used cache: the tuner revisits the current best often, the rest rarely."""

    def __init__(self, size: int):
        self.size = size
        self.entries: OrderedDict = OrderedDict()

    def get(self, key, compute: Callable[[], object]):
        if key in self.entries:
            self.entries.move_to_end(key)
            return self.entries[key]
        value = compute()
        self.entries[key] = value
        if len(self.entries) > self.size:
            self.entries.popitem(last=False)
        return value


@dataclass
class Fold:
    """A validation split with its indexed training data and per-fold caches."""

    split: TemporalSplit
    data: TrainingData
    # Dense item x item tables (~80 MB each on the full data): keep only the few in use.
    similarities: _LRU = field(default_factory=lambda: _LRU(2))  # shrinkage -> unpruned cosine
    ease: _LRU = field(default_factory=lambda: _LRU(2))  # l2 -> EASE weights

    def similarity(self, shrinkage: float) -> np.ndarray:
        return self.similarities.get(shrinkage, lambda: cosine_item_similarity(self.data.binary, shrinkage=shrinkage))

    def ease_weights(self, l2: float) -> np.ndarray:
        return self.ease.get(l2, lambda: ease_item_weights(self.data.binary, l2=l2))

    def fit(self, family: str, params: Mapping) -> Recommender:
        model = build_model(family, params)
        if family == "item_knn":
            return model.fit(self.data, similarity=self.similarity(params["shrinkage"]))
        if family == "ease":
            return model.fit(self.data, weights=self.ease_weights(params["l2"]))
        if family == "hybrid":
            ease = self.ease_weights(params["ease_l2"]) if params["delta"] else None
            return model.fit(self.data, similarity=self.similarity(params["shrinkage"]), ease_weights=ease)
        return model.fit(self.data)


def validation_ndcg(model: Recommender, split: TemporalSplit) -> float:
    """Return the mean NDCG@10 of a fitted model over the split's evaluated customers."""
    ranked = rank_customers(model, split.customers, split.excluded, n=10)
    return float(np.mean([ndcg_at_k(r, split.relevant[c], 10) for r, c in zip(ranked, split.customers, strict=True)]))


class _HybridFoldScorer:
    """Validation NDCG@10 of hybrid parameters on one fold, each score part cached on what it depends on."""

    def __init__(self, fold: Fold):
        self.fold = fold
        self.customers = fold.split.customers
        self.rows = np.array([fold.data.customer_index[c] for c in self.customers], dtype=np.int64)
        self.exclude = fold.data.exclusion_mask(self.customers, fold.split.excluded)
        self.vectors = fold.data.item_vectors.astype(np.float64)
        self.repurchase = fold.data.repurchase_rate()
        self.caches = {
            name: _LRU(2) for name in ("weights", "pruned", "knn", "ease", "embedding", "repeat", "repeat_rate", "pop")
        }

    def _weights(self, half_life):
        def compute():
            weights = self.fold.data.purchase_weights(half_life_days=half_life, quantity="binary")[self.rows]
            return normalized_weights(weights)

        return self.caches["weights"].get(half_life, compute)

    def parts(self, p: Mapping) -> dict[str, np.ndarray]:
        hl = p["half_life_days"]
        weights, total = self._weights(hl)
        fold, caches = self.fold, self.caches
        similarity = caches["pruned"].get(
            (p["shrinkage"], p["neighbours"]),
            lambda: keep_top_neighbours(fold.similarity(p["shrinkage"]), p["neighbours"]),
        )
        parts = {
            "knn": caches["knn"].get(
                (hl, p["shrinkage"], p["neighbours"]), lambda: item_item_part(weights, total, similarity)
            ),
            "repeat": caches["repeat"].get(hl, lambda: repeat_part(weights, total)),
            "repeat_rate": caches["repeat_rate"].get(
                hl, lambda: repeat_part(weights, total) * self.repurchase[None, :]
            ),
            "embedding": caches["embedding"].get(hl, lambda: embedding_part(weights, self.vectors)),
            "popularity": np.broadcast_to(
                caches["pop"].get(p["pop_window_days"], lambda: scaled_popularity(fold.data, p["pop_window_days"])),
                (len(self.rows), fold.data.n_items),
            ),
        }
        if p["delta"]:
            parts["ease"] = caches["ease"].get(
                (hl, p["ease_l2"]), lambda: item_item_part(weights, total, fold.ease_weights(p["ease_l2"]))
            )
        return parts

    def ndcg(self, params: Mapping) -> float:
        best = top_n(blend(self.parts(params), params), self.exclude, 10)
        items, relevant = self.fold.data.items, self.fold.split.relevant
        return float(
            np.mean([ndcg_at_k(items[b].tolist(), relevant[c], 10) for b, c in zip(best, self.customers, strict=True)])
        )


def tune_hybrid(folds: list[Fold], axes: Mapping[str, list[dict]]) -> tuple[list[dict], dict]:
    """Coordinate descent (two rounds) over the hybrid's axes on mean validation NDCG@10; return (trials, best)."""
    scorers = [_HybridFoldScorer(fold) for fold in folds]
    current = dict(DEFAULT_PARAMS)
    first = [scorer.ndcg(current) for scorer in scorers]
    trials = [{"params": dict(current), "validation_ndcg@10": float(np.mean(first)), "per_fold": first}]
    best_score = trials[0]["validation_ndcg@10"]
    for round_ in (1, 2):
        for axis, options in axes.items():
            for option in options:
                candidate = {**current, **option}
                if candidate == current or (not candidate["alpha"] and not candidate["delta"]):
                    continue
                per_fold = [scorer.ndcg(candidate) for scorer in scorers]
                value = float(np.mean(per_fold))
                trials.append(
                    {
                        "round": round_,
                        "axis": axis,
                        "params": candidate,
                        "validation_ndcg@10": value,
                        "per_fold": per_fold,
                    }
                )
                if value > best_score:
                    best_score, current = value, candidate
    return trials, current
