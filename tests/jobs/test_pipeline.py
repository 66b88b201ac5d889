"""The pipeline is named once (jobs.pipeline): selections keep its order, and every step is a registered kind."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from jobs import pipeline, registry
from jobs.models import Job

SELECTIONS = {
    "EMBED": pipeline.EMBED,
    "EXPLAIN": pipeline.EXPLAIN,
    "NIGHTLY": pipeline.NIGHTLY,
    "DEMO": pipeline.DEMO,
    "DEMO_BACKGROUND": pipeline.DEMO_BACKGROUND,
    "ANALYSIS": pipeline.ANALYSIS,
}


def test_steps_returns_the_names_in_pipeline_order_whatever_order_they_are_given_in():
    # When a selection is asked for backwards
    chosen = pipeline.steps("explain", "recommend", "embed_products")
    # Then it comes back in STEPS order
    assert chosen == ("embed_products", "recommend", "explain")


def test_a_name_that_is_not_a_step_is_refused_by_name():
    with pytest.raises(ValueError, match="Not a pipeline step: embed_everything"):
        pipeline.steps("embed_products", "embed_everything")


@pytest.mark.parametrize("name", sorted(SELECTIONS))
def test_every_selection_follows_the_order_of_steps(name):
    selection = SELECTIONS[name]
    # Then each selection is a non-empty subsequence of STEPS, without repeats
    positions = [pipeline.STEPS.index(kind) for kind in selection]
    assert selection and positions == sorted(set(positions))


def test_every_step_is_a_registered_job_kind():
    # Given the kinds the apps register (the jobs app itself imports none of them)
    kinds = registry.all_kinds()
    # Then the pipeline names only real kinds
    assert [s for s in pipeline.STEPS if s not in kinds] == []


@pytest.mark.django_db
def test_the_embed_command_queues_the_embed_selection_then_recommend(django_capture_on_commit_callbacks):
    # When the command queues its chain (the plan message is not sent: callbacks are captured, not run)
    with django_capture_on_commit_callbacks(execute=False):
        call_command("embed", "--then-recommend")
    # Then its job runs pipeline.EMBED and then recommend, in pipeline order
    job = Job.objects.get()
    assert (job.kind, *job.then) == (*pipeline.EMBED, "recommend")


@pytest.mark.django_db
def test_the_explain_command_queues_the_explain_selection(django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        call_command("explain", "--ranks", "3")
    job = Job.objects.get()
    assert (job.kind, *job.then) == pipeline.EXPLAIN
    assert job.params["ranks"] == 3
