"""Exact per-purchase evidence for a recommendation score, and the counterfactual necessity check.

Embedding recommender: the customer vector is ``c = sum_p w_p v_p / ||sum_p w_p v_p||``
(recommendations.profile), so for a unit product vector ``v_i`` the score ``cos(c, v_i)`` equals
``sum_p share_p`` with ``share_p = w_p <v_p, v_i> / ||sum_p w_p v_p||``. Nothing is approximated.

Hybrid (the production recommender when it wins validation): the score is a sum of one term per
purchased product (co-purchase, EASE, "bought before" and description-similarity parts) plus a
non-personal popularity term, ``Evidence.base`` (recommendations.evaluation.served). Shares + base = score.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommendations.profile import PurchaseWeight, customer_vector

TOP_EVIDENCE = 5
NECESSITY_REMOVE = 3  # CountER-style: remove the top-3 evidence purchases and re-rank


@dataclass(frozen=True)
class EvidenceItem:
    product_id: int
    weight: float
    share: float


@dataclass(frozen=True)
class Evidence:
    score: float
    items: list[EvidenceItem]  # every contributing purchase, largest share first
    norm: float
    base: float = 0.0  # a non-personal term (the hybrid's popularity): score = sum of shares + base

    def top(self, n: int = TOP_EVIDENCE) -> list[EvidenceItem]:
        return self.items[:n]

    def rest_share(self, n: int = TOP_EVIDENCE) -> float:
        return float(sum(item.share for item in self.items[n:]))


def decompose(weights: list[PurchaseWeight], vectors: dict[int, np.ndarray], item_vector: np.ndarray) -> Evidence:
    """Split cos(customer, item) into one exact share per purchased product."""
    _, norm = customer_vector(weights, vectors)
    v_i = np.asarray(item_vector, dtype=np.float64)
    v_i = v_i / np.linalg.norm(v_i)
    items = []
    for pw in weights:
        v_p = vectors.get(pw.product_id)
        if v_p is None or norm == 0:
            continue
        share = pw.weight * float(np.dot(np.asarray(v_p, dtype=np.float64), v_i)) / norm
        items.append(EvidenceItem(pw.product_id, pw.weight, share))
    items.sort(key=lambda e: -e.share)
    return Evidence(score=float(sum(e.share for e in items)), items=items, norm=norm)


def counterfactual_vector(
    weights: list[PurchaseWeight], vectors: dict[int, np.ndarray], removed: set[int]
) -> np.ndarray | None:
    """Return the customer vector as if the ``removed`` purchases had never happened."""
    vec, _ = customer_vector([pw for pw in weights if pw.product_id not in removed], vectors)
    return vec


def hybrid_evidence(recommendation, *, reference, removed_count: int = NECESSITY_REMOVE) -> tuple[Evidence, dict]:
    """Return the hybrid's exact evidence of a recommendation and its necessity check (product ids, not codes)."""
    from recommendations.models import Product
    from recommendations.services.production import hybrid_explain

    found = hybrid_explain(recommendation=recommendation, removed_count=removed_count, reference=reference)
    ids = dict(Product.objects.filter(stock_code__in=list(found.weights)).values_list("stock_code", "id"))
    items = [EvidenceItem(ids[code], found.weights[code], share) for code, share in found.contributions.items()]
    items.sort(key=lambda e: -e.share)
    evidence = Evidence(score=float(sum(e.share for e in items) + found.base), items=items, norm=0.0, base=found.base)
    necessity = {
        "removed": [ids[code] for code in found.necessity["removed_codes"]],
        "drops_out": found.necessity["drops_out"],
        "new_rank": found.necessity["new_rank"],
        "counterfactual_score": found.necessity["counterfactual_score"],
    }
    return evidence, necessity
