"""API tokens are revocable: after DELETE /api/auth/token/ the old token no longer works."""

import pytest
from django.urls import reverse

from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_a_revoked_token_stops_working(api_client):
    # Given a token obtained with username and password
    UserFactory(username="tok", groups=["manager"])
    token = api_client.post(reverse("api-auth-token"), {"username": "tok", "password": TEST_PASSWORD}).json()["token"]
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.get(reverse("api-customer-list")).status_code == 200
    # When it is revoked
    assert api_client.delete(reverse("api-auth-token")).status_code == 204
    # Then requests with it are refused, and a new sign-in gives a different token
    assert api_client.get(reverse("api-customer-list")).status_code == 401
    api_client.credentials()
    new = api_client.post(reverse("api-auth-token"), {"username": "tok", "password": TEST_PASSWORD}).json()["token"]
    assert new != token


def test_a_deactivated_users_token_stops_working(api_client):
    user = UserFactory(username="leaver", groups=["sales"])
    token = api_client.post(reverse("api-auth-token"), {"username": "leaver", "password": TEST_PASSWORD}).json()
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token['token']}")
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert api_client.get(reverse("api-customer-list")).status_code == 401
