"""Authentication reads the user's roles with the user: one query for both, the same roles as before."""

from __future__ import annotations

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIRequestFactory

from core.backends import RoleLoadingModelBackend, RoleLoadingTokenAuthentication
from core.permissions import ADMIN, MANAGER, REVIEWER, ROLES, SALES, user_roles
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("user_kwargs", "roles"),
    [
        ({"groups": ["sales"]}, {SALES}),
        ({"groups": ["reviewer", "manager"]}, {REVIEWER, MANAGER}),
        ({}, set()),
        ({"is_superuser": True}, set(ROLES)),
    ],
)
def test_a_session_user_comes_with_its_roles_in_one_query(django_assert_num_queries, user_kwargs, roles):
    """Load the user and its roles in one query; reading the roles afterwards costs none."""
    # given
    user = UserFactory(**user_kwargs)
    # when / then
    with django_assert_num_queries(1):
        loaded = RoleLoadingModelBackend().get_user(user.pk)
        assert user_roles(loaded) == roles
    assert (ADMIN in user_roles(loaded)) == bool(user_kwargs.get("is_superuser"))


def test_an_inactive_or_missing_user_is_not_loaded():
    """Refuse an inactive user and an id that does not exist, as ModelBackend does."""
    inactive = UserFactory(is_active=False)
    assert RoleLoadingModelBackend().get_user(inactive.pk) is None
    assert RoleLoadingModelBackend().get_user(inactive.pk + 1000) is None


def test_a_token_user_comes_with_its_roles_in_one_query(django_assert_num_queries):
    """Authenticate a token and read its user's roles in one query."""
    # given
    user = UserFactory(groups=["reviewer"])
    token = Token.objects.create(user=user)
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION=f"Token {token.key}")
    # when / then
    with django_assert_num_queries(1):
        authenticated, _ = RoleLoadingTokenAuthentication().authenticate(request)
        assert user_roles(authenticated) == {REVIEWER}


def test_an_unknown_token_is_refused():
    request = APIRequestFactory().get("/", HTTP_AUTHORIZATION="Token " + "0" * 40)
    with pytest.raises(AuthenticationFailed):
        RoleLoadingTokenAuthentication().authenticate(request)
