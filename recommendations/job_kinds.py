"""Job kinds of this app: embed products (gpu queue), embed customers, recommend."""

from __future__ import annotations

from django.conf import settings

from jobs.registry import JobKind, register, shard
from recommendations.models import Customer, Product, RecommendationBatch
from recommendations.services import embeddings, recommend


def _payloads(ids: list[int], **extra) -> list[dict]:
    return [{"ids": chunk, "size": len(chunk), **extra} for chunk in shard(ids, settings.ELM_SHARD_SIZE)]


def _encoder_version() -> str:
    from recommendations.ml.encoder import encoder_version  # reads files only; no torch

    return encoder_version()


register(
    JobKind(
        name="embed_products",
        label="Embed products",
        plan=lambda job: _payloads(embeddings.products_needing_embedding(model_version=_encoder_version())),
        run_shard=lambda job, payload: embeddings.products_embed(product_ids=payload["ids"]),
        queue="gpu",
    )
)

register(
    JobKind(
        name="embed_customers",
        label="Embed customers",
        plan=lambda job: _payloads(embeddings.customers_needing_embedding()),
        run_shard=lambda job, payload: embeddings.customers_embed(customer_ids=payload["ids"]),
    )
)


def latest_embedding_change():
    """Return when any customer or product vector last changed (None if never)."""
    from django.db.models import Max

    times = [
        Customer.objects.aggregate(t=Max("embedded_at"))["t"],
        Product.objects.aggregate(t=Max("embedded_at"))["t"],
    ]
    times = [t for t in times if t]
    return max(times) if times else None


def _reusable_batch() -> RecommendationBatch | None:
    """Return the active batch if nothing it depends on changed since it was made."""
    active = RecommendationBatch.objects.filter(status=RecommendationBatch.Status.ACTIVE).first()
    changed = latest_embedding_change()
    if active is None or changed is None or active.created_at < changed:
        return None
    expected = recommend.recommendation_batch_version(model_version=_encoder_version())
    return active if active.model_version == expected else None


def _plan_recommend(job) -> list[dict]:
    if not job.params.get("force") and "batch_id" not in job.result and (reused := _reusable_batch()):
        job.result = {"batch_id": reused.pk, "reused": True}
        job.save(update_fields=["result"])
        return []
    # A redelivered planning message reuses the batch it already started.
    batch_id = job.result.get("batch_id")
    if batch_id is None:
        batch_id = recommend.recommendation_batch_start(model_version=_encoder_version()).pk
        job.result = {**job.result, "batch_id": batch_id}
        job.save(update_fields=["result"])
    ids = list(Customer.objects.filter(embedding__isnull=False).order_by("id").values_list("id", flat=True))
    return _payloads(ids, batch_id=batch_id)


def _finalize_recommend(job) -> dict:
    batch_id = job.result["batch_id"]
    batch = recommend.recommendation_batch_activate(batch_id=batch_id)
    return {"batch_id": batch_id, "recommendations": batch.recommendations.count()}


register(
    JobKind(
        name="recommend",
        label="Recommend",
        plan=_plan_recommend,
        run_shard=lambda job, payload: recommend.recommendations_compute(
            batch_id=payload["batch_id"], customer_ids=payload["ids"]
        ),
        finalize=_finalize_recommend,
    )
)
