"""Job kinds of the explanation engine: concepts, calibration (default queue), explanations (gpu)."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from explanations import selectors
from jobs.registry import JobKind, one_shard, register, reuse, shard
from recommendations import selectors as recommendation_selectors


def _unless_current(current: Callable[[], bool]) -> Callable:
    """Plan one shard unless ``current()`` says the last fit is newer than every vector (``force`` refits)."""

    def plan(job) -> list[dict]:
        if not job.params.get("force") and current():
            return reuse(job)
        return one_shard(job)

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
    test = (cal.metrics or {}).get("test", {})
    job.result = {
        **job.result,
        "calibration_id": cal.pk,
        "ece_before": cal.ece_before,
        "ece_after": cal.ece_after,
        "auc": test.get("auc"),
        "within_list_auc": test.get("within_list_auc"),
    }
    job.save(update_fields=["result"])
    return 1


def _plan_explain(job) -> list[dict]:
    ids = selectors.recommendations_to_explain(customers=job.params.get("customers"), ranks=job.params.get("ranks"))
    return [{"ids": chunk, "size": len(chunk)} for chunk in shard(ids, settings.ELM_EXPLAIN_SHARD_SIZE)]


def _run_explain(job, payload) -> int:
    from explanations.services.explain import explanations_generate
    from jobs.tasks import on_last_attempt

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
        label=_("Train concepts"),
        plan=_unless_current(selectors.concepts_current),
        run_shard=_train_concepts,
    )
)
register(
    JobKind(
        name="calibrate",
        label=_("Calibrate confidence"),
        plan=_unless_current(selectors.calibration_current),
        run_shard=_calibrate,
    )
)


# Numbers for a whole batch: shards of this many recommendations (by customer) are array work, ~seconds each.
NUMBERS_SHARD_SIZE = 5000


def _plan_numbers(job) -> list[dict]:
    ids = selectors.recommendations_without_numbers()
    return [{"ids": chunk, "size": len(chunk)} for chunk in shard(ids, NUMBERS_SHARD_SIZE)]


def _run_numbers(job, payload) -> int:
    from explanations.services.numbers import explanation_numbers_compute

    return explanation_numbers_compute(recommendation_ids=payload["ids"])


# Every recommendation's numbers (evidence, necessity, concepts, word attributions, confidence) and its
# template reason, before any language-model text: gpu queue, since new texts are encoded once.
register(
    JobKind(
        name="explain_numbers",
        label=_("Explain with numbers"),
        plan=_plan_numbers,
        run_shard=_run_numbers,
        queue="gpu",
    )
)


def _explain_failed(job, payload, error: str) -> None:
    from explanations.services.explain import explanations_mark_failed

    explanations_mark_failed(recommendation_ids=payload["ids"], error=error)


register(
    JobKind(
        name="explain",
        label=_("Explain"),
        plan=_plan_explain,
        run_shard=_run_explain,
        on_shard_failed=_explain_failed,
        queue="gpu",
    )
)


def _plan_train_elm(job) -> list[dict]:
    preset = job.params.get("preset") or settings.ELM_ADAPTER_PRESET
    if not job.params.get("force") and selectors.adapter_is_reusable(selectors.adapter_current_config(), preset=preset):
        return reuse(job)
    return one_shard(job)


def _train_elm(job, payload) -> int:
    from explanations.services.elm_training import elm_train

    result = elm_train(preset=job.params.get("preset"))
    job.result = {**job.result, **result}
    job.save(update_fields=["result"])
    return 1


register(
    JobKind(
        name="train_elm",
        label=_("Train ELM adapter"),
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
        label=_("Re-score edited reasons"),
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
        label=_("Describe customers"),
        plan=_plan_describe,
        run_shard=_run_describe,
        queue="gpu",
    )
)


# Segments are described by the ELM adapter, so they run here, above recommendations.
def _run_segments(job, payload) -> int:
    from explanations.services.segments import segments_compute

    run = segments_compute(job=job, k_max=int(job.params.get("k_max", 12)))
    job.result = {**job.result, "segment_run_id": run.pk, "k": run.k, "silhouette": run.silhouette}
    job.save(update_fields=["result"])
    return 1


def _plan_segments(job) -> list[dict]:
    """One shard, unless a segmentation newer than the last vector change exists (``force`` redoes it)."""
    if not job.params.get("force") and (latest := recommendation_selectors.segment_run_reusable()):
        return reuse(job, segment_run_id=latest.pk)
    return one_shard(job)


register(
    JobKind(
        name="segments",
        label=_("Segment customers"),
        plan=_plan_segments,
        run_shard=_run_segments,
        queue="gpu",  # the ELM adapter describes the centroids
        time_limit=3600,
    )
)
