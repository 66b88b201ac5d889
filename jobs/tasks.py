"""Thin Celery tasks: they take ids and delegate to jobs.services; every step is idempotent."""

from __future__ import annotations

import logging

from celery import shared_task
from django.db import close_old_connections

from jobs import registry, services
from jobs.models import Job, JobShard

logger = logging.getLogger(__name__)

MAX_RETRIES = 3


@shared_task(name="jobs.plan_job", acks_late=True, time_limit=600, soft_time_limit=570)
def plan_job(job_id: int) -> None:
    services.job_plan(job_id=job_id)


@shared_task(bind=True, name="jobs.run_shard", acks_late=True, max_retries=MAX_RETRIES)
def run_shard(self, job_id: int, index: int) -> int:
    """Run one shard of a job. Safe to redeliver: a finished shard is skipped, work is upserted."""
    close_old_connections()
    shard = JobShard.objects.select_related("job").filter(job_id=job_id, index=index).first()
    if shard is None or shard.status == JobShard.Status.DONE or shard.job.status != Job.Status.RUNNING:
        return 0
    kind = registry.get(shard.job.kind)
    try:
        items = kind.run_shard(shard.job, shard.payload)
    except Exception as exc:
        final = self.request.retries >= MAX_RETRIES
        services.shard_fail(job_id=job_id, index=index, error=services._describe(exc), final=final)
        if final:
            logger.exception("shard %s/%s failed for good", job_id, index)
            return 0
        # Back off 5 s, 20 s, 80 s: model load or database hiccups usually pass.
        raise self.retry(exc=exc, countdown=5 * 4**self.request.retries) from exc
    services.shard_complete(job_id=job_id, index=index, items=int(items or 0))
    return int(items or 0)
