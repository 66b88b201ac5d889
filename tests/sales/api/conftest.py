"""Fixtures of the sales API tests: a token-authenticated client, and a throttle history cleared per test."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from rest_framework.authtoken.models import Token

from tests.factories import UserFactory


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
