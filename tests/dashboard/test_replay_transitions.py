"""The replay run's state machine: the whole (from, to) table, and the services that move it."""

from __future__ import annotations

import pytest
from django.utils import timezone

from dashboard.models import ReplayRun
from dashboard.services import replay
from tests import fsm_table

R = ReplayRun.Status
ALLOWED = {
    (R.RUNNING, R.SUCCEEDED): "succeed",
    (R.RUNNING, R.FAILED): "fail",
}


@pytest.mark.parametrize(("source", "target"), fsm_table.all_pairs(ReplayRun))
def test_every_pair_of_states_is_allowed_or_forbidden_as_the_table_says(source, target):
    fsm_table.check_pair(ReplayRun, ALLOWED, source, target)


@pytest.mark.parametrize("source", fsm_table.states(ReplayRun))
def test_forbidden_transitions_raise_and_leave_the_state(source):
    fsm_table.check_calls(ReplayRun, ALLOWED, source)


def test_the_table_names_only_real_states_and_every_transition():
    fsm_table.check_table_is_honest(ReplayRun, ALLOWED)


def test_the_status_cannot_be_assigned_directly():
    fsm_table.check_protected(ReplayRun, R.RUNNING, R.SUCCEEDED)


def _run(**fields) -> ReplayRun:
    return ReplayRun.objects.create(cutoff=timezone.now(), control_share=0.1, recommender="test", version="v", **fields)


@pytest.mark.django_db
def test_finishing_stamps_the_time_once_and_failing_a_finished_run_changes_nothing():
    run = _run()
    replay.replay_run_finish(run_id=run.pk)
    run.refresh_from_db()
    finished = run.finished_at
    assert run.status == R.SUCCEEDED and finished is not None
    replay.replay_run_finish(run_id=run.pk)
    replay.replay_run_fail(run_id=run.pk)
    run.refresh_from_db()
    assert (run.status, run.finished_at) == (R.SUCCEEDED, finished)


@pytest.mark.django_db
def test_a_running_replay_can_fail():
    run = _run()
    replay.replay_run_fail(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == R.FAILED and run.finished_at is not None
