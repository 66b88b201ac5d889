"""Ranking metrics (binary relevance), catalogue coverage, novelty and bootstrap intervals.

Every per-customer metric takes ``ranked`` (the recommendation list, best first) and ``relevant``
(the items the customer actually went on to buy). Relevant items the recommender could never have
ranked (e.g. products first sold after the cutoff) still count in the denominators: that keeps the
numbers honest and comparable across recommenders.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping, Sequence

import numpy as np

PER_CUSTOMER_METRICS = ("ndcg@10", "recall@10", "recall@20", "mrr", "map@10", "hit_rate@10", "novelty@10")


def dcg_at_k(ranked: Sequence, relevant: Collection, k: int = 10) -> float:
    """Return the DCG of the top ``k`` with binary gains and a log2(rank + 1) discount."""
    return sum(1.0 / math.log2(rank + 2) for rank, item in enumerate(ranked[:k]) if item in relevant)


def ndcg_at_k(ranked: Sequence, relevant: Collection, k: int = 10) -> float:
    """Return DCG@k divided by the DCG of a perfect list (all relevant items first); 0 if none relevant."""
    ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(relevant), k)))
    return dcg_at_k(ranked, relevant, k) / ideal if ideal else 0.0


def recall_at_k(ranked: Sequence, relevant: Collection, k: int = 10) -> float:
    """Return the share of relevant items found in the top ``k``."""
    if not relevant:
        return 0.0
    return sum(1 for item in ranked[:k] if item in relevant) / len(relevant)


def hit_rate_at_k(ranked: Sequence, relevant: Collection, k: int = 10) -> float:
    """Return 1.0 if any relevant item is in the top ``k``, else 0.0."""
    return 1.0 if any(item in relevant for item in ranked[:k]) else 0.0


def reciprocal_rank(ranked: Sequence, relevant: Collection) -> float:
    """Return 1 / rank of the first relevant item in the whole list, 0.0 if there is none."""
    for rank, item in enumerate(ranked, start=1):
        if item in relevant:
            return 1.0 / rank
    return 0.0


def average_precision_at_k(ranked: Sequence, relevant: Collection, k: int = 10) -> float:
    """Return AP@k: the mean of precision@r over the ranks r <= k that hold a hit, over min(|relevant|, k)."""
    if not relevant:
        return 0.0
    hits = 0
    total = 0.0
    for rank, item in enumerate(ranked[:k], start=1):
        if item in relevant:
            hits += 1
            total += hits / rank
    return total / min(len(relevant), k)


def novelty_at_k(ranked: Sequence, popularity: Mapping, k: int = 10) -> float:
    """Return the mean self-information -log2 p(i) of the top ``k``, p(i) = share of customers who bought i."""
    top = ranked[:k]
    if not len(top):
        return 0.0
    return float(np.mean([-math.log2(popularity[item]) for item in top]))


def catalogue_coverage(rankings: Iterable[Sequence], catalogue_size: int, k: int = 10) -> float:
    """Return the share of the catalogue that appears in at least one top-``k`` list."""
    shown = set()
    for ranked in rankings:
        shown.update(ranked[:k])
    return len(shown) / catalogue_size if catalogue_size else 0.0


def customer_metrics(ranked: Sequence, relevant: Collection, popularity: Mapping) -> dict[str, float]:
    """Return every per-customer metric of one recommendation list."""
    return {
        "ndcg@10": ndcg_at_k(ranked, relevant, 10),
        "recall@10": recall_at_k(ranked, relevant, 10),
        "recall@20": recall_at_k(ranked, relevant, 20),
        "mrr": reciprocal_rank(ranked, relevant),
        "map@10": average_precision_at_k(ranked, relevant, 10),
        "hit_rate@10": hit_rate_at_k(ranked, relevant, 10),
        "novelty@10": novelty_at_k(ranked, popularity, 10),
    }


def bootstrap_indices(n: int, *, n_resamples: int = 1000, seed: int = 0) -> np.ndarray:
    """Return ``n_resamples`` x ``n`` customer indices drawn with replacement (seeded, shared across models)."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, n, size=(n_resamples, n))


def bootstrap_interval(values: np.ndarray, indices: np.ndarray, *, confidence: float = 0.95) -> tuple[float, float]:
    """Return the percentile bootstrap interval of the mean of ``values`` over the resamples ``indices``."""
    means = np.asarray(values, dtype=np.float64)[indices].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


def summarize(
    rankings: Sequence[Sequence],
    relevant: Sequence[Collection],
    popularity: Mapping,
    *,
    catalogue_size: int,
    indices: np.ndarray | None = None,
) -> tuple[dict[str, dict], dict[str, np.ndarray]]:
    """Return ({metric: {mean, ci95}}, {metric: per-customer values}) for aligned rankings and relevant sets."""
    per_customer = {name: np.zeros(len(rankings)) for name in PER_CUSTOMER_METRICS}
    for row, (ranked, rel) in enumerate(zip(rankings, relevant, strict=True)):
        for name, value in customer_metrics(ranked, rel, popularity).items():
            per_customer[name][row] = value
    result = {}
    for name, values in per_customer.items():
        entry = {"mean": float(values.mean()) if len(values) else 0.0}
        if indices is not None:
            entry["ci95"] = list(bootstrap_interval(values, indices))
        result[name] = entry
    # No bootstrap interval for coverage: a resample holds ~63% distinct customers, so the union of
    # their lists is biased low and the percentile interval would not even contain the estimate.
    result["coverage@10"] = {"mean": catalogue_coverage(rankings, catalogue_size, 10)}
    return result, per_customer
