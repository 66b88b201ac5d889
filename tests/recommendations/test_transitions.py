"""The batch, evaluation and segmentation state machines: the whole (from, to) table, and the services."""

from __future__ import annotations

import pytest

from explanations.services import segments
from recommendations.models import EvaluationRun, RecommendationBatch, SegmentRun
from recommendations.services import evaluation, recommend
from tests import fsm_table
from tests.factories import RecommendationBatchFactory

B = RecommendationBatch.Status
BATCH_ALLOWED = {
    (B.RUNNING, B.ACTIVE): "activate",
    (B.ACTIVE, B.SUPERSEDED): "supersede",
    (B.RUNNING, B.FAILED): "fail",
}
E = EvaluationRun.Status
EVALUATION_ALLOWED = {
    (E.RUNNING, E.SUCCEEDED): "succeed",
    (E.RUNNING, E.FAILED): "fail",
    (E.FAILED, E.RUNNING): "retry",
}
G = SegmentRun.Status
SEGMENT_ALLOWED = {
    (G.RUNNING, G.SUCCEEDED): "succeed",
    (G.RUNNING, G.FAILED): "fail",
}

MACHINES = [(RecommendationBatch, BATCH_ALLOWED), (EvaluationRun, EVALUATION_ALLOWED), (SegmentRun, SEGMENT_ALLOWED)]


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


@pytest.mark.parametrize("model", [RecommendationBatch, EvaluationRun, SegmentRun])
def test_the_status_cannot_be_assigned_directly(model):
    fsm_table.check_protected(model, "running", "failed")


# --------------------------------------------------------------------------- the services that move them


@pytest.mark.django_db
def test_activating_stamps_the_time_and_a_second_activation_changes_nothing():
    batch = RecommendationBatchFactory(status=B.RUNNING)
    recommend.recommendation_batch_activate(batch_id=batch.pk)
    batch.refresh_from_db()
    first = batch.activated_at
    assert batch.status == B.ACTIVE and first is not None
    recommend.recommendation_batch_activate(batch_id=batch.pk)
    batch.refresh_from_db()
    assert (batch.status, batch.activated_at) == (B.ACTIVE, first)


@pytest.mark.django_db
def test_a_failed_batch_cannot_be_activated():
    """Activation goes through the machine: a failed batch is refused, and the active one stays."""
    active = RecommendationBatchFactory(status=B.ACTIVE)
    failed = RecommendationBatchFactory(status=B.RUNNING)
    recommend.recommendation_batch_fail(batch_id=failed.pk)
    from django_fsm import TransitionNotAllowed

    with pytest.raises(TransitionNotAllowed):
        recommend.recommendation_batch_activate(batch_id=failed.pk)
    assert RecommendationBatch.objects.get(pk=active.pk).status == B.ACTIVE
    assert RecommendationBatch.objects.get(pk=failed.pk).status == B.FAILED


@pytest.mark.django_db
def test_failing_leaves_an_active_batch_active():
    active = RecommendationBatchFactory(status=B.ACTIVE)
    recommend.recommendation_batch_fail(batch_id=active.pk)
    assert RecommendationBatch.objects.get(pk=active.pk).status == B.ACTIVE


@pytest.mark.django_db
def test_a_failing_evaluation_is_recorded_then_reopened_by_its_jobs_retry(monkeypatch):
    # given a run whose data cannot be loaded
    run = evaluation.evaluation_run_start(source="db", reduced=True)

    def broken(*args, **kwargs):
        raise RuntimeError("no purchase lines")

    monkeypatch.setattr(evaluation, "_load", broken)
    # when it executes, the failure is recorded on the run and raised
    with pytest.raises(RuntimeError):
        evaluation.evaluation_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert (run.status, run.error) == (E.FAILED, "RuntimeError: no purchase lines")
    assert run.finished_at is not None and run.wall_seconds is not None
    # and the job's retry puts it back to running without the error
    evaluation.evaluation_run_reopen(run_id=run.pk)
    run.refresh_from_db()
    assert (run.status, run.error, run.finished_at) == (E.RUNNING, "", None)
    # and reopening a running run changes nothing
    evaluation.evaluation_run_reopen(run_id=run.pk)
    assert EvaluationRun.objects.get(pk=run.pk).status == E.RUNNING


@pytest.mark.django_db
def test_a_failing_segmentation_is_recorded_as_failed(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("vectors unavailable")

    monkeypatch.setattr(segments, "fetch_vectors", broken)
    with pytest.raises(RuntimeError):
        segments.segments_compute(use_elm=False)
    run = SegmentRun.objects.get()
    assert (run.status, run.error) == (G.FAILED, "RuntimeError: vectors unavailable")
    assert run.finished_at is not None
