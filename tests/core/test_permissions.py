"""Role checks: each rule defined once in core.permissions."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from core.permissions import user_is_reviewer, user_is_sales_only
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("kwargs", "reviewer", "sales_only"),
    [
        ({}, False, False),
        ({"groups": ["sales"]}, False, True),
        ({"groups": ["reviewer"]}, True, False),
        ({"groups": ["manager"]}, True, False),
        ({"groups": ["sales", "reviewer"]}, True, False),
        ({"groups": ["sales", "manager"]}, True, False),
        ({"is_staff": True}, False, False),  # the staff flag is not a role
        ({"is_superuser": True}, True, False),
    ],
)
def test_reviewer_and_sales_only_roles(kwargs, reviewer, sales_only):
    """Reviewers, managers and admins read every reason; "sales only" is a sales person without those roles."""
    # given
    user = UserFactory(**kwargs)
    # when / then
    assert user_is_reviewer(user=user) is reviewer
    assert user_is_sales_only(user=user) is sales_only


def test_anonymous_users_hold_no_role():
    """An anonymous user is neither a reviewer nor a sales person."""
    assert user_is_reviewer(user=AnonymousUser()) is False
    assert user_is_sales_only(user=AnonymousUser()) is False
