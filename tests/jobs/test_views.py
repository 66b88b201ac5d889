"""The jobs page: managers read, admins start/retry (POST + CSRF), progress, errors and auto-refresh."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.models import AuditEvent
from jobs.models import Job, JobShard
from jobs.views import STARTABLE, startable_jobs
from tests.factories import UserFactory


@pytest.fixture
def manager(db):
    return UserFactory(username="jobs-manager", groups=["manager"])


@pytest.fixture
def admin(db):
    return UserFactory(username="jobs-admin", is_superuser=True, is_staff=True)


def _client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def _csrf(client: Client) -> str:
    client.get("/jobs/")
    return client.cookies["csrftoken"].value


@pytest.mark.parametrize(("groups", "status"), [(["sales"], 403), (["reviewer"], 403), (["manager"], 200)])
def test_managers_read_the_jobs_page(db, groups, status):
    assert _client(UserFactory(groups=groups)).get("/jobs/").status_code == status


def test_the_list_shows_progress_duration_and_the_first_error_line(manager):
    # Given
    started = timezone.now() - timezone.timedelta(seconds=95)
    Job.objects.create(kind="recommend", status=Job.Status.RUNNING, shards_total=4, shards_done=1, started_at=started)
    Job.objects.create(
        kind="explain",
        status=Job.Status.FAILED,
        error="RuntimeError: model missing\nTraceback ...",
        started_at=started,
        finished_at=started + timezone.timedelta(seconds=42),
    )
    # When
    html = _client(manager).get("/jobs/").content.decode()
    # Then
    assert 'value="25"' in html and "1/4 shards" in html
    assert "1 min 35 s" in html or "1 min 36 s" in html
    assert "42 s" in html
    assert "RuntimeError: model missing" in html and "Traceback" not in html
    # A running job: the page refreshes itself (script, and meta refresh without script).
    assert "jobs/autorefresh.js" in html and 'http-equiv="refresh"' in html


def test_no_refresh_when_nothing_runs(manager):
    Job.objects.create(kind="recommend", status=Job.Status.SUCCEEDED)
    html = _client(manager).get("/jobs/").content.decode()
    assert "autorefresh.js" not in html


def test_managers_see_no_start_buttons_and_admins_do(manager, admin):
    assert "Start a job" not in _client(manager).get("/jobs/").content.decode()
    html = _client(admin).get("/jobs/").content.decode()
    assert "Start a job" in html
    for item in startable_jobs():
        assert f'value="{item.key}"' in html


def test_every_listed_button_names_registered_kinds():
    keys = {s.key for s in startable_jobs()}
    assert {"import", "embed", "recommend", "explain", "train_concepts", "calibrate", "train_elm", "replay"} <= keys
    assert keys <= {s.key for s in STARTABLE}


def test_an_admin_starts_a_job_with_a_post_and_it_is_audited(admin):
    client = _client(admin)
    token = _csrf(client)
    # When
    response = client.post("/jobs/start/", {"kind": "embed", "csrfmiddlewaretoken": token})
    # Then: a chain embed_products -> embed_customers, started by the admin
    job = Job.objects.get()
    assert (job.kind, job.then, job.created_by, job.params) == ("embed_products", ["embed_customers"], admin, {})
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    event = AuditEvent.objects.get(action="job.start")
    assert event.object_ref == str(job.pk) and event.detail["kind"] == "embed_products"


def test_force_is_passed_on(admin):
    client = _client(admin)
    client.post("/jobs/start/", {"kind": "replay", "force": "1", "csrfmiddlewaretoken": _csrf(client)})
    assert Job.objects.get().params == {"force": True}


def test_starting_needs_the_csrf_token(admin):
    response = _client(admin).post("/jobs/start/", {"kind": "recommend"})
    assert response.status_code == 403 and not Job.objects.exists()


def test_managers_cannot_start_jobs(manager):
    client = _client(manager)
    response = client.post("/jobs/start/", {"kind": "recommend", "csrfmiddlewaretoken": _csrf(client)})
    assert response.status_code == 403 and not Job.objects.exists()


def test_unknown_kinds_and_get_are_refused(admin):
    client = _client(admin)
    assert client.post("/jobs/start/", {"kind": "rm -rf", "csrfmiddlewaretoken": _csrf(client)}).status_code == 404
    assert client.get("/jobs/start/").status_code == 405
    assert not Job.objects.exists()


def test_the_detail_page_shows_the_failed_shards_first_with_their_errors(manager):
    job = Job.objects.create(kind="explain", status=Job.Status.FAILED, shards_total=3, shards_done=1, error="boom")
    JobShard.objects.create(job=job, index=0, status=JobShard.Status.DONE)
    JobShard.objects.create(job=job, index=1, status=JobShard.Status.PENDING)
    JobShard.objects.create(job=job, index=2, status=JobShard.Status.FAILED, attempts=4, error="ValueError: bad row 7")
    response = _client(manager).get(f"/jobs/{job.pk}/")
    html = response.content.decode()
    assert [s.index for s in response.context["shards"]] == [2, 1]
    assert "ValueError: bad row 7" in html and "boom" in html
    assert "Retry" not in html  # managers read only


def test_an_admin_retries_a_failed_job(admin):
    job = Job.objects.create(kind="recommend", status=Job.Status.FAILED, error="boom")
    client = _client(admin)
    response = client.post(f"/jobs/{job.pk}/retry/", {"csrfmiddlewaretoken": _csrf(client)})
    job.refresh_from_db()
    assert response.status_code == 302 and job.status == Job.Status.QUEUED and job.error == ""


def test_the_nightly_button_starts_the_chain_once(admin):
    client = _client(admin)
    token = _csrf(client)
    client.post("/jobs/nightly/", {"csrfmiddlewaretoken": token})
    client.post("/jobs/nightly/", {"csrfmiddlewaretoken": token})
    job = Job.objects.get()
    assert job.kind == "embed_products" and job.then == ["embed_customers", "recommend", "explain_numbers", "explain"]


def test_the_list_runs_a_fixed_number_of_queries(manager):
    client = _client(manager)
    Job.objects.create(kind="recommend", created_by=manager)
    client.get("/jobs/")
    with CaptureQueriesContext(connection) as few:
        client.get("/jobs/")
    for _ in range(20):
        Job.objects.create(kind="explain", created_by=manager, status=Job.Status.SUCCEEDED)
    with CaptureQueriesContext(connection) as many:
        client.get("/jobs/")
    assert len(many.captured_queries) == len(few.captured_queries) <= 12


def test_the_schedule_is_shown_in_words(admin):
    html = _client(admin).get("/jobs/").content.decode()
    assert "Nightly refresh: every day at 02:30 (Europe/London)." in html


def test_the_detail_page_runs_a_fixed_number_of_queries(manager):
    job = Job.objects.create(kind="explain", status=Job.Status.RUNNING, shards_total=60)
    client = _client(manager)
    JobShard.objects.create(job=job, index=0, error="x")
    client.get(f"/jobs/{job.pk}/")
    with CaptureQueriesContext(connection) as few:
        client.get(f"/jobs/{job.pk}/")
    JobShard.objects.bulk_create([JobShard(job=job, index=i, error="x") for i in range(1, 60)])
    with CaptureQueriesContext(connection) as many:
        client.get(f"/jobs/{job.pk}/")
    assert len(many.captured_queries) == len(few.captured_queries) <= 12


# --------------------------------------------------------------------------- interrupted jobs


def _interrupted(**fields) -> Job:
    return Job.objects.create(
        kind="recommend", status=Job.Status.INTERRUPTED, error="Interrupted: the demo was stopped.", **fields
    )


def test_an_interrupted_job_shows_why_with_resume_and_retry_for_admins_only(manager, admin):
    # given a job a stopped run left behind
    job = _interrupted()
    # when a manager and an admin open it
    as_manager = _client(manager).get(f"/jobs/{job.pk}/").content.decode()
    as_admin = _client(admin).get(f"/jobs/{job.pk}/").content.decode()
    # then both read the state and the reason, and the page does not refresh itself
    for html in (as_manager, as_admin):
        assert "job-status--interrupted" in html and "Interrupted: the demo was stopped." in html
        assert "autorefresh.js" not in html
    # and only the admin gets the two buttons
    assert f"/jobs/{job.pk}/resume/" in as_admin and f"/jobs/{job.pk}/restart/" in as_admin
    assert "/resume/" not in as_manager and "/restart/" not in as_manager


def test_a_failed_job_offers_retry_and_retry_from_the_start_but_not_resume(admin):
    job = Job.objects.create(kind="recommend", status=Job.Status.FAILED, error="boom")
    html = _client(admin).get(f"/jobs/{job.pk}/").content.decode()
    assert f"/jobs/{job.pk}/retry/" in html and f"/jobs/{job.pk}/restart/" in html
    assert "/resume/" not in html


@pytest.mark.parametrize(("action", "status"), [("resume", Job.Status.QUEUED), ("restart", Job.Status.QUEUED)])
def test_an_admin_resumes_or_restarts_an_interrupted_job_and_it_is_audited(admin, action, status):
    # given an interrupted job that never planned (so both actions queue its planning)
    job = _interrupted()
    client = _client(admin)
    # when the admin presses the button
    response = client.post(f"/jobs/{job.pk}/{action}/", {"csrfmiddlewaretoken": _csrf(client)})
    # then the job is queued again without the reason, and the action is audited
    job.refresh_from_db()
    assert response.status_code == 302 and (job.status, job.error) == (status, "")
    assert AuditEvent.objects.get(action=f"job.{action}").object_ref == str(job.pk)


def test_resuming_a_job_that_is_not_interrupted_is_refused_and_changes_nothing(admin):
    job = Job.objects.create(kind="recommend", status=Job.Status.FAILED, error="boom")
    client = _client(admin)
    response = client.post(f"/jobs/{job.pk}/resume/", {"csrfmiddlewaretoken": _csrf(client)}, follow=True)
    job.refresh_from_db()
    assert (job.status, job.error) == (Job.Status.FAILED, "boom")
    assert "Only an interrupted job can be resumed." in response.content.decode()
    assert not AuditEvent.objects.filter(action="job.resume").exists()


def test_the_list_filters_interrupted_jobs(manager):
    interrupted = _interrupted()
    Job.objects.create(kind="recommend", status=Job.Status.RUNNING)
    response = _client(manager).get("/jobs/?status=interrupted")
    assert [j.pk for j in response.context["jobs"]] == [interrupted.pk]
    assert '<option value="interrupted" selected>' in response.content.decode()
