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
from recommendations.services.reorder import reorder_apply
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


def recently_bought(*, customer_ids: Sequence[int], since, until=None) -> dict[int, list[int]]:
    """Return, per customer, the products it bought since ``since`` (and before ``until`` when given):
    excluded from recommendations."""
    out: dict[int, list[int]] = defaultdict(list)
    rows = Purchase.objects.filter(customer_id__in=customer_ids, kind=Purchase.Kind.SALE, occurred_at__gte=since)
    if until is not None:
        rows = rows.filter(occurred_at__lt=until)
    rows = rows.values_list("customer_id", "product_id").distinct()
    for cid, pid in rows:
        out[cid].append(pid)
    return out


def recommend_as_of(
    *,
    cutoff,
    customer_ids: Sequence[int],
    top_n: int,
    exclude_days: int,
    half_life_days: float,
    served=None,
    unavailable: Sequence[int] = (),
) -> dict[int, list[tuple[int, float]]]:
    """Recommend as of a past ``cutoff`` from the lines before it only: {customer: [(product id, score), ...]}.

    The one "recommend as of a date": the dashboard's replay calls it. With ``served`` (the hybrid fitted on
    the lines before the cutoff) it ranks with the customers' purchase weights aged from the cutoff; without,
    it builds each customer vector as of the cutoff and searches the HNSW index. Either way the production
    exclusion rule holds (nothing bought in the ``exclude_days`` before the cutoff), and ``unavailable``
    products (not yet sold at the cutoff) are never recommended by the embedding search.
    """
    recent = recently_bought(customer_ids=customer_ids, since=cutoff - timedelta(days=exclude_days), until=cutoff)
    if served is not None:
        return _hybrid_as_of(served, customer_ids, recent, cutoff=cutoff, top_n=top_n)
    weights = profile.purchase_weights(customer_ids, reference=cutoff, half_life_days=half_life_days, before=cutoff)
    product_vectors = fetch_vectors(Product._meta.db_table, {pw.product_id for ws in weights.values() for pw in ws})
    out = {}
    with connection.cursor() as cur:
        configure_search(cur)
        for cid in customer_ids:
            vector, _ = profile.customer_vector(weights.get(cid, []), product_vectors)
            if vector is None:
                continue
            excluded = recent.get(cid, []) + list(unavailable)
            out[cid] = product_search(vector=vector, excluded=excluded, top_n=top_n, cursor=cur)
    return out


def _hybrid_as_of(served, customer_ids, recent: dict[int, list[int]], *, cutoff, top_n: int) -> dict[int, list]:
    from recommendations.evaluation.baselines import top_n as best_columns

    # Lines up to (not including) the cutoff; ages are measured from the cutoff.
    reference = cutoff - timedelta(microseconds=1)
    weights = production.customer_weights(
        customer_ids, reference=reference, half_life_days=served.params["half_life_days"]
    )
    ids = [cid for cid in customer_ids if weights.get(cid)]
    if not ids:
        return {}
    code_of = dict(
        Product.objects.filter(pk__in={p for ps in recent.values() for p in ps}).values_list("id", "stock_code")
    )
    scores = served.score(served.weight_matrix([weights[cid] for cid in ids]))
    excluded = served.weight_matrix([{code_of[p]: 1.0 for p in recent.get(cid, [])} for cid in ids]).astype(bool)
    picks = best_columns(scores, excluded, top_n)
    codes = {str(served.items[col]) for cols in picks for col in cols}
    id_of = dict(Product.objects.filter(stock_code__in=codes).values_list("stock_code", "id"))
    return {
        cid: [(id_of[str(served.items[col])], float(scores[row, col])) for col in cols]
        for row, (cid, cols) in enumerate(zip(ids, picks, strict=True))
    }


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
        reorder_apply(rows, reference=profile.reference_time())
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
    reorder_apply(rows, reference=profile.reference_time())
    with transaction.atomic():
        Recommendation.objects.filter(batch_id=batch.pk, customer_id__in=customer_ids).delete()
        Recommendation.objects.bulk_create(rows, batch_size=2000)
    return len(customer_ids)


def recommendation_batch_activate(*, batch_id: int) -> RecommendationBatch:
    """Make the batch the one everybody reads, superseding the previous one in the same transaction.

    At most one batch is active (a partial unique index), so the previous one is a single row that
    takes its own transition; it is saved first, so the index never sees two active batches.
    """
    with transaction.atomic():
        batch = RecommendationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == RecommendationBatch.Status.ACTIVE:
            return batch
        previous = (
            RecommendationBatch.objects.select_for_update().filter(status=RecommendationBatch.Status.ACTIVE).first()
        )
        if previous is not None:
            previous.supersede()
            previous.save(update_fields=["status"])
        batch.activate()
        batch.save(update_fields=["status", "activated_at"])
    return batch


def recommendation_batch_fail(*, batch_id: int) -> None:
    """Mark a running batch failed (a batch that is active or superseded already stays as it is)."""
    with transaction.atomic():
        batch = RecommendationBatch.objects.select_for_update().get(pk=batch_id)
        if batch.status == RecommendationBatch.Status.RUNNING:
            batch.fail()
            batch.save(update_fields=["status"])
