"""The nightly refresh: a beat schedule row editable in the admin, and an idempotent chain start."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from jobs import pipeline
from jobs.models import Job
from jobs.tasks import nightly_refresh

pytestmark = pytest.mark.django_db


def test_the_migration_creates_an_enabled_nightly_schedule_that_runs_the_pipelines_chain():
    task = PeriodicTask.objects.get(task="jobs.nightly_refresh")
    assert task.enabled
    assert (task.crontab.minute, task.crontab.hour, str(task.crontab.timezone)) == ("30", "2", "Europe/London")
    # No chain of its own: the task falls back to jobs.pipeline.NIGHTLY, the one definition of the steps.
    assert "chain" not in json.loads(task.kwargs)


def test_beat_reads_the_schedule_from_the_database(settings):
    assert settings.CELERY_BEAT_SCHEDULER == "django_celery_beat.schedulers:DatabaseScheduler"
    from elmsite.celery import app

    app.loader.import_default_modules()
    assert "jobs.nightly_refresh" in app.tasks


def test_the_task_starts_the_nightly_chain_and_skips_while_it_runs():
    # Given the schedule's own kwargs (none)
    kwargs = json.loads(PeriodicTask.objects.get(task="jobs.nightly_refresh").kwargs)
    # When beat fires twice
    first = nightly_refresh(**kwargs)
    second = nightly_refresh(**kwargs)
    # Then the first start runs the pipeline's nightly selection, and the second waits for it
    job = Job.objects.get(pk=first)
    assert [job.kind, *job.then] == list(pipeline.NIGHTLY)
    assert job.params == {"nightly": True}
    assert second is None and Job.objects.count() == 1


def test_a_finished_chain_or_a_stale_job_does_not_block_the_next_night():
    Job.objects.create(kind="recommend", status=Job.Status.SUCCEEDED)
    stale = Job.objects.create(kind="explain", status=Job.Status.RUNNING)
    Job.objects.filter(pk=stale.pk).update(created_at=timezone.now() - dt.timedelta(hours=30))
    assert nightly_refresh() is not None


def test_a_running_job_of_another_kind_does_not_block():
    Job.objects.create(kind="train_elm", status=Job.Status.RUNNING)
    assert nightly_refresh() is not None


def test_the_schedule_kwargs_can_change_the_chain():
    job = Job.objects.get(pk=nightly_refresh(chain=["recommend", "explain"], params={"ranks": 3}))
    assert (job.kind, job.then, job.params) == ("recommend", ["explain"], {"ranks": 3, "nightly": True})
