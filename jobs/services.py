"""Writes for jobs: create, plan into shards, record shard completion, finalize, fail."""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from jobs import pipeline, registry
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


def pipeline_start(*, steps: Sequence[str], params: dict | None = None, created_by=None) -> Job:
    """Create the first job of ``steps`` (a selection from ``jobs.pipeline``); each success starts the next."""
    first, *rest = steps
    return job_create(kind=first, params=params, then=rest, created_by=created_by)


def _enqueue_plan(job_id: int) -> None:
    from jobs.tasks import plan_job

    try:
        plan_job.apply_async(args=[job_id], queue="default")
    except Exception as exc:  # broker unreachable: say so on the job instead of leaving it queued forever
        job_fail(job_id=job_id, error=f"Could not queue the job (is the broker running?): {_describe(exc)}")


def _enqueue_shard(job_id: int, index: int, kind: registry.JobKind) -> None:
    from jobs.tasks import run_shard

    limit = kind.time_limit
    try:
        run_shard.apply_async(
            args=[job_id, index], queue=kind.queue, time_limit=limit, soft_time_limit=max(limit - 30, 1)
        )
    except Exception as exc:  # the job fails visibly; job_retry queues the unfinished shards again
        job_fail(job_id=job_id, error=f"Could not queue shard {index} (is the broker running?): {_describe(exc)}")


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
    """Mark a shard done exactly once; finish the job when it was the last. Returns True if counted."""
    with transaction.atomic():
        updated = JobShard.objects.filter(job_id=job_id, index=index, status=JobShard.Status.PENDING).update(
            status=JobShard.Status.DONE, finished_at=timezone.now(), error=""
        )
        if not updated:
            return False
        Job.objects.filter(pk=job_id).update(shards_done=F("shards_done") + 1, items_done=F("items_done") + items)
    _finish_when_no_shard_pending(job_id)
    return True


def _finish_when_no_shard_pending(job_id: int) -> None:
    """Finalize, or fail naming the failed shards, once every shard is done or failed for good.

    Checked after each shard's own commit, so the last of several concurrent shards always sees the
    others; finalize and fail lock the job and act once.
    """
    shards = JobShard.objects.filter(job_id=job_id)
    if shards.filter(status=JobShard.Status.PENDING).exists():
        return
    failed = list(shards.filter(status=JobShard.Status.FAILED).order_by("index").values_list("index", "error"))
    if not failed:
        job_finalize(job_id=job_id)
        return
    index, error = failed[0]
    job_fail(job_id=job_id, error=f"{len(failed)} of {shards.count()} shards failed; shard {index}: {error}")


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
    """Record a shard's error; after its last retry mark it and its items failed, and let the rest go on.

    The job fails (naming the failed shards) only when no other shard is pending any more;
    ``job_retry`` then re-runs the failed shards only.
    """
    pending = JobShard.objects.filter(job_id=job_id, index=index, status=JobShard.Status.PENDING)
    if not final:
        pending.update(attempts=F("attempts") + 1, error=error[:4000])
        return
    with transaction.atomic():
        shard = pending.select_related("job").select_for_update().first()
        if shard is None:
            return  # already done, or already failed by a redelivered message
        shard.attempts += 1
        shard.error = error[:4000]
        shard.status = JobShard.Status.FAILED
        shard.finished_at = timezone.now()
        shard.save(update_fields=["attempts", "error", "status", "finished_at"])
        hook = registry.get(shard.job.kind).on_shard_failed
        if hook is not None:
            hook(shard.job, shard.payload, error)
    logger.error("job %s shard %s failed for good: %s", job_id, index, error.splitlines()[0] if error else "")
    _finish_when_no_shard_pending(job_id)


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
        job.shards.filter(index__in=pending).update(status=JobShard.Status.PENDING, attempts=0, finished_at=None)
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


# A job still "running" after this long is taken as dead (its worker was lost) and does not block.
NIGHTLY_STALE_AFTER_HOURS = 24
_NIGHTLY_LOCK = 0x454C4D4E  # "ELMN": one advisory lock id for starting the nightly chain


def nightly_refresh_start(
    *, chain: Sequence[str] = pipeline.NIGHTLY, params: dict | None = None, created_by=None
) -> Job | None:
    """Start the refresh chain unless a job of it is queued or running; return the first job or None.

    An advisory lock serializes concurrent starts (beat firing while an admin presses the button),
    so two chains never run at once.
    """
    from datetime import timedelta

    from django.db import connection

    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_NIGHTLY_LOCK])
        recent = timezone.now() - timedelta(hours=NIGHTLY_STALE_AFTER_HOURS)
        busy = Job.objects.filter(
            kind__in=list(chain), status__in=[Job.Status.QUEUED, Job.Status.RUNNING], created_at__gte=recent
        ).exists()
        if busy:
            logger.info("nightly refresh skipped: a job of the chain is still queued or running")
            return None
        return pipeline_start(steps=chain, params={**(params or {}), "nightly": True}, created_by=created_by)
