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
