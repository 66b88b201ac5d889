"""Job kinds of the explanation engine: concepts, calibration (default queue), explanations (gpu)."""

from __future__ import annotations

from django.conf import settings

from explanations.models import Concept, ConfidenceCalibration
from jobs.registry import JobKind, register, shard
from recommendations.models import Customer, Recommendation, RecommendationBatch


def _one_shard(job) -> list[dict]:
    return [{"size": 1}]


def _stale_since(model, field: str):
    """Plan one shard unless ``model``'s newest ``field`` is newer than the last embedding change."""
    from django.db.models import Max

    from recommendations.job_kinds import latest_embedding_change

    def plan(job) -> list[dict]:
        last = model.objects.aggregate(t=Max(field))["t"]
        changed = latest_embedding_change()
        if not job.params.get("force") and last and changed and last > changed:
            job.result = {**job.result, "reused": True}
            job.save(update_fields=["result"])
            return []
        return _one_shard(job)

    return plan


def _train_concepts(job, payload) -> int:
    from explanations.services.concepts import concepts_train

    report = concepts_train()
    job.result = {**job.result, "concepts": report}
    job.save(update_fields=["result"])
    return 1


def _calibrate(job, payload) -> int:
    from explanations.services.confidence import confidence_calibrate

    cal = confidence_calibrate()
    job.result = {**job.result, "calibration_id": cal.pk, "ece_before": cal.ece_before, "ece_after": cal.ece_after}
    job.save(update_fields=["result"])
    return 1


def recommendations_to_explain(*, customers: int | None = None, ranks: int | None = None) -> list[int]:
    """Return ids of active-batch recommendations without an explanation, most active customers first."""
    qs = Recommendation.objects.filter(batch__status=RecommendationBatch.Status.ACTIVE, explanation__isnull=True)
    if ranks:
        qs = qs.filter(rank__lte=ranks)
    qs = qs.order_by("-customer__order_count", "customer_id", "rank")
    if customers:
        most_active = Customer.objects.filter(embedding__isnull=False).order_by("-order_count", "id")
        qs = qs.filter(customer_id__in=list(most_active.values_list("id", flat=True)[:customers]))
    return list(qs.values_list("id", flat=True))


def _plan_explain(job) -> list[dict]:
    ids = recommendations_to_explain(customers=job.params.get("customers"), ranks=job.params.get("ranks"))
    return [{"ids": chunk, "size": len(chunk)} for chunk in shard(ids, settings.ELM_EXPLAIN_SHARD_SIZE)]


def _run_explain(job, payload) -> int:
    from explanations.services.explain import explanations_generate

    return explanations_generate(recommendation_ids=payload["ids"], use_lm=job.params.get("use_lm", True))


register(
    JobKind(
        name="train_concepts",
        label="Train concepts",
        plan=_stale_since(Concept, "trained_at"),
        run_shard=_train_concepts,
    )
)
register(
    JobKind(
        name="calibrate",
        label="Calibrate confidence",
        plan=_stale_since(ConfidenceCalibration, "created_at"),
        run_shard=_calibrate,
    )
)
register(JobKind(name="explain", label="Explain", plan=_plan_explain, run_shard=_run_explain, queue="gpu"))


def _plan_train_elm(job) -> list[dict]:
    from explanations.ml.elm import adapter_root

    if not job.params.get("force") and (adapter_root() / "CURRENT").exists():
        job.result = {**job.result, "reused": True}
        job.save(update_fields=["result"])
        return []
    return _one_shard(job)


def _train_elm(job, payload) -> int:
    from explanations.services.elm_training import elm_train

    result = elm_train(preset=job.params.get("preset"))
    job.result = {**job.result, **result}
    job.save(update_fields=["result"])
    return 1


register(
    JobKind(
        name="train_elm",
        label="Train ELM adapter",
        plan=_plan_train_elm,
        run_shard=_train_elm,
        queue="gpu",
        time_limit=3600,
    )
)
