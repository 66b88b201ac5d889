"""Recommendation batches: top-N merchandise per customer through the HNSW index, swapped in atomically."""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from recommendations import profile
from recommendations.models import Customer, Purchase, Recommendation, RecommendationBatch
from recommendations.vectors import fetch_vectors, vector_literal

RECOMMENDER = "embedding-cosine"


def batch_params() -> dict:
    return {
        "top_n": settings.ELM_RECOMMENDATIONS_PER_CUSTOMER,
        "exclude_days": settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS,
        "ef_search": settings.ELM_HNSW_EF_SEARCH,
    }


def recommendation_batch_version(*, model_version: str) -> str:
    """Return the version string of a batch: encoder version plus a digest of the recommender settings."""
    digest = hashlib.sha256(json.dumps([RECOMMENDER, model_version, batch_params()], sort_keys=True).encode())
    return f"{model_version}#{digest.hexdigest()[:8]}"


def recommendation_batch_start(*, model_version: str) -> RecommendationBatch:
    return RecommendationBatch.objects.create(
        recommender=RECOMMENDER,
        model_version=recommendation_batch_version(model_version=model_version),
        params=batch_params(),
    )


SEARCH_SQL = """
    SELECT id, 1 - (embedding <=> %(vector)s::vector) AS score
    FROM recommendations_product
    WHERE is_merchandise AND NOT (id = ANY(%(excluded)s))
    ORDER BY embedding <=> %(vector)s::vector
    LIMIT %(top_n)s
"""


def configure_search(cursor) -> None:
    """Set the HNSW search width; iterative scans keep N results when the exclusion filter bites."""
    cursor.execute("SET LOCAL hnsw.ef_search = %s", [int(settings.ELM_HNSW_EF_SEARCH)])
    cursor.execute("SET LOCAL hnsw.iterative_scan = 'relaxed_order'")


def product_search(*, vector, excluded: Sequence[int], top_n: int, cursor) -> list[tuple[int, float]]:
    """Return (product id, cosine similarity) of the nearest merchandise through the HNSW index."""
    cursor.execute(SEARCH_SQL, {"vector": vector_literal(vector), "excluded": list(excluded), "top_n": top_n})
    return cursor.fetchall()


def recently_bought(*, customer_ids: Sequence[int], since) -> dict[int, list[int]]:
    """Return, per customer, the products it bought since ``since`` (excluded from recommendations)."""
    out: dict[int, list[int]] = defaultdict(list)
    rows = (
        Purchase.objects.filter(customer_id__in=customer_ids, kind=Purchase.Kind.SALE, occurred_at__gte=since)
        .values_list("customer_id", "product_id")
        .distinct()
    )
    for cid, pid in rows:
        out[cid].append(pid)
    return out


def recommendations_compute(*, batch_id: int, customer_ids: Sequence[int]) -> int:
    """Write the top-N of each customer into the batch; re-running a shard replaces its rows."""
    batch = RecommendationBatch.objects.get(pk=batch_id)
    top_n = int(batch.params.get("top_n", settings.ELM_RECOMMENDATIONS_PER_CUSTOMER))
    since = profile.reference_time() - timedelta(days=int(batch.params.get("exclude_days", 90)))
    vectors = fetch_vectors(Customer._meta.db_table, customer_ids)
    recent = recently_bought(customer_ids=list(vectors), since=since)
    now = timezone.now()
    rows = []
    with transaction.atomic():
        with connection.cursor() as cur:
            configure_search(cur)
            for cid, vector in vectors.items():
                hits = product_search(vector=vector, excluded=recent.get(cid, []), top_n=top_n, cursor=cur)
                rows.extend(
                    Recommendation(
                        batch_id=batch_id, customer_id=cid, product_id=pid, rank=rank, score=score, generated_at=now
                    )
                    for rank, (pid, score) in enumerate(hits, start=1)
                )
        Recommendation.objects.filter(batch_id=batch_id, customer_id__in=customer_ids).delete()
        Recommendation.objects.bulk_create(rows, batch_size=2000)
    return len(customer_ids)


def recommendation_batch_activate(*, batch_id: int) -> RecommendationBatch:
    """Make the batch the one everybody reads, superseding the previous one in the same transaction."""
    with transaction.atomic():
        batch = RecommendationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == RecommendationBatch.Status.ACTIVE:
            return batch
        RecommendationBatch.objects.filter(status=RecommendationBatch.Status.ACTIVE).update(
            status=RecommendationBatch.Status.SUPERSEDED
        )
        batch.status = RecommendationBatch.Status.ACTIVE
        batch.activated_at = timezone.now()
        batch.save(update_fields=["status", "activated_at"])
    return batch


def recommendation_batch_fail(*, batch_id: int) -> None:
    RecommendationBatch.objects.filter(pk=batch_id, status=RecommendationBatch.Status.RUNNING).update(
        status=RecommendationBatch.Status.FAILED
    )
