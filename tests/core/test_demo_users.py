"""core.demo_users: one way to make the demo's users, used by the demo and by the permission matrix."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from core.demo_users import DEMO_USERS, demo_users_ensure
from core.permissions import user_roles

pytestmark = pytest.mark.django_db


def test_each_demo_user_has_one_role_and_a_password_shown_once():
    """Create each user with its role, staff flag and a random password; a second run keeps them."""
    # When the demo users are ensured twice
    first = demo_users_ensure()
    second = demo_users_ensure()
    # Then each has exactly its role; reviewers and managers are staff (admin access), sales users are not
    User = get_user_model()
    for demo in DEMO_USERS:
        user = User.objects.get(username=demo.username)
        assert user_roles(user) == {demo.role}
        assert (user.is_staff, user.is_superuser) == (demo.role in ("reviewer", "manager"), False)
        assert user.check_password(first[demo.username])
    # And the second run printed no password and changed none
    assert set(second.values()) == {None}


def test_reset_gives_new_passwords_and_restores_roles():
    """Reset passwords, and put back a role or a flag someone changed by hand."""
    demo_users_ensure()
    User = get_user_model()
    reviewer = User.objects.get(username="reviewer")
    reviewer.groups.clear()
    reviewer.is_superuser = True
    reviewer.save()
    passwords = demo_users_ensure(reset_passwords=True)
    reviewer.refresh_from_db()
    assert not reviewer.is_superuser and list(reviewer.groups.values_list("name", flat=True)) == ["reviewer"]
    assert all(passwords.values()) and reviewer.check_password(passwords["reviewer"])
