"""Writes for jobs: create, plan into shards, record shard completion, finalize, fail."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs import registry
from jobs.models import Job, JobShard

logger = logging.getLogger(__name__)


def job_create(*, kind: str, params: dict | None = None, then: Sequence[str] = (), created_by=None, parent=None) -> Job:
    """Create a job and queue its planning once the transaction commits."""
    registry.get(kind)  # fail early on unknown kinds
    for next_kind in then:
        registry.get(next_kind)
    with transaction.atomic():
        job = Job.objects.create(kind=kind, params=params or {}, then=list(then), created_by=created_by, parent=parent)
        transaction.on_commit(lambda: _enqueue_plan(job.pk))
    return job


def _enqueue_plan(job_id: int) -> None:
    from jobs.tasks import plan_job

    plan_job.apply_async(args=[job_id], queue="default")


def _enqueue_shard(job_id: int, index: int, kind: registry.JobKind) -> None:
    from jobs.tasks import run_shard

    limit = kind.time_limit
    run_shard.apply_async(args=[job_id, index], queue=kind.queue, time_limit=limit, soft_time_limit=max(limit - 30, 1))


def job_plan(*, job_id: int) -> Job:
    """Split a queued job into shards and queue them; a second call for the same job does nothing."""
    job = Job.objects.get(pk=job_id)
    if job.status != Job.Status.QUEUED:
        return job
    kind = registry.get(job.kind)
    try:
        payloads = kind.plan(job)
    except Exception as exc:
        job_fail(job_id=job.pk, error=_describe(exc))
        raise
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status != Job.Status.QUEUED:
            return job
        shards = [
            JobShard(job=job, index=i, payload=p, size=int(p.get("size", len(p.get("ids", [])))))
            for i, p in enumerate(payloads)
        ]
        JobShard.objects.bulk_create(shards, ignore_conflicts=True)
        job.status = Job.Status.RUNNING
        job.started_at = timezone.now()
        job.shards_total = len(shards)
        job.items_total = sum(s.size for s in shards)
        job.save(update_fields=["status", "started_at", "shards_total", "items_total"])
        if shards:
            for s in shards:
                transaction.on_commit(lambda i=s.index: _enqueue_shard(job_id, i, kind))
        else:
            transaction.on_commit(lambda: job_finalize(job_id=job_id))
    return job


def shard_complete(*, job_id: int, index: int, items: int) -> bool:
    """Mark a shard done exactly once; finalize the job when it was the last. Returns True if counted."""
    with transaction.atomic():
        updated = (
            JobShard.objects.filter(job_id=job_id, index=index)
            .exclude(status=JobShard.Status.DONE)
            .update(status=JobShard.Status.DONE, finished_at=timezone.now(), error="")
        )
        if not updated:
            return False
        Job.objects.filter(pk=job_id).update(shards_done=F("shards_done") + 1, items_done=F("items_done") + items)
        job = Job.objects.get(pk=job_id)
        last = job.shards_done >= job.shards_total
    if last:
        job_finalize(job_id=job_id)
    return True


def job_finalize(*, job_id: int) -> Job:
    """Run the kind's finalizer once, mark the job succeeded and start the next kind in its chain."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status != Job.Status.RUNNING:
            return job
        try:
            result = registry.get(job.kind).finalize(job) or {}
        except Exception as exc:
            transaction.set_rollback(True)
            failure = _describe(exc)
        else:
            job.result = {**job.result, **result}
            job.status = Job.Status.SUCCEEDED
            job.finished_at = timezone.now()
            job.save(update_fields=["result", "status", "finished_at"])
            if job.then:
                next_kind, *rest = job.then
                job_create(kind=next_kind, params=job.params, then=rest, created_by=job.created_by, parent=job)
            return job
    return job_fail(job_id=job_id, error=failure)


def shard_fail(*, job_id: int, index: int, error: str, final: bool) -> None:
    """Record a shard's error; after the last retry the job fails with it."""
    JobShard.objects.filter(job_id=job_id, index=index).update(
        attempts=F("attempts") + 1, error=error[:4000], status=JobShard.Status.FAILED if final else F("status")
    )
    if final:
        job_fail(job_id=job_id, error=f"shard {index}: {error}")


def job_fail(*, job_id: int, error: str) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.is_finished:
            return job
        job.status = Job.Status.FAILED
        job.error = error[:8000]
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at"])
    logger.error("job %s failed: %s", job_id, error.splitlines()[0] if error else "")
    return job


def job_retry(*, job_id: int) -> Job:
    """Re-queue the unfinished shards of a failed job (finished shards are not redone)."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status != Job.Status.FAILED:
            return job
        if not job.shards_total:
            job.status = Job.Status.QUEUED
            job.error = ""
            job.finished_at = None
            job.save(update_fields=["status", "error", "finished_at"])
            transaction.on_commit(lambda: _enqueue_plan(job_id))
            return job
        kind = registry.get(job.kind)
        pending = list(job.shards.exclude(status=JobShard.Status.DONE).values_list("index", flat=True))
        job.shards.filter(index__in=pending).update(status=JobShard.Status.PENDING, attempts=0)
        job.status = Job.Status.RUNNING
        job.error = ""
        job.finished_at = None
        job.save(update_fields=["status", "error", "finished_at"])
        for index in pending:
            transaction.on_commit(lambda i=index: _enqueue_shard(job_id, i, kind))
        if not pending:
            transaction.on_commit(lambda: job_finalize(job_id=job_id))
    return job


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip() + "\n" + traceback.format_exc(limit=8)
