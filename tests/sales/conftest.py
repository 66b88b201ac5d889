"""Fixtures of the sales tests: a sales person (customers are put into their book with tests.factories.assign)."""

from __future__ import annotations

import pytest

from tests.factories import UserFactory


@pytest.fixture
def sales_user():
    return UserFactory(username="sam", groups=["sales"])
