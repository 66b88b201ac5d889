"""Reads for jobs."""

from __future__ import annotations

from jobs.models import Job


def job_chain(job: Job) -> list[Job]:
    """Return the job followed by the jobs its pipeline started so far, oldest first."""
    chain = [job]
    while True:
        child = Job.objects.filter(parent=chain[-1]).order_by("created_at").first()
        if child is None:
            return chain
        chain.append(child)


def job_list(*, kind: str | None = None, limit: int = 50) -> list[Job]:
    qs = Job.objects.all()
    if kind:
        qs = qs.filter(kind=kind)
    return list(qs[:limit])


def job_queryset(*, kind: str | None = None, status: str | None = None):
    """Return jobs newest first for the jobs page, with who started them."""
    qs = Job.objects.select_related("created_by").order_by("-created_at", "-pk")
    if kind:
        qs = qs.filter(kind=kind)
    if status:
        qs = qs.filter(status=status)
    return qs


def jobs_active_exist() -> bool:
    return Job.objects.filter(status__in=[Job.Status.QUEUED, Job.Status.RUNNING]).exists()


def shard_counts(job: Job) -> dict[str, int]:
    """Return the number of shards of ``job`` per status."""
    from django.db.models import Count

    return dict(job.shards.order_by().values_list("status").annotate(n=Count("pk")))


def nightly_schedule():
    """Return the nightly refresh's beat schedule row (None when it was deleted in the admin)."""
    from django_celery_beat.models import PeriodicTask

    return PeriodicTask.objects.filter(task=NIGHTLY_TASK).select_related("crontab").order_by("pk").first()


NIGHTLY_TASK = "jobs.nightly_refresh"
