"""Job kinds of this app: embed products (gpu queue), embed customers, recommend (the production recommender),
evaluate (offline evaluation; chooses the production recommender), tune_encoder (gpu), segments (gpu) and
import (the configured data file). Each is a thin call of this app's services and selectors."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from jobs.registry import JobKind, one_shard, register, reuse, shard
from recommendations import selectors
from recommendations.models import RecommendationBatch
from recommendations.services import embeddings, recommend


def _payloads(ids: list[int], **extra) -> list[dict]:
    return [{"ids": chunk, "size": len(chunk), **extra} for chunk in shard(ids, settings.ELM_SHARD_SIZE)]


def _encoder_version() -> str:
    from recommendations.ml.encoder import encoder_version  # reads files only; no torch

    return encoder_version()


register(
    JobKind(
        name="embed_products",
        label=_("Embed products"),
        plan=lambda job: _payloads(embeddings.products_needing_embedding(model_version=_encoder_version())),
        run_shard=lambda job, payload: embeddings.products_embed(product_ids=payload["ids"]),
        queue="gpu",
    )
)

register(
    JobKind(
        name="embed_customers",
        label=_("Embed customers"),
        plan=lambda job: _payloads(embeddings.customers_needing_embedding()),
        run_shard=lambda job, payload: embeddings.customers_embed(customer_ids=payload["ids"]),
    )
)


def _plan_recommend(job) -> list[dict]:
    if (
        not job.params.get("force")
        and "batch_id" not in job.result
        and (reused := selectors.recommendation_batch_reusable(encoder_version=_encoder_version()))
    ):
        return reuse(job, batch_id=reused.pk)
    # A redelivered planning message reuses the batch it already started.
    batch_id = job.result.get("batch_id")
    if batch_id is None:
        # The production recommender (the validation winner); the hybrid is fitted here, once per data version.
        batch_id = recommend.production_batch_start(encoder_version=_encoder_version()).pk
        job.result = {**job.result, "batch_id": batch_id}
        job.save(update_fields=["result"])
    batch = RecommendationBatch.objects.get(pk=batch_id)
    job.result = {**job.result, "recommender": batch.recommender, "model_version": batch.model_version}
    job.save(update_fields=["result"])
    return _payloads(recommend.production_customer_ids(batch), batch_id=batch_id)


def _finalize_recommend(job) -> dict:
    batch_id = job.result["batch_id"]
    batch = recommend.recommendation_batch_activate(batch_id=batch_id)
    return {"batch_id": batch_id, "recommendations": batch.recommendations.count()}


register(
    JobKind(
        name="recommend",
        label=_("Recommend"),
        plan=_plan_recommend,
        run_shard=lambda job, payload: recommend.recommendations_compute(
            batch_id=payload["batch_id"], customer_ids=payload["ids"]
        ),
        finalize=_finalize_recommend,
    )
)


# --------------------------------------------------------------------------- evaluation


def _plan_evaluate(job) -> list[dict]:
    from recommendations.services.evaluation import evaluation_run_start

    # A redelivered planning message reuses the run it already recorded.
    if "evaluation_run_id" not in job.result:
        run = evaluation_run_start(
            source=job.params.get("source", "db"),
            reduced=bool(job.params.get("reduced", False)),
            config=dict(job.params.get("config") or {}),
            job=job,
        )
        job.result = {**job.result, "evaluation_run_id": run.pk}
        job.save(update_fields=["result"])
    return [{"size": 1, "evaluation_run_id": job.result["evaluation_run_id"]}]


def _run_evaluate(job, payload) -> int:
    from recommendations.models import EvaluationRun
    from recommendations.services.evaluation import evaluation_run_execute, evaluation_run_reopen

    run_id = payload["evaluation_run_id"]
    if EvaluationRun.objects.filter(pk=run_id, status=EvaluationRun.Status.SUCCEEDED).exists():
        return 1  # a redelivered shard: the run is already stored
    evaluation_run_reopen(run_id=run_id)
    run = evaluation_run_execute(run_id=run_id)
    job.result = {
        **job.result,
        "chosen_model": run.chosen_model,
        "chosen_version": run.chosen_version,
        "customers_evaluated": run.customers_evaluated,
        "goal_met": bool(run.goal.get("met")),
    }
    job.save(update_fields=["result"])
    return 1


register(
    JobKind(
        name="evaluate",
        label=_("Evaluate recommenders"),
        plan=_plan_evaluate,
        run_shard=_run_evaluate,
        time_limit=3 * 3600,  # the full run takes ~15-40 min on 2 shared cores
    )
)


# --------------------------------------------------------------------------- encoder tuning and segments


def _run_tune_encoder(job, payload) -> int:
    from recommendations.services.encoder_tuning import encoder_tune

    preset = job.params.get("preset") or ("gpu" if settings.ELM_DEVICE == "cuda" else "cpu")
    report = encoder_tune(
        preset=preset,
        cutoff=job.params.get("cutoff", "2011-09-01"),
        overrides=job.params.get("overrides") or {},
    )
    job.result = {**job.result, "version": report["version"], "search": {
        k: report.get("search", {}).get(k) for k in ("before", "after", "queries")}}  # fmt: skip
    job.save(update_fields=["result"])
    return 1


register(
    JobKind(
        name="tune_encoder",
        label=_("Tune encoder"),
        plan=one_shard,
        run_shard=_run_tune_encoder,
        queue="gpu",
        time_limit=2 * 3600,
    )
)


# --------------------------------------------------------------------------- import


def _run_import(job, payload) -> int:
    from pathlib import Path

    from recommendations.services.importer import transactions_import

    # The file is the configured data set: the jobs page does not take paths from the browser.
    run = transactions_import(path=Path(settings.ELM_DATASET_PATH))
    job.result = {**job.result, "import_run_id": run.pk, "rows_inserted": run.rows_inserted}
    job.save(update_fields=["result"])
    return 1


register(
    JobKind(
        name="import",
        label=_("Import transactions"),
        plan=one_shard,
        run_shard=_run_import,
        time_limit=3600,
    )
)
