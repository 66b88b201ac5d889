"""Job bookkeeping by direct calls: shards counted once, finalize once, chains, failures, retries."""

import pytest

from jobs import registry
from jobs.models import Job, JobShard
from jobs.services import job_fail, job_plan, job_retry, shard_complete, shard_fail

pytestmark = pytest.mark.django_db

CALLS: list[str] = []

registry.register(
    registry.JobKind(
        name="test_three_shards",
        label="Test",
        plan=lambda job: [{"ids": [1, 2]}, {"ids": [3]}, {"ids": [4, 5, 6]}],
        run_shard=lambda job, payload: len(payload["ids"]),
        finalize=lambda job: CALLS.append(f"finalize {job.pk}") or {"finalized": True},
    )
)
registry.register(
    registry.JobKind(name="test_empty", label="Empty", plan=lambda job: [], run_shard=lambda job, payload: 0)
)


def planned_job(then=()):
    job = Job.objects.create(kind="test_three_shards", then=list(then))
    return job_plan(job_id=job.pk)


def test_plan_creates_shards_once():
    """Split a job into its shards; planning again changes nothing."""
    job = planned_job()
    assert (job.status, job.shards_total, job.items_total) == (Job.Status.RUNNING, 3, 6)
    job_plan(job_id=job.pk)
    assert JobShard.objects.filter(job=job).count() == 3


def test_a_redelivered_shard_is_counted_once_and_the_job_finalizes_once():
    """Count each shard once even when its task runs twice, and finalize exactly once."""
    CALLS.clear()
    job = planned_job()
    assert shard_complete(job_id=job.pk, index=0, items=2)
    assert not shard_complete(job_id=job.pk, index=0, items=2)  # redelivered after a worker died
    shard_complete(job_id=job.pk, index=1, items=1)
    shard_complete(job_id=job.pk, index=2, items=3)
    shard_complete(job_id=job.pk, index=2, items=3)
    job.refresh_from_db()
    assert (job.status, job.shards_done, job.items_done) == (Job.Status.SUCCEEDED, 3, 6)
    assert job.result == {"finalized": True}
    assert CALLS == [f"finalize {job.pk}"]


def test_success_starts_the_next_kind_in_the_chain():
    """Create the next job of the pipeline when one succeeds, linked to its parent."""
    job = planned_job(then=["test_empty"])
    for i, n in enumerate([2, 1, 3]):
        shard_complete(job_id=job.pk, index=i, items=n)
    child = Job.objects.get(parent=job)
    assert child.kind == "test_empty" and child.then == []


def test_a_shard_failed_for_good_lets_the_rest_finish_then_fails_the_job_and_retry_reruns_it(
    django_capture_on_commit_callbacks,
):
    """Keep running the other shards; fail the job naming the shard; a retry re-runs only that shard."""
    # Given a job whose shard 1 fails, first retryably, then for good
    CALLS.clear()
    job = planned_job()
    shard_complete(job_id=job.pk, index=0, items=2)
    shard_fail(job_id=job.pk, index=1, error="RuntimeError: model failed to load", final=False)
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING  # will be retried by Celery
    shard_fail(job_id=job.pk, index=1, error="RuntimeError: model failed to load", final=True)
    # Then the job keeps running while shard 2 is pending, and fails when it is done
    assert Job.objects.get(pk=job.pk).status == Job.Status.RUNNING
    shard_complete(job_id=job.pk, index=2, items=3)
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith("1 of 3 shards failed; shard 1: RuntimeError: model failed to load")
    assert CALLS == []  # never finalized
    # When the job is retried, only the failed shard is queued again
    with django_capture_on_commit_callbacks() as callbacks:
        job_retry(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.RUNNING
    assert len(callbacks) == 1
    assert JobShard.objects.get(job=job, index=1).status == JobShard.Status.PENDING
    # And its completion finalizes the job once
    shard_complete(job_id=job.pk, index=1, items=1)
    job.refresh_from_db()
    assert (job.status, job.shards_done, job.items_done) == (Job.Status.SUCCEEDED, 3, 6)
    assert CALLS == [f"finalize {job.pk}"]


def test_a_job_without_work_succeeds_at_once(django_capture_on_commit_callbacks):
    """Finalize a job whose plan finds nothing to do."""
    job = Job.objects.create(kind="test_empty")
    with django_capture_on_commit_callbacks(execute=True):
        job_plan(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED


def test_failing_a_finished_job_does_nothing():
    """Keep a succeeded job succeeded if a late failure report arrives."""
    job = Job.objects.create(kind="test_empty", status=Job.Status.SUCCEEDED)
    job_fail(job_id=job.pk, error="late")
    assert Job.objects.get(pk=job.pk).status == Job.Status.SUCCEEDED
