"""Recommendation batches: top-N merchandise per customer, swapped in atomically.

Two recommenders: the production choice (:mod:`recommendations.services.production`: the hybrid, scored
with numpy from a frozen artifact) and the embedding recommender (HNSW search by the customer vector,
also used for counterfactual re-ranking of its explanations).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone

from recommendations import profile
from recommendations.models import Customer, Product, Purchase, Recommendation, RecommendationBatch
from recommendations.services import production
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
    """Start a batch of the embedding recommender (HNSW search by the customer vector)."""
    return RecommendationBatch.objects.create(
        recommender=RECOMMENDER,
        model_version=recommendation_batch_version(model_version=model_version),
        params=batch_params(),
    )


def production_batch_version(*, encoder_version: str) -> str:
    """Return the version a new production batch would get now (equal to the active one's = nothing to redo)."""
    choice = production.production_choice()
    if choice.recommender == production.HYBRID:
        return production.hybrid_version(choice.params)
    return recommendation_batch_version(model_version=encoder_version)


def production_batch_start(*, encoder_version: str) -> RecommendationBatch:
    """Start a batch of the production recommender: the validation winner, fitted now if it is the hybrid.

    The batch records the recommender, its version (parameters + data digest for the hybrid) and the
    evaluation run that chose it.
    """
    choice = production.production_choice()
    if choice.recommender != production.HYBRID:
        batch = recommendation_batch_start(model_version=encoder_version)
    else:
        served = production.hybrid_artifact(choice.params)  # fitted here once, loaded by the shards
        batch = RecommendationBatch.objects.create(
            recommender=production.HYBRID,
            model_version=served.version,
            params={
                "top_n": settings.ELM_RECOMMENDATIONS_PER_CUSTOMER,
                "exclude_days": settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS,
                "model": served.params,
                "fitted_on": served.meta,
            },
        )
    batch.params = {**batch.params, "chosen_by": choice.source}
    batch.evaluation_run_id = choice.evaluation_run_id
    batch.save(update_fields=["params", "evaluation_run"])
    return batch


def production_customer_ids(batch: RecommendationBatch) -> list[int]:
    """Return the customers a batch covers: with a vector (embedding) or with any sale (hybrid)."""
    if batch.recommender == production.HYBRID:
        with_sales = Purchase.objects.filter(customer_id=OuterRef("pk"), kind=Purchase.Kind.SALE)
        qs = Customer.objects.filter(Exists(with_sales))
    else:
        qs = Customer.objects.filter(embedding__isnull=False)
    return list(qs.order_by("id").values_list("id", flat=True))


SEARCH_SQL = """
    SELECT id, 1 - (embedding <=> %(vector)s::vector) AS score
    FROM recommendations_product
    WHERE is_merchandise AND NOT pii_quarantined AND NOT (id = ANY(%(excluded)s))
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
    if batch.recommender == production.HYBRID:
        return _hybrid_compute(batch, customer_ids)
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


def _hybrid_compute(batch: RecommendationBatch, customer_ids: Sequence[int]) -> int:
    served = production.hybrid_artifact(batch.params["model"], version=batch.model_version)
    lists = production.hybrid_top_n(
        served,
        customer_ids,
        top_n=int(batch.params["top_n"]),
        exclude_days=int(batch.params["exclude_days"]),
    )
    codes = {code for hits in lists.values() for code, _ in hits}
    product_of = dict(Product.objects.filter(stock_code__in=codes).values_list("stock_code", "id"))
    now = timezone.now()
    rows = [
        Recommendation(
            batch_id=batch.pk, customer_id=cid, product_id=product_of[code], rank=rank, score=score, generated_at=now
        )
        for cid, hits in lists.items()
        for rank, (code, score) in enumerate(hits, start=1)
    ]
    with transaction.atomic():
        Recommendation.objects.filter(batch_id=batch.pk, customer_id__in=customer_ids).delete()
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
