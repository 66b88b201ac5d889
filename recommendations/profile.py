"""How a customer vector is built from purchases: one definition shared by embedding and evidence.

A customer's vector is the weighted mean of the embeddings of the products it bought, net of
returns, L2-normalized, with weight ``log1p(net quantity) * 0.5 ** (age / half_life)``. The
score of a product is then exactly ``sum_p share_p`` with ``share_p = w_p <v_p, v_i> / ||sum w v||``,
which is what makes per-purchase evidence faithful by construction.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connection
from django.utils import timezone

# Purchase.Kind.SALE and RETURN, by value: this module imports no model, so the offline evaluation (which runs
# without a database) computes customer vectors with the same function as production.
PROFILE_KINDS = ("sale", "return")


@dataclass(frozen=True)
class PurchaseWeight:
    product_id: int
    net_quantity: int
    last_bought_at: datetime
    weight: float


def reference_time() -> datetime:
    """Return "now" for profiles: the latest purchase in the data (the data set ends in 2011).

    Every customer's recency weights depend on it, so a newer purchase re-ages everybody; that
    costs no model work (customer vectors are arithmetic on stored product vectors).
    """
    override = getattr(settings, "ELM_REFERENCE_TIME", None)
    if override:
        return override
    with connection.cursor() as cur:
        cur.execute("SELECT max(occurred_at) FROM recommendations_purchase")
        latest = cur.fetchone()[0]
    return latest or timezone.now()


def weight_of(net_quantity: int, age_days: float, *, half_life_days: float) -> float:
    """Return the weight of one purchased product in the customer vector (0 when net returned)."""
    if net_quantity <= 0:
        return 0.0
    return math.log1p(net_quantity) * 0.5 ** (max(age_days, 0.0) / half_life_days)


def purchase_weights(
    customer_ids: Iterable[int],
    *,
    reference: datetime,
    half_life_days: float | None = None,
    before: datetime | None = None,
) -> dict[int, list[PurchaseWeight]]:
    """Return the positive purchase weights of each customer, largest first (from lines before ``before``
    only when given: a profile as of a past date)."""
    half_life = half_life_days or settings.ELM_RECENCY_HALF_LIFE_DAYS
    ids = list(customer_ids)
    out: dict[int, list[PurchaseWeight]] = defaultdict(list)
    if not ids:
        return out
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT customer_id, product_id, SUM(quantity)::bigint,
                   MAX(occurred_at) FILTER (WHERE kind = 'sale')
            FROM recommendations_purchase
            WHERE customer_id = ANY(%s) AND kind IN ('sale', 'return')
                  AND (%s::timestamptz IS NULL OR occurred_at < %s::timestamptz)
            GROUP BY customer_id, product_id
            """,
            [ids, before, before],
        )
        for customer_id, product_id, net, last in cur.fetchall():
            if last is None or net <= 0:
                continue
            age = (reference - last).total_seconds() / 86400
            w = weight_of(int(net), age, half_life_days=half_life)
            out[customer_id].append(PurchaseWeight(product_id, int(net), last, w))
    for weights in out.values():
        weights.sort(key=lambda pw: (-pw.weight, pw.product_id))
    return out


def customer_vectors(weights, product_vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The customer vector, for many customers at once: row i is the L2-normalized ``weights[i] @ product_vectors``
    (the weighted mean of the bought products' vectors, up to the scale the normalization removes).

    ``weights`` is customers x products (dense or scipy sparse), ``product_vectors`` products x dimensions.
    Returns (unit vectors, pre-norm lengths); a row without weight stays zero with length 0.
    """
    acc = np.asarray(weights @ product_vectors)
    norms = np.linalg.norm(acc, axis=1, keepdims=True)
    return acc / np.where(norms > 0, norms, 1.0), norms[:, 0]


def customer_vector(weights: list[PurchaseWeight], vectors: dict[int, np.ndarray]) -> tuple[np.ndarray | None, float]:
    """Return one customer's vector (``customer_vectors`` of its purchase weights) and its pre-norm length."""
    # A product without a description/embedding cannot shape the profile.
    used = [pw for pw in weights if pw.product_id in vectors]
    if not used:
        return None, 0.0
    matrix = np.stack([np.asarray(vectors[pw.product_id], dtype=np.float64) for pw in used])
    unit, norms = customer_vectors(np.array([[pw.weight for pw in used]], dtype=np.float64), matrix)
    if norms[0] == 0.0:
        return None, 0.0
    return unit[0].astype(np.float32), float(norms[0])
