"""Account selectors: the scoping hook every customer read starts from."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from accounts import selectors
from tests.factories import CustomerFactory, UserFactory

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("every_user_holds_every_customer"),  # who sees which book: tests/accounts/test_scoping.py
]


@pytest.fixture
def user():
    return UserFactory()


def test_customer_queryset_for_returns_every_customer_to_an_authenticated_user(user):
    """Return all customers to a signed-in user (no account scoping yet)."""
    # given
    CustomerFactory.create_batch(3)
    # when
    qs = selectors.customer_queryset_for(user)
    # then
    assert qs.count() == 3


def test_customer_queryset_for_returns_nothing_to_an_anonymous_user():
    """Return no customers to an anonymous user."""
    # given
    CustomerFactory()
    # when
    qs = selectors.customer_queryset_for(AnonymousUser())
    # then
    assert qs.count() == 0
