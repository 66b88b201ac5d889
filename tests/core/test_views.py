"""Sign-in, sign-out, the home redirect and the health check (core views)."""

from __future__ import annotations

import pytest
from django.db import DatabaseError
from django.urls import reverse

from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

LIST_URL = reverse("customer-list")


@pytest.fixture
def user():
    return UserFactory(username="alice", groups=["manager"])


def test_home_redirects_to_the_customer_list(client):
    """Send / to the customer list."""
    # when
    response = client.get("/")
    # then
    assert response.status_code == 302
    assert response["Location"] == LIST_URL


def test_sign_in_page_labels_every_field(client):
    """Render the sign-in form with a label for the username and the password."""
    # when
    response = client.get(reverse("login"))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert '<label for="id_username">' in html
    assert '<label for="id_password">' in html
    assert '<label for="language-select"' in html
    assert 'action="/i18n/setlang/"' in html


def test_sign_in_then_sign_out(client, user):
    """Sign in with the password, land on the customer list, then sign out with POST."""
    # when
    signed_in = client.post(reverse("login"), {"username": user.username, "password": TEST_PASSWORD})
    # then
    assert signed_in.status_code == 302
    assert signed_in["Location"] == LIST_URL
    assert client.get(LIST_URL).status_code == 200
    # when
    signed_out = client.post(reverse("logout"))
    # then
    assert signed_out.status_code == 302
    assert signed_out["Location"] == reverse("login")
    assert client.get(LIST_URL).status_code == 302


def test_sign_in_with_a_wrong_password_shows_an_error(client, user):
    """Re-render the form with an error instead of signing in."""
    # when
    response = client.post(reverse("login"), {"username": user.username, "password": "not-the-password"})
    # then
    assert response.status_code == 200
    assert 'role="alert"' in response.content.decode()
    assert "_auth_user_id" not in client.session


# --------------------------------------------------------------------------- health check


def test_healthz_reports_a_reachable_database(client):
    """Answer 200 with database "ok" without signing in."""
    # when
    response = client.get("/healthz")
    # then
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_an_unreachable_database_with_503(client, monkeypatch):
    """Answer 503 when the database query fails."""

    # given
    def broken_cursor(*args, **kwargs):
        raise DatabaseError("connection refused")

    monkeypatch.setattr("core.views.connection.cursor", broken_cursor)
    # when
    response = client.get("/healthz")
    # then
    assert response.status_code == 503
    assert response.json() == {"status": "error", "database": "unavailable"}
