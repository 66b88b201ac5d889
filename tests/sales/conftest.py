"""Fixtures of the sales tests: a sales person (customers are put into their book with tests.factories.assign)."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory


@pytest.fixture
def sales_user():
    return UserFactory(username="sam", groups=["sales"])


@pytest.fixture(autouse=True)
def _empty_card_cache():
    """Start every test with an empty card cache (it lives in the process, across tests)."""
    from django.conf import settings
    from django.core.cache import caches

    caches[settings.ELM_CARD_CACHE].clear()


@pytest.fixture
def manager():
    """A manager: reads every customer (sales people see only their book, tested with sign_in_as)."""
    return UserFactory(username="alice", groups=["manager"])


@pytest.fixture
def signed_in(client, manager):
    """The web client signed in as the manager."""
    client.force_login(manager)
    return client
