"""Jobs a stopped run left queued or running: marked interrupted, then resumed or run again from the start."""

from __future__ import annotations

import io
import time
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from jobs import registry
from jobs.heartbeat import heartbeat
from jobs.models import Job, JobShard
from jobs.progress import JobFailed, wait_for_pipeline
from jobs.services import (
    job_fail,
    job_plan,
    job_restart,
    job_resume,
    job_retry,
    jobs_interrupted_mark,
    nightly_refresh_start,
    shard_complete,
)
from jobs.tasks import interrupted_jobs_mark, run_shard

pytestmark = pytest.mark.django_db

RAN: list[tuple[int, int]] = []

registry.register(
    registry.JobKind(
        name="test_four_shards",
        label="Test",
        plan=lambda job: [{"ids": [i], "index": i} for i in range(4)],
        run_shard=lambda job, payload: RAN.append((job.pk, payload["index"])) or 1,
    )
)

J, S = Job.Status, JobShard.Status


def running_job(*, done: int = 0) -> Job:
    """A planned job of four shards, the first ``done`` of them finished."""
    job = job_plan(job_id=Job.objects.create(kind="test_four_shards").pk)
    for index in range(done):
        shard_complete(job_id=job.pk, index=index, items=1)
    job.refresh_from_db()
    return job


def statuses(job: Job) -> list[str]:
    return list(job.shards.order_by("index").values_list("status", flat=True))


def age(job: Job, **delta) -> None:
    """Make the job's last sign of life ``delta`` old."""
    then = timezone.now() - timedelta(**delta)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=then, created_at=then, started_at=then)


# --------------------------------------------------------------------------- marking


def test_every_queued_and_running_job_and_its_pending_shards_are_marked():
    """The demo's rule (no worker runs): queued and running jobs move, finished ones and done shards stay."""
    # given a queued job, a running one with one shard done, a succeeded and a failed job
    queued = Job.objects.create(kind="test_four_shards")
    running = running_job(done=1)
    succeeded = Job.objects.create(kind="test_four_shards", status=J.SUCCEEDED)
    failed = Job.objects.create(kind="test_four_shards", status=J.FAILED, error="boom")
    # when the stopped run's jobs are marked
    ids = jobs_interrupted_mark(reason="Interrupted: the demo was stopped.")
    # then the queued and the running one are interrupted, with the reason
    assert ids == [queued.pk, running.pk]
    for job in (queued, running):
        job.refresh_from_db()
        assert (job.status, job.error) == (J.INTERRUPTED, "Interrupted: the demo was stopped.")
        assert job.finished_at is not None
    # and the running job's pending shards too, its done shard kept
    assert statuses(running) == [S.DONE, S.INTERRUPTED, S.INTERRUPTED, S.INTERRUPTED]
    # and nothing else changed
    assert Job.objects.get(pk=succeeded.pk).status == J.SUCCEEDED
    assert Job.objects.get(pk=failed.pk).error == "boom"


def test_the_stale_rule_takes_only_jobs_without_a_recent_heartbeat():
    """A live worker's job (fresh heartbeat) is never taken, however old the job is."""
    # given two running jobs created two days ago, one of them beating a minute ago
    alive, dead = running_job(), running_job()
    age(alive, days=2)
    age(dead, days=2)
    Job.objects.filter(pk=alive.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=1))
    # when jobs silent for a day are marked
    ids = jobs_interrupted_mark(reason="stale", stale_after=timedelta(hours=24))
    # then only the silent one is interrupted, and its duration ends at its last heartbeat
    assert ids == [dead.pk]
    dead.refresh_from_db()
    assert dead.finished_at < timezone.now() - timedelta(days=1)
    assert Job.objects.get(pk=alive.pk).status == J.RUNNING


def test_a_worker_starting_marks_only_stale_jobs(settings, monkeypatch):
    settings.ELM_JOB_STALE_AFTER_HOURS = 1
    # (the handler closes the worker's connections afterwards; here that is the test's own)
    monkeypatch.setattr("jobs.tasks.connections.close_all", lambda: None)
    fresh, stale = running_job(), running_job()
    age(stale, hours=2)
    interrupted_jobs_mark()
    assert Job.objects.get(pk=fresh.pk).status == J.RUNNING
    assert Job.objects.get(pk=stale.pk).status == J.INTERRUPTED


def test_a_late_message_of_an_interrupted_job_runs_nothing_and_counts_nothing(monkeypatch):
    """A redelivered shard message of the stopped run is skipped; a late completion is not counted."""
    # (the task body runs here, inside the test's transaction: keep its connection)
    monkeypatch.setattr("jobs.tasks.close_old_connections", lambda: None)
    # given an interrupted job
    job = running_job(done=1)
    jobs_interrupted_mark(reason="stopped")
    RAN.clear()
    # when a stale shard message is delivered, and a completion from the stopped run arrives
    run_shard(job.pk, 2)
    counted = shard_complete(job_id=job.pk, index=3, items=1)
    # then nothing ran, nothing was counted and the job is still interrupted
    assert RAN == [] and not counted
    job.refresh_from_db()
    assert (job.status, job.shards_done) == (J.INTERRUPTED, 1)


def test_a_late_failure_report_leaves_an_interrupted_job_interrupted():
    job = running_job()
    jobs_interrupted_mark(reason="stopped")
    job_fail(job_id=job.pk, error="late")
    job.refresh_from_db()
    assert (job.status, job.error) == (J.INTERRUPTED, "stopped")


# --------------------------------------------------------------------------- resume, restart


def test_resume_queues_only_the_unfinished_shards_and_the_job_finishes_once(django_capture_on_commit_callbacks):
    # given an interrupted job with two of four shards done
    job = running_job(done=2)
    jobs_interrupted_mark(reason="stopped")
    # when it is resumed
    with django_capture_on_commit_callbacks() as callbacks:
        job_resume(job_id=job.pk)
    # then it runs again with the two unfinished shards queued, the done ones kept
    job.refresh_from_db()
    assert (job.status, job.error, job.finished_at) == (J.RUNNING, "", None)
    assert len(callbacks) == 2
    assert statuses(job) == [S.DONE, S.DONE, S.PENDING, S.PENDING]
    # and when they complete the job succeeds with every shard counted once
    shard_complete(job_id=job.pk, index=2, items=1)
    shard_complete(job_id=job.pk, index=3, items=1)
    job.refresh_from_db()
    assert (job.status, job.shards_done, job.items_done) == (J.SUCCEEDED, 4, 4)


def test_resume_plans_a_job_that_was_interrupted_before_planning(django_capture_on_commit_callbacks):
    job = Job.objects.create(kind="test_four_shards")
    jobs_interrupted_mark(reason="stopped")
    with django_capture_on_commit_callbacks() as callbacks:
        job_resume(job_id=job.pk)
    assert Job.objects.get(pk=job.pk).status == J.QUEUED and len(callbacks) == 1
    job = job_plan(job_id=job.pk)
    assert (job.status, job.shards_total) == (J.RUNNING, 4)


@pytest.mark.parametrize("service", [job_resume, job_restart])
def test_resume_and_restart_leave_running_and_succeeded_jobs_alone(service):
    running = running_job()
    done = Job.objects.create(kind="test_four_shards", status=J.SUCCEEDED)
    for job in (running, done):
        service(job_id=job.pk)
    assert Job.objects.get(pk=running.pk).status == J.RUNNING
    assert Job.objects.get(pk=done.pk).status == J.SUCCEEDED


def test_retry_does_not_take_an_interrupted_job():
    """Retry is for failed jobs; an interrupted one is resumed (the two buttons never mix)."""
    job = running_job()
    jobs_interrupted_mark(reason="stopped")
    job_retry(job_id=job.pk)
    assert Job.objects.get(pk=job.pk).status == J.INTERRUPTED


@pytest.mark.parametrize("how", ["interrupted", "failed"])
def test_restart_plans_again_and_redoes_every_shard(django_capture_on_commit_callbacks, how):
    # given an interrupted (or failed) job with two of four shards done
    job = running_job(done=2)
    if how == "interrupted":
        jobs_interrupted_mark(reason="stopped")
    else:
        job_fail(job_id=job.pk, error="boom")
    # when it runs again from the start
    with django_capture_on_commit_callbacks() as callbacks:
        job_restart(job_id=job.pk)
    # then it is queued for planning with no shards and no counts
    job.refresh_from_db()
    assert (job.status, job.shards_total, job.shards_done, job.items_done, job.error) == (J.QUEUED, 0, 0, 0, "")
    assert not job.shards.exists() and len(callbacks) == 1
    # and planning queues all four shards again
    job = job_plan(job_id=job.pk)
    assert statuses(job) == [S.PENDING] * 4


def test_planning_again_keeps_the_jobs_own_run_but_forgets_one_it_reused():
    """A restarted job refills the run it started; a reused one (another job's finished run) is never refilled."""
    # given two interrupted jobs: one that started its own batch, one that reused the active batch
    own = Job.objects.create(kind="test_four_shards", result={"batch_id": 7})
    reused = Job.objects.create(kind="test_four_shards", result={"batch_id": 3, "reused": True})
    jobs_interrupted_mark(reason="stopped")
    # when both run again from the start
    job_restart(job_id=own.pk)
    job_restart(job_id=reused.pk)
    # then the planner finds its own batch, and nothing of the reused one
    assert Job.objects.get(pk=own.pk).result == {"batch_id": 7}
    assert Job.objects.get(pk=reused.pk).result == {}


# --------------------------------------------------------------------------- heartbeat, nightly, progress


def test_a_threshold_set_too_low_still_spares_a_job_that_beat_a_minute_ago(settings, monkeypatch):
    """ELM_JOB_STALE_AFTER_HOURS is floored at three heartbeats, so a misconfiguration cannot take live jobs."""
    settings.ELM_JOB_STALE_AFTER_HOURS = 0
    monkeypatch.setattr("jobs.tasks.connections.close_all", lambda: None)
    job = running_job()
    age(job, hours=1)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=1))
    interrupted_jobs_mark()
    assert Job.objects.get(pk=job.pk).status == J.RUNNING


def test_a_job_with_a_heartbeat_blocks_the_night_however_old_it_is():
    """The nightly rule is the heartbeat rule: an old job that still beats is alive and blocks the chain."""
    job = Job.objects.create(kind="explain", status=J.RUNNING)
    age(job, hours=30)
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now())
    assert nightly_refresh_start() is None
    # a silent one is marked interrupted and does not block
    age(job, hours=30)
    assert nightly_refresh_start() is not None
    assert Job.objects.get(pk=job.pk).status == J.INTERRUPTED


@pytest.mark.django_db(transaction=True)
def test_the_heartbeat_thread_beats_while_the_block_runs_and_stops_after():
    # given a running job that last beat an hour ago
    job = running_job()
    age(job, hours=1)
    # when a block runs under a heartbeat of 50 ms for 0.3 s
    with heartbeat(job.pk, every=0.05):
        time.sleep(0.3)
        job.refresh_from_db()
        during = job.heartbeat_at
    # then the heartbeat is fresh, and it no longer moves once the block is over
    assert timezone.now() - during < timedelta(seconds=1)
    time.sleep(0.2)
    job.refresh_from_db()
    stopped = job.heartbeat_at
    time.sleep(0.2)
    job.refresh_from_db()
    assert job.heartbeat_at == stopped


def test_following_a_pipeline_stops_at_an_interrupted_job():
    job = running_job()
    jobs_interrupted_mark(reason="Interrupted: stopped")
    with pytest.raises(JobFailed, match="interrupted: Interrupted: stopped"):
        wait_for_pipeline(job, poll=0.01, timeout=5, stream=io.StringIO())


# --------------------------------------------------------------------------- the operator's command


def _recover(*args) -> str:
    out = io.StringIO()
    call_command("jobs_recover", *args, stdout=out)
    return out.getvalue()


def test_the_command_takes_stale_jobs_by_default_and_every_job_with_all():
    fresh, stale = running_job(), running_job()
    age(stale, days=2)
    assert f"job #{stale.pk}" in _recover() and f"job #{fresh.pk}" not in _recover()
    assert Job.objects.get(pk=fresh.pk).status == J.RUNNING
    assert f"job #{fresh.pk}" in _recover("--all")
    assert Job.objects.get(pk=fresh.pk).status == J.INTERRUPTED


def test_the_command_resumes_what_it_marked():
    job = running_job(done=3)
    output = _recover("--all", "--resume")
    assert "resumed: running" in output
    job.refresh_from_db()
    assert job.status == J.RUNNING and statuses(job) == [S.DONE, S.DONE, S.DONE, S.PENDING]


def test_the_command_refuses_a_threshold_a_live_worker_could_miss():
    job = running_job()
    with pytest.raises(CommandError, match="three heartbeats"):
        _recover("--stale-after-minutes", "1")
    assert Job.objects.get(pk=job.pk).status == J.RUNNING


def test_after_a_run_killed_mid_way_the_next_start_leaves_nothing_running(django_capture_on_commit_callbacks):
    """What the demo does at start (``jobs_recover --all``): no job stays queued or running, none is lost.

    A run killed mid-way (its workers gone with SIGKILL, nothing could record it) leaves a job running
    with shards pending, the next job of its chain queued, and one that never started; afterwards
    every one of them is interrupted and offered for resume, and the resume finishes the unfinished shards.
    """
    # given: the database as a killed run leaves it
    running = running_job(done=2)
    queued_next = Job.objects.create(kind="test_four_shards")
    never_planned = Job.objects.create(kind="test_four_shards")
    # when the next run starts
    out = io.StringIO()
    call_command("jobs_recover", "--all", stdout=out)
    # then nothing stays queued or running, and every job is listed for resume or retry
    assert not Job.objects.filter(status__in=Job.ACTIVE).exists()
    assert not JobShard.objects.filter(status=S.PENDING).exists()
    for job in (running, queued_next, never_planned):
        assert f"job #{job.pk} test_four_shards: interrupted" in out.getvalue()
    # and a resume queues only the two shards the killed run had not finished
    with django_capture_on_commit_callbacks() as callbacks:
        job_resume(job_id=running.pk)
    assert len(callbacks) == 2
    assert statuses(running) == [S.DONE, S.DONE, S.PENDING, S.PENDING]
