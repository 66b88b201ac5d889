"""Import-runs API: the list with its counts and the rejected-rows download (staff and managers)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

from tests.factories import ImportRunFactory, UserFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

IMPORT_RUNS_URL = reverse("api-import-run-list")


@pytest.fixture
def user():
    return UserFactory()


@pytest.fixture
def client(api_client, user):
    """An API client authenticated with the user's token."""
    token = Token.objects.create(user=user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return api_client


def rejected_rows_url(import_run_id: int) -> str:
    return reverse("api-import-run-rejected-rows", kwargs={"import_run_id": import_run_id})


# --------------------------------------------------------------------------- import runs


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "imports").mkdir()
    return tmp_path


@pytest.fixture
def run_with_rejects(media_root):
    (media_root / "imports" / "import-1-rejected.csv").write_text("row,reason\n7,missing_customer\n")
    return ImportRunFactory(rejected_rows_file="imports/import-1-rejected.csv", rows_rejected=1)


def test_import_runs_list_counts_and_hides_the_download_link_from_regular_users(client, run_with_rejects):
    """List runs with their counts; a regular user gets no rejected-rows link."""
    # when
    response = client.get(IMPORT_RUNS_URL)
    # then
    assert response.status_code == 200
    item = response.json()["results"][0]
    assert item["id"] == run_with_rejects.pk
    assert item["rows_rejected"] == 1
    assert item["rejected_by_reason"] == {"missing_customer": 5}
    assert item["rejected_rows_url"] is None


def test_import_runs_list_gives_managers_the_download_link(api_client, run_with_rejects):
    """Give managers an absolute rejected-rows link; runs without rejects get null."""
    # given
    ImportRunFactory(rejected_rows_file="")
    api_client.force_authenticate(UserFactory(groups=["manager"]))
    # when
    results = api_client.get(IMPORT_RUNS_URL).json()["results"]
    # then
    links = {r["id"]: r["rejected_rows_url"] for r in results}
    assert links[run_with_rejects.pk] == f"http://testserver{rejected_rows_url(run_with_rejects.pk)}"
    assert sorted(v is None for v in links.values()) == [False, True]


@pytest.mark.parametrize("kwargs", [{"is_staff": True, "is_superuser": True}, {"groups": ["manager"]}])
def test_admins_and_managers_download_rejected_rows_as_csv(api_client, run_with_rejects, kwargs):
    """Stream the rejected-rows CSV as an attachment to admins and managers."""
    # given
    api_client.force_authenticate(UserFactory(**kwargs))
    # when
    response = api_client.get(rejected_rows_url(run_with_rejects.pk))
    # then
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    assert b"".join(response.streaming_content) == b"row,reason\n7,missing_customer\n"


def test_regular_users_cannot_download_rejected_rows(client, run_with_rejects):
    """Answer 403 to users who are neither managers nor admins."""
    # when
    response = client.get(rejected_rows_url(run_with_rejects.pk))
    # then
    assert response.status_code == 403


@pytest.mark.parametrize("groups", [["reviewer"], ["sales"], []])
def test_the_staff_flag_grants_no_rejected_rows(api_client, run_with_rejects, groups):
    """Answer 403 (and show no link) to a staff user whose role may not read rejected rows."""
    # given a reviewer, a sales user and a user without a role, each with the admin's staff flag
    api_client.force_authenticate(UserFactory(is_staff=True, groups=groups))
    # when / then
    assert api_client.get(rejected_rows_url(run_with_rejects.pk)).status_code == 403
    links = [r["rejected_rows_url"] for r in api_client.get(IMPORT_RUNS_URL).json()["results"]]
    assert links and all(link is None for link in links)


def test_rejected_rows_download_is_404_without_a_file(api_client, media_root):
    """Answer 404 for an unknown run and for a run that rejected nothing."""
    # given
    api_client.force_authenticate(UserFactory(groups=["manager"]))
    clean = ImportRunFactory(rejected_rows_file="")
    # when / then
    assert api_client.get(rejected_rows_url(clean.pk)).status_code == 404
    assert api_client.get(rejected_rows_url(clean.pk + 1000)).status_code == 404
