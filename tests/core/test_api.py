"""API-wide: token authentication (obtain, use, revoke, throttle) and the OpenAPI schema."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse
from drf_spectacular.validation import validate_schema
from rest_framework.authtoken.models import Token
from rest_framework.throttling import ScopedRateThrottle

from tests.factories import TEST_PASSWORD, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

CUSTOMERS_URL = reverse("api-customer-list")
TOKEN_URL = reverse("api-auth-token")
IMPORT_RUNS_URL = reverse("api-import-run-list")


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    # Throttle history lives in the cache; tests must not see each other's requests.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def user():
    return UserFactory()


@pytest.fixture
def client(api_client, user):
    """An API client authenticated with the user's token."""
    token = Token.objects.create(user=user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return api_client


# --------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(
    "url",
    [
        CUSTOMERS_URL,
        "/api/customers/0000000000000001/",
        "/api/customers/0000000000000001/recommendations/",
        IMPORT_RUNS_URL,
        "/api/import-runs/1/rejected-rows/",
    ],
)
def test_endpoints_require_authentication(api_client, url):
    """Answer 401 with a Token challenge to requests without credentials."""
    # when
    response = api_client.get(url)
    # then
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Token"


def test_an_invalid_token_is_rejected(api_client):
    """Answer 401 to a token that does not exist."""
    # given
    api_client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    # when
    response = api_client.get(CUSTOMERS_URL)
    # then
    assert response.status_code == 401


def test_obtain_token_with_username_and_password_then_use_it(api_client, user):
    """Return a token for valid credentials that then authenticates API requests."""
    # when
    response = api_client.post(TOKEN_URL, {"username": user.username, "password": TEST_PASSWORD}, format="json")
    # then
    assert response.status_code == 200
    token = response.json()["token"]
    assert Token.objects.get(user=user).key == token
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert api_client.get(CUSTOMERS_URL).status_code == 200


def test_obtain_token_with_a_wrong_password_is_rejected(api_client, user):
    """Answer 400 and create no token for a wrong password."""
    # when
    response = api_client.post(TOKEN_URL, {"username": user.username, "password": "wrong-password"}, format="json")
    # then
    assert response.status_code == 400
    assert "non_field_errors" in response.json()
    assert not Token.objects.filter(user=user).exists()


def test_revoke_token_deletes_it_and_it_stops_working(client, user):
    """Delete the caller's token on DELETE; the same token is refused afterwards."""
    # when
    response = client.delete(TOKEN_URL)
    # then
    assert response.status_code == 204
    assert not Token.objects.filter(user=user).exists()
    assert client.get(CUSTOMERS_URL).status_code == 401


def test_revoke_token_requires_authentication(api_client, user):
    """Answer 401 to an anonymous DELETE and leave other users' tokens alone."""
    # given
    Token.objects.create(user=user)
    # when
    response = api_client.delete(TOKEN_URL)
    # then
    assert response.status_code == 401
    assert Token.objects.filter(user=user).exists()


def test_token_endpoint_is_throttled_with_the_auth_scope(api_client, user, monkeypatch):
    """Answer 429 once a client exceeds the "auth" rate."""
    # given: a tiny rate for the auth scope (the class reads its rates at import time)
    monkeypatch.setattr(ScopedRateThrottle, "THROTTLE_RATES", {"auth": "2/min"})
    body = {"username": user.username, "password": "wrong-password"}
    # when
    statuses = [api_client.post(TOKEN_URL, body, format="json").status_code for _ in range(3)]
    # then
    assert statuses == [400, 400, 429]


# --------------------------------------------------------------------------- schema


def test_schema_endpoint_returns_a_valid_openapi_document(api_client):
    """Serve an OpenAPI 3 document that validates and documents every endpoint."""
    # when
    response = api_client.get("/api/schema/", {"format": "json"})
    # then
    assert response.status_code == 200
    schema = response.json()
    validate_schema(schema)  # raises on an invalid document
    for path in (
        "/api/auth/token/",
        "/api/customers/",
        "/api/customers/{pseudonym}/",
        "/api/customers/{pseudonym}/recommendations/",
        "/api/import-runs/",
        "/api/import-runs/{import_run_id}/rejected-rows/",
    ):
        assert path in schema["paths"], path
    assert set(schema["paths"]["/api/auth/token/"]) == {"post", "delete"}
    params = {p["name"] for p in schema["paths"]["/api/customers/"]["get"]["parameters"]}
    assert params == {"limit", "offset", "region", "pseudonym", "ordering"}
