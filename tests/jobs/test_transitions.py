"""The job and shard state machines: every (from, to) pair is allowed or forbidden as the table says."""

from __future__ import annotations

import pytest

from jobs.models import Job, JobShard
from tests import fsm_table

J = Job.Status
JOB_ALLOWED = {
    (J.QUEUED, J.RUNNING): "start",
    (J.RUNNING, J.SUCCEEDED): "succeed",
    (J.QUEUED, J.FAILED): "fail",
    (J.RUNNING, J.FAILED): "fail",
    (J.QUEUED, J.INTERRUPTED): "interrupt",
    (J.RUNNING, J.INTERRUPTED): "interrupt",
    (J.FAILED, J.RUNNING): "resume",
    (J.INTERRUPTED, J.RUNNING): "resume",
    (J.FAILED, J.QUEUED): "requeue",
    (J.INTERRUPTED, J.QUEUED): "requeue",
}

S = JobShard.Status
SHARD_ALLOWED = {
    (S.PENDING, S.DONE): "complete",
    (S.PENDING, S.FAILED): "fail",
    (S.PENDING, S.INTERRUPTED): "interrupt",
    (S.FAILED, S.PENDING): "requeue",
    (S.INTERRUPTED, S.PENDING): "requeue",
}

MACHINES = [(Job, JOB_ALLOWED), (JobShard, SHARD_ALLOWED)]


@pytest.mark.parametrize(
    ("model", "allowed", "source", "target"),
    [(model, allowed, *pair) for model, allowed in MACHINES for pair in fsm_table.all_pairs(model)],
)
def test_every_pair_of_states_is_allowed_or_forbidden_as_the_table_says(model, allowed, source, target):
    fsm_table.check_pair(model, allowed, source, target)


@pytest.mark.parametrize(
    ("model", "allowed", "source"),
    [(model, allowed, state) for model, allowed in MACHINES for state in fsm_table.states(model)],
)
def test_forbidden_transitions_raise_and_leave_the_state(model, allowed, source):
    fsm_table.check_calls(model, allowed, source)


@pytest.mark.parametrize(("model", "allowed"), MACHINES)
def test_the_tables_name_only_real_states_and_every_transition(model, allowed):
    fsm_table.check_table_is_honest(model, allowed)


@pytest.mark.parametrize(("model", "state", "other"), [(Job, J.RUNNING, J.SUCCEEDED), (JobShard, S.PENDING, S.DONE)])
def test_the_status_cannot_be_assigned_directly(model, state, other):
    fsm_table.check_protected(model, state, other)


def test_succeeded_is_final_and_interrupted_is_not():
    """Nothing leaves succeeded; an interrupted job can only be resumed or planned again."""
    assert fsm_table.moves_from(Job, J.SUCCEEDED) == set()
    assert fsm_table.moves_from(Job, J.INTERRUPTED) == {(J.RUNNING, "resume"), (J.QUEUED, "requeue")}


def test_the_transitions_keep_the_timestamps_in_step():
    """start stamps started_at; fail and interrupt stamp finished_at and keep the message; resume clears both."""
    job = Job(status=J.QUEUED)
    job.start()
    assert job.started_at is not None and job.finished_at is None
    job.interrupt(reason="stopped")
    assert (job.error, job.finished_at is not None) == ("stopped", True)
    job.resume()
    assert (job.error, job.finished_at) == ("", None)
    job.fail(error="boom")
    assert (job.status, job.error, job.finished_at is not None) == (J.FAILED, "boom", True)


@pytest.mark.django_db
def test_shards_move_set_wise_only_from_the_transitions_sources():
    """The queryset transition moves exactly the shards whose state the transition accepts."""
    # given a job with a shard in every state
    job = Job.objects.create(kind="test", status=J.RUNNING)
    for i, state in enumerate(fsm_table.states(JobShard)):
        JobShard.objects.create(job=job, index=i, status=state)
    # when every shard is asked to requeue
    moved = job.shards.transition("requeue")
    # then the failed and the interrupted shards are pending again; done and pending are untouched
    assert moved == 2
    assert sorted(job.shards.values_list("status", flat=True)) == sorted([S.PENDING, S.DONE, S.PENDING, S.PENDING])
