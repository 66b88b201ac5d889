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
    from recommendations.evaluation.calibration import TooLittleData

    try:
        cal = confidence_calibrate()
    except TooLittleData as exc:
        # A small data set is no failure: the job succeeds, says why it skipped, and explain runs on
        # without a calibration (explanations then show no confidence).
        job.result = {**job.result, "calibration": "skipped", "reason": str(exc)}
        job.save(update_fields=["result"])
        return 1
    job.result = {**job.result, "calibration_id": cal.pk, "ece_before": cal.ece_before, "ece_after": cal.ece_after}
    job.save(update_fields=["result"])
    return 1


def recommendations_to_explain(*, customers: int | None = None, ranks: int | None = None) -> list[int]:
    """Return ids of active-batch recommendations without an explanation (or a failed one), most active first."""
    from django.db.models import Q

    from explanations.models import Explanation

    qs = Recommendation.objects.filter(
        Q(explanation__isnull=True) | Q(explanation__status=Explanation.Status.FAILED),
        batch__status=RecommendationBatch.Status.ACTIVE,
    )
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


def _current_task():
    from celery import current_task

    return current_task


def on_last_attempt() -> bool:
    """Whether the running shard task has no retry left (True outside a task, e.g. direct calls)."""
    from jobs.tasks import MAX_RETRIES

    task = _current_task()
    if not task or task.request.id is None:  # current_task is a proxy: falsy outside a task
        return True
    return task.request.retries >= MAX_RETRIES


def _run_explain(job, payload) -> int:
    from explanations.services.explain import explanations_generate

    # A failing LM (e.g. it cannot load) fails the shard, which is retried with backoff; only the last
    # attempt keeps the template reasons, flagged with the error, so the evidence still reaches review.
    return explanations_generate(
        recommendation_ids=payload["ids"],
        use_lm=job.params.get("use_lm", True),
        fall_back_on_lm_error=on_last_attempt(),
    )


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


def _explain_failed(job, payload, error: str) -> None:
    """Mark the shard's recommendations failed with the error; complete explanations are kept."""
    from explanations.models import Explanation

    ids = payload["ids"]
    message = error[:4000]
    Explanation.objects.filter(recommendation_id__in=ids, status=Explanation.Status.FAILED).update(error=message)
    have = set(Explanation.objects.filter(recommendation_id__in=ids).values_list("recommendation_id", flat=True))
    missing = [i for i in ids if i not in have]
    Explanation.objects.bulk_create(
        [Explanation(recommendation_id=i, status=Explanation.Status.FAILED, error=message) for i in missing],
        ignore_conflicts=True,
    )


register(
    JobKind(
        name="explain",
        label="Explain",
        plan=_plan_explain,
        run_shard=_run_explain,
        on_shard_failed=_explain_failed,
        queue="gpu",
    )
)


def current_adapter_config() -> dict | None:
    """Return the config of the adapter in use (read from disk, no torch), or None if there is none."""
    import json

    from explanations.ml.elm import adapter_root

    root = adapter_root()
    try:
        version = (root / "CURRENT").read_text().strip()
        return json.loads((root / version / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def adapter_is_reusable(config: dict | None, *, preset: str) -> bool:
    """Whether the adapter in use serves a request for ``preset``: same LM and encoder, and not a
    "quick" adapter when a fuller preset is asked for (the demo upgrades its quick one in the background)."""
    from explanations.ml.lm import lm_id
    from recommendations.ml.encoder import encoder_version

    if not config:
        return False
    if config.get("lm_id") != lm_id() or config.get("encoder_version") != encoder_version():
        return False
    return preset == "quick" or config.get("preset_name") != "quick"


def _plan_train_elm(job) -> list[dict]:
    preset = job.params.get("preset") or settings.ELM_ADAPTER_PRESET
    if not job.params.get("force") and adapter_is_reusable(current_adapter_config(), preset=preset):
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


def _plan_rescore(job) -> list[dict]:
    from explanations.models import Explanation

    ids = job.params.get("ids")
    if ids is None:  # every edited text still waiting for its consistency
        ids = list(
            Explanation.objects.filter(consistency__isnull=True).exclude(reason_text="").values_list("id", flat=True)
        )
    return [{"ids": chunk, "size": len(chunk)} for chunk in shard(list(ids), settings.ELM_EXPLAIN_SHARD_SIZE)]


def _run_rescore(job, payload) -> int:
    from explanations.services.review import reasons_rescore

    return reasons_rescore(explanation_ids=payload["ids"])


# Reviewer edits: the semantic consistency of the new text needs the encoder (worker only).
register(
    JobKind(
        name="rescore_reasons",
        label="Re-score edited reasons",
        plan=_plan_rescore,
        run_shard=_run_rescore,
        queue="gpu",
    )
)


def _plan_describe(job) -> list[dict]:
    from explanations.services.descriptions import customers_to_describe

    ids = customers_to_describe(customers=job.params.get("customers"))
    return [{"ids": chunk, "size": len(chunk)} for chunk in shard(ids, settings.ELM_DESCRIBE_SHARD_SIZE)]


def _run_describe(job, payload) -> int:
    from explanations.services.descriptions import customer_descriptions_generate

    return customer_descriptions_generate(customer_ids=payload["ids"])


# Customer descriptions: the customer's vector in words through the ELM adapter (LM work: gpu queue).
register(
    JobKind(
        name="describe_customers",
        label="Describe customers",
        plan=_plan_describe,
        run_shard=_run_describe,
        queue="gpu",
    )
)
