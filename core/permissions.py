"""Roles: the one definition of who is a sales person, reviewer, manager or admin.

Roles are Django groups created by ``core/migrations/0001_roles.py``; superusers are admins and hold
every role. Views use ``role_required``; API views use ``HasRole``; selectors use ``user_has_role``.
The named checks below (``user_is_reviewer``, ``user_is_sales_only``)
are the only definitions of those rules; every app imports them from here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import wraps

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from rest_framework.permissions import BasePermission

UserLike = AbstractBaseUser | AnonymousUser

SALES = "sales"
REVIEWER = "reviewer"
MANAGER = "manager"
ADMIN = "admin"  # superusers; not a group
ROLES = (SALES, REVIEWER, MANAGER, ADMIN)
_GROUP_ROLES = frozenset({SALES, REVIEWER, MANAGER})
# Roles that read every reason whatever its review state, and the automatic checks' flags.
REASON_READER_ROLES = (REVIEWER, MANAGER, ADMIN)


def user_roles(user: UserLike) -> frozenset[str]:
    """Return the roles of ``user`` (cached on the user object for the request)."""
    if not getattr(user, "is_authenticated", False):
        return frozenset()
    cached = getattr(user, "_elm_roles", None)
    if cached is not None:
        return cached
    group_names = () if user.is_superuser else user.groups.values_list("name", flat=True)
    return user_roles_remember(user, group_names=group_names)


def user_roles_remember(user: AbstractBaseUser, *, group_names: Iterable[str]) -> frozenset[str]:
    """Cache on ``user`` the roles its ``group_names`` give (read elsewhere, e.g. with the user) and return them."""
    roles = frozenset(ROLES) if user.is_superuser else frozenset(set(group_names) & _GROUP_ROLES)
    user._elm_roles = roles
    return roles


def user_has_role(user: UserLike, *roles: str) -> bool:
    """Return whether ``user`` holds at least one of ``roles`` (admins hold all)."""
    unknown = set(roles) - set(ROLES)
    if unknown:
        raise ValueError(f"unknown role(s): {sorted(unknown)}")
    return bool(user_roles(user) & set(roles))


def role_required(*roles: str) -> Callable:
    """Decorate a view: anonymous users go to the login page, users without one of ``roles`` get 403."""
    if not roles or set(roles) - set(ROLES):
        raise ValueError(f"role_required needs roles from {ROLES}, got {roles}")

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if not user_has_role(request.user, *roles):
                raise PermissionDenied
            return view(request, *args, **kwargs)

        wrapped.required_roles = roles
        return wrapped

    return decorator


class HasRole(BasePermission):
    """DRF permission: set ``required_roles = ("manager", …)`` on the view."""

    def has_permission(self, request, view) -> bool:
        roles = getattr(view, "required_roles", None)
        if not roles:
            raise AttributeError(f"{type(view).__name__} uses HasRole without required_roles")
        return user_has_role(request.user, *roles)


def user_is_reviewer(*, user: UserLike) -> bool:
    """Return whether ``user`` reads every reason and the checks' flags: reviewers, managers and admins."""
    return user_has_role(user, *REASON_READER_ROLES)


def user_is_sales_only(*, user: UserLike) -> bool:
    """Return whether ``user`` works as a sales person only: "My accounts", the A/B control arm and exposures."""
    return user_has_role(user, SALES) and not user_has_role(user, *REASON_READER_ROLES)
