"""Thin Celery tasks: they take ids and delegate to jobs.services; every step is idempotent."""

from __future__ import annotations

import logging

from celery import shared_task
from celery.signals import worker_ready
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, close_old_connections, connections

from jobs import pipeline, registry, services
from jobs.heartbeat import heartbeat
from jobs.models import Job, JobShard

logger = logging.getLogger(__name__)

MAX_RETRIES = 3
# While the database itself is unreachable nothing can be recorded, so such errors are retried
# longer (backoff capped at MAX_DB_BACKOFF seconds) before the shard gives up.
MAX_DB_RETRIES = 20
MAX_DB_BACKOFF = 60.0


def retry_backoff(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: ELM_JOB_RETRY_BACKOFF x 4^n (5 s, 20 s, 80 s by default)."""
    return float(getattr(settings, "ELM_JOB_RETRY_BACKOFF", 5.0)) * 4**retries


@shared_task(name="jobs.plan_job", acks_late=True, time_limit=600, soft_time_limit=570)
def plan_job(job_id: int) -> None:
    with heartbeat(job_id):
        services.job_plan(job_id=job_id)


@shared_task(bind=True, name="jobs.run_shard", acks_late=True, max_retries=MAX_DB_RETRIES)
def run_shard(self, job_id: int, index: int) -> int:
    """Run one shard of a job. Safe to redeliver: a finished shard is skipped, work is upserted."""
    close_old_connections()
    try:
        shard = JobShard.objects.select_related("job").filter(job_id=job_id, index=index).first()
        if shard is None or shard.status != JobShard.Status.PENDING or shard.job.status != Job.Status.RUNNING:
            return 0
        kind = registry.get(shard.job.kind)
        with heartbeat(job_id):
            items = int(kind.run_shard(shard.job, shard.payload) or 0)
        services.shard_complete(job_id=job_id, index=index, items=items)
        return items
    except Exception as exc:
        _retry_or_fail(self, job_id=job_id, index=index, exc=exc)
        return 0


def _retry_or_fail(task, *, job_id: int, index: int, exc: Exception) -> None:
    retries = task.request.retries
    database_down = isinstance(exc, OperationalError | InterfaceError)
    final = retries >= (MAX_DB_RETRIES if database_down else MAX_RETRIES)
    error = services._describe(exc)
    try:
        services.shard_fail(job_id=job_id, index=index, error=error, final=final)
    except DatabaseError:
        # Nothing can be recorded now; the retry (or, at the end, the job's retry) picks the shard up again.
        logger.exception("job %s shard %s: could not record the failure", job_id, index)
        if final:
            raise
        database_down = True
    if final:
        logger.error("job %s shard %s failed for good", job_id, index)
        return
    countdown = retry_backoff(retries)
    if database_down:
        countdown = min(countdown, MAX_DB_BACKOFF)
    logger.warning("job %s shard %s: attempt %s failed, retrying in %.1f s", job_id, index, retries + 1, countdown)
    raise task.retry(exc=exc, countdown=countdown)


@shared_task(name="jobs.nightly_refresh", acks_late=True, time_limit=120, soft_time_limit=110)
def nightly_refresh(chain: list[str] | None = None, params: dict | None = None) -> int | None:
    """Start the nightly refresh chain, ``jobs.pipeline.NIGHTLY`` (beat calls this; a ``chain`` in the
    schedule's kwargs overrides it)."""
    job = services.nightly_refresh_start(chain=chain or pipeline.NIGHTLY, params=params)
    return job.pk if job else None


def _current_task():
    from celery import current_task

    return current_task


def on_last_attempt() -> bool:
    """Whether the running shard task has no retry left (True outside a task, e.g. direct calls)."""
    task = _current_task()
    if not task or task.request.id is None:  # current_task is a proxy: falsy outside a task
        return True
    return task.request.retries >= MAX_RETRIES


@worker_ready.connect
def interrupted_jobs_mark(**kwargs) -> None:
    """A starting worker marks the jobs no worker has reported on for ELM_JOB_STALE_AFTER_HOURS.

    Only stale jobs: the other workers may be running the rest, and they beat every minute.
    """
    try:
        services.jobs_interrupted_mark(reason=services.STALE_REASON, stale_after=services.job_stale_after())
    except DatabaseError:
        logger.warning("could not check for interrupted jobs at worker start", exc_info=True)
    finally:
        connections.close_all()  # the worker's main process keeps no connection of its own
