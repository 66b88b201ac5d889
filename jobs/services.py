"""Writes for jobs: create, plan into shards, record shard completion, finalize, fail, retry, resume.

Statuses change only through the transitions of ``jobs.models`` (a state machine), each inside
``transaction.atomic`` with the job row locked; shards move set-wise through the same table.
"""

from __future__ import annotations

import logging
import traceback
from collections.abc import Sequence
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from django_fsm import can_proceed

from jobs import pipeline, registry
from jobs.heartbeat import heartbeat_seconds
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
        job.start()
        job.shards_total = len(shards)
        job.items_total = sum(s.size for s in shards)
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["status", "started_at", "shards_total", "items_total", "heartbeat_at"])
        if shards:
            for s in shards:
                transaction.on_commit(lambda i=s.index: _enqueue_shard(job_id, i, kind))
        else:
            transaction.on_commit(lambda: job_finalize(job_id=job_id))
    return job


def shard_complete(*, job_id: int, index: int, items: int) -> bool:
    """Mark a shard done exactly once; finish the job when it was the last. Returns True if counted."""
    now = timezone.now()
    with transaction.atomic():
        # The conditional UPDATE (pending -> done) is the compare-and-set: a redelivery moves nothing.
        updated = JobShard.objects.filter(job_id=job_id, index=index).transition("complete", finished_at=now, error="")
        if not updated:
            return False
        Job.objects.filter(pk=job_id).update(
            shards_done=F("shards_done") + 1, items_done=F("items_done") + items, heartbeat_at=now
        )
    _finish_when_no_shard_pending(job_id)
    return True


def _finish_when_no_shard_pending(job_id: int) -> None:
    """Finalize, or fail naming the failed shards, once every shard is done or failed for good.

    Checked after each shard's own commit, so the last of several concurrent shards always sees the
    others; finalize and fail lock the job and act once.
    """
    shards = JobShard.objects.filter(job_id=job_id)
    if shards.exclude(status__in=[JobShard.Status.DONE, JobShard.Status.FAILED]).exists():
        return  # pending, or interrupted (its job is no longer running: resume decides)
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
            job.succeed()
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
        shard.fail()
        shard.attempts += 1
        shard.error = error[:4000]
        shard.finished_at = timezone.now()
        shard.save(update_fields=["attempts", "error", "status", "finished_at"])
        hook = registry.get(shard.job.kind).on_shard_failed
        if hook is not None:
            hook(shard.job, shard.payload, error)
    logger.error("job %s shard %s failed for good: %s", job_id, index, error.splitlines()[0] if error else "")
    _finish_when_no_shard_pending(job_id)


def job_fail(*, job_id: int, error: str) -> Job:
    """Mark a queued or running job failed; a finished or interrupted job is left as it is."""
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if not can_proceed(job.fail):
            return job
        job.fail(error=error)
        job.save(update_fields=["status", "error", "finished_at"])
    logger.error("job %s failed: %s", job_id, error.splitlines()[0] if error else "")
    return job


def job_retry(*, job_id: int) -> Job:
    """Re-queue the unfinished shards of a failed job (finished shards are not redone)."""
    return _job_continue(job_id=job_id, source=Job.Status.FAILED)


def job_resume(*, job_id: int) -> Job:
    """Go on with an interrupted job: its unfinished shards are queued again, done ones are kept.

    A job interrupted before it planned is planned again.
    """
    return _job_continue(job_id=job_id, source=Job.Status.INTERRUPTED)


def _job_continue(*, job_id: int, source: str) -> Job:
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status != source:
            return job
        if not job.shards_total:
            job.requeue()
            _forget_reused(job)
            job.heartbeat_at = timezone.now()
            job.save(update_fields=["status", "error", "finished_at", "heartbeat_at", "result"])
            transaction.on_commit(lambda: _enqueue_plan(job_id))
            return job
        kind = registry.get(job.kind)
        unfinished = list(job.shards.exclude(status=JobShard.Status.DONE).values_list("index", flat=True))
        job.shards.filter(index__in=unfinished).transition("requeue")
        job.shards.filter(index__in=unfinished).update(attempts=0, finished_at=None)
        job.resume()
        job.heartbeat_at = timezone.now()
        job.save(update_fields=["status", "error", "finished_at", "heartbeat_at"])
        for index in unfinished:
            transaction.on_commit(lambda i=index: _enqueue_shard(job_id, i, kind))
        if not unfinished:
            transaction.on_commit(lambda: job_finalize(job_id=job_id))
    return job


def job_restart(*, job_id: int) -> Job:
    """Run a failed or interrupted job again from its plan: its shards are dropped and planned anew.

    Unlike a retry or a resume, done shards are redone. ``result`` is kept: the kinds' planners read
    the run they started from it (a batch, a replay run), so a restart refills that run.
    """
    with transaction.atomic():
        job = Job.objects.select_for_update().get(pk=job_id)
        if job.status not in (Job.Status.FAILED, Job.Status.INTERRUPTED):
            return job
        job.shards.all().delete()
        job.requeue()
        _forget_reused(job)
        job.shards_total = job.shards_done = job.items_total = job.items_done = 0
        job.started_at = None
        job.heartbeat_at = timezone.now()
        job.save(
            update_fields=[
                "status", "error", "finished_at", "shards_total", "shards_done", "items_total", "items_done",
                "started_at", "heartbeat_at", "result",
            ]
        )  # fmt: skip
        transaction.on_commit(lambda: _enqueue_plan(job_id))
    return job


def _forget_reused(job: Job) -> None:
    """Before planning again, drop a result that points at another job's finished run.

    A planner that found nothing changed records the run it reused (``reused``: the active batch, the
    latest replay); planning again with it would refill that finished run in place. Its own run
    (``reused`` absent) is kept, so planning again completes the run it started.
    """
    if job.result.get("reused"):
        job.result = {}


def job_heartbeat(*, job_id: int) -> None:
    """Record a sign of life from the worker planning the job or running one of its shards."""
    Job.objects.filter(pk=job_id, status__in=Job.ACTIVE).update(heartbeat_at=timezone.now())


def job_stale_after() -> timedelta:
    """Return how long a queued or running job may go without a heartbeat before it counts as interrupted."""
    hours = float(getattr(settings, "ELM_JOB_STALE_AFTER_HOURS", 24))
    # Never under three missed heartbeats, whatever the setting says: a live worker's job is never stale.
    return max(timedelta(hours=hours), timedelta(seconds=3 * heartbeat_seconds()))


def jobs_interrupted_mark(*, reason: str, stale_after: timedelta | None = None) -> list[int]:
    """Mark queued and running jobs that no worker runs any more as interrupted, with their pending shards.

    ``stale_after=None`` takes every queued or running job: only for a caller that knows no worker
    runs (the demo before it starts its own workers; ``manage.py jobs_recover --all``). Otherwise a
    job is taken only when its last sign of life (heartbeat, else start, else creation) is older than
    ``stale_after``: a live worker beats every ELM_JOB_HEARTBEAT_SECONDS while it plans or runs a
    shard, so its jobs are never taken. Rows locked by a worker right now are skipped too.
    Returns the ids of the jobs marked.
    """
    with transaction.atomic():
        qs = (
            Job.objects.select_for_update(skip_locked=True)
            .filter(status__in=Job.ACTIVE)
            .annotate(seen=Coalesce("heartbeat_at", "started_at", "created_at"))
        )
        if stale_after is not None:
            qs = qs.filter(seen__lt=timezone.now() - stale_after)
        jobs = list(qs.order_by("pk"))
        for job in jobs:
            # finished_at: the last sign of life, so the duration shown is how long it really ran.
            job.interrupt(reason=reason, stopped_at=job.seen if job.started_at else None)
            job.save(update_fields=["status", "error", "finished_at"])
        ids = [job.pk for job in jobs]
        JobShard.objects.filter(job_id__in=ids).transition("interrupt")
    if ids:
        logger.warning("marked %s job(s) interrupted (%s): %s", len(ids), reason, ids)
    return ids


def _describe(exc: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(exc), exc)).strip() + "\n" + traceback.format_exc(limit=8)


STALE_REASON = "Interrupted: no worker reported on this job for too long (its worker was stopped or lost)."
_NIGHTLY_LOCK = 0x454C4D4E  # "ELMN": one advisory lock id for starting the nightly chain


def nightly_refresh_start(
    *, chain: Sequence[str] = pipeline.NIGHTLY, params: dict | None = None, created_by=None
) -> Job | None:
    """Start the refresh chain unless a job of it is queued or running; return the first job or None.

    An advisory lock serializes concurrent starts (beat firing while an admin presses the button),
    so two chains never run at once. Jobs without a heartbeat for ``job_stale_after()`` are marked
    interrupted first (their worker was lost), so a dead job never blocks the night.
    """
    from django.db import connection

    with transaction.atomic():
        with connection.cursor() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", [_NIGHTLY_LOCK])
        jobs_interrupted_mark(reason=STALE_REASON, stale_after=job_stale_after())
        busy = Job.objects.filter(kind__in=list(chain), status__in=Job.ACTIVE).exists()
        if busy:
            logger.info("nightly refresh skipped: a job of the chain is still queued or running")
            return None
        return pipeline_start(steps=chain, params={**(params or {}), "nightly": True}, created_by=created_by)
