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
