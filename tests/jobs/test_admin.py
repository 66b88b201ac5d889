"""The jobs admin: retrying failed jobs changes them, so it needs the change permission, not just admin access."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from core.demo_users import demo_users_ensure
from jobs.models import Job, JobShard
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def _failed_job() -> Job:
    job = Job.objects.create(kind="recommend", status=Job.Status.FAILED, error="boom", shards_total=1)
    JobShard.objects.create(job=job, index=0, size=1, status=JobShard.Status.FAILED, error="boom")
    return job


def _retry(user, job: Job, django_capture_on_commit_callbacks):
    client = Client()
    client.force_login(user)
    url = reverse("admin:jobs_job_changelist")
    with django_capture_on_commit_callbacks():
        response = client.post(url, {"action": "retry_failed", "_selected_action": [job.pk]}, follow=True)
    job.refresh_from_db()
    return client, response


def test_a_view_only_manager_made_as_the_demo_makes_them_cannot_retry(django_capture_on_commit_callbacks):
    """The demo's manager (staff, view_job only) sees the jobs but the retry action is not theirs to run."""
    # Given the demo's manager and a failed job
    demo_users_ensure()
    manager = get_user_model().objects.get(username="manager")
    assert manager.is_staff and manager.has_perm("jobs.view_job") and not manager.has_perm("jobs.change_job")
    job = _failed_job()
    # When they post the retry action
    client, response = _retry(manager, job, django_capture_on_commit_callbacks)
    # Then the list is theirs to read, without the action, and the job stays failed
    assert response.status_code == 200
    assert job.status == Job.Status.FAILED
    page = client.get(reverse("admin:jobs_job_changelist"))
    assert page.status_code == 200 and b"retry_failed" not in page.content


def test_an_admin_retries_a_failed_job(django_capture_on_commit_callbacks):
    """A superuser (who holds change_job) retries it."""
    job = _failed_job()
    _retry(UserFactory(is_staff=True, is_superuser=True), job, django_capture_on_commit_callbacks)
    assert job.status == Job.Status.RUNNING
