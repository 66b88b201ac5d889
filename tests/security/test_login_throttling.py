"""django-axes: repeated failed sign-ins lock the username out from that address (site, admin and API)."""

import pytest
from django.conf import settings
from django.urls import reverse

from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db

WRONG = "not-the-password-at-all"


@pytest.fixture
def user():
    return UserFactory(username="victim", is_staff=True, is_superuser=True)


def _sign_in(client, url, password, ip="10.0.0.1"):
    return client.post(url, {"username": "victim", "password": password}, REMOTE_ADDR=ip)


@pytest.mark.parametrize("url_name", ["login", "admin:login"])
def test_repeated_failures_lock_the_account_out(client, user, url_name):
    """Lock out after AXES_FAILURE_LIMIT failures: then even the right password is refused with 429."""
    url = reverse(url_name)
    limit = settings.AXES_FAILURE_LIMIT
    assert 3 <= limit <= 10  # a real limit, not switched off
    # Given limit - 1 failed attempts, each answered with the form again
    for _ in range(limit - 1):
        assert _sign_in(client, url, WRONG).status_code == 200
    # When the limit is reached
    locked = _sign_in(client, url, WRONG)
    # Then the address is locked out for this username, even with the right password
    assert locked.status_code == 429
    assert b"Too many failed sign-in attempts" in locked.content
    assert _sign_in(client, url, TEST_PASSWORD).status_code == 429
    assert "_auth_user_id" not in client.session
    # But the same user from another address still signs in (no lock-out of a user from everywhere)
    assert _sign_in(client, url, TEST_PASSWORD, ip="10.0.0.2").status_code == 302


def test_a_successful_sign_in_resets_the_count(client, user):
    """Forget earlier failures after a successful sign-in."""
    url = reverse("login")
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, url, WRONG)
    assert _sign_in(client, url, TEST_PASSWORD).status_code == 302
    client.logout()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, url, WRONG).status_code == 200


def test_the_api_token_endpoint_is_locked_out_too(api_client, user):
    """Refuse a token for the right password once the username is locked out from that address."""
    url = reverse("api-auth-token")
    for _ in range(settings.AXES_FAILURE_LIMIT):
        api_client.post(url, {"username": "victim", "password": WRONG}, REMOTE_ADDR="10.0.0.3")
    response = api_client.post(url, {"username": "victim", "password": TEST_PASSWORD}, REMOTE_ADDR="10.0.0.3")
    assert response.status_code in (400, 429)
    assert "token" not in response.content.decode()
