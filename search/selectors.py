"""Semantic product search reads: a query vector -> products, through pgvector's HNSW index.

The query is encoded by a search worker (``search.services.query_encode``: sending and waiting for
tasks is a service's job; these functions only read). The nearest products come from the HNSW
index; with a customer, candidates are re-ranked by a blend of query similarity and similarity to
the customer's vector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.utils.translation import gettext as _

from core.permissions import UserLike
from recommendations.models import Customer, Product, Purchase, Recommendation, RecommendationBatch
from recommendations.services.recommend import configure_search
from recommendations.vectors import vector_literal

QUERY_MAX_LENGTH = 200
RESULTS_MAX = 50
# Candidates fetched through the index before re-ranking relative to a customer.
RERANK_CANDIDATES = 200

_CANDIDATES_SQL = """
    SELECT id, 1 - (embedding <=> %(query)s::vector) AS query_similarity{customer_column}
    FROM recommendations_product
    WHERE is_merchandise AND embedding IS NOT NULL
    ORDER BY embedding <=> %(query)s::vector
    LIMIT %(limit)s
"""
_CUSTOMER_COLUMN = ", 1 - (embedding <=> (SELECT embedding FROM recommendations_customer WHERE id = %(customer)s))"


class InvalidSearch(ValueError):
    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class SearchHit:
    product: Product
    score: float  # what the list is ordered by
    query_similarity: float  # cosine similarity of the product to the query
    customer_similarity: float | None  # cosine similarity to the customer's vector (with a customer)
    bought_before: bool = False
    recommended_rank: int | None = None  # the product's rank in the customer's active recommendations

    @property
    def match_percent(self) -> float:
        return max(0.0, min(100.0, self.query_similarity * 100))


def normalize_query(raw: str | None) -> str:
    """Return the query as the encoder sees it (whitespace collapsed, lower case); raise InvalidSearch."""
    text = " ".join((raw or "").split()).lower()
    if len(text) > QUERY_MAX_LENGTH:
        raise InvalidSearch("q", _("At most %(max)d characters.") % {"max": QUERY_MAX_LENGTH})
    return text


def product_search(
    *,
    user: UserLike,
    vector: np.ndarray,
    customer: Customer | None = None,
    limit: int = 20,
    customer_weight: float | None = None,
) -> list[SearchHit]:
    """Return the products nearest to ``vector``, re-ranked towards ``customer`` when one is given.

    ``customer`` must come from ``accounts.selectors.customer_get`` (it applied the user's
    scope). The blend is ``(1 - w) * query similarity + w * customer similarity`` over the
    RERANK_CANDIDATES nearest products; a customer without a vector gets the plain ranking.
    """
    limit = max(1, min(int(limit), RESULTS_MAX))
    if not np.isfinite(vector).all() or not np.any(vector):
        return []  # a zero or non-finite vector (a broken encoder) has no direction: nothing is near it
    weight = settings.ELM_SEARCH_CUSTOMER_WEIGHT if customer_weight is None else customer_weight
    use_customer = customer is not None and customer.embedded_at is not None and weight > 0
    sql = _CANDIDATES_SQL.format(customer_column=_CUSTOMER_COLUMN if use_customer else "")
    params = {
        "query": vector_literal(vector),
        "limit": max(limit, RERANK_CANDIDATES) if use_customer else limit,
        "customer": customer.pk if use_customer else None,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        configure_search(cursor)
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    scored = []
    for row in rows:
        query_sim = float(row[1])
        if not math.isfinite(query_sim):
            continue  # a product stored with a zero vector is near nothing
        customer_sim = float(row[2]) if use_customer and row[2] is not None else None
        if customer_sim is not None and not math.isfinite(customer_sim):
            customer_sim = None  # a zero customer vector: cosine is undefined, so the plain ranking holds
        score = query_sim if customer_sim is None else (1 - weight) * query_sim + weight * customer_sim
        scored.append((score, row[0], query_sim, customer_sim))
    scored.sort(key=lambda s: (-s[0], s[1]))
    scored = scored[:limit]
    ids = [s[1] for s in scored]
    products = Product.objects.defer("embedding").in_bulk(ids)
    bought: set[int] = set()
    ranks: dict[int, int] = {}
    if customer is not None and ids:
        bought = set(
            Purchase.objects.filter(customer=customer, product_id__in=ids, kind=Purchase.Kind.SALE)
            .values_list("product_id", flat=True)
            .distinct()
        )
        ranks = dict(
            Recommendation.objects.filter(
                customer=customer, product_id__in=ids, batch__status=RecommendationBatch.Status.ACTIVE
            ).values_list("product_id", "rank")
        )
    return [
        SearchHit(
            product=products[pid],
            score=score,
            query_similarity=query_sim,
            customer_similarity=customer_sim,
            bought_before=pid in bought,
            recommended_rank=ranks.get(pid),
        )
        for score, pid, query_sim, customer_sim in scored
        if pid in products
    ]
