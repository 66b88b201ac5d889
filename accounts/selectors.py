"""Read access to account assignments, and the scoping of every customer read.

Scoping: ``customer_queryset_for(user)`` is the one place that decides which customers a user may
see. Every customer read of every app (pages, API, exports, search, review, dashboard) starts from
it, so the API, the pages and the exports share one rule.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Count, Exists, Expression, Q, QuerySet

from accounts.models import AccountAssignment
from core.permissions import ADMIN, MANAGER, REVIEWER, SALES, UserLike, user_has_role
from recommendations.models import Customer

# Pseudonyms are hex digests of at most 64 characters.
_PSEUDONYM_RE = re.compile(r"[0-9a-f]{1,64}")


def assigned_customer_ids(*, user: AbstractBaseUser) -> QuerySet:
    """Return a subquery of the ids of the customers in ``user``'s book."""
    return AccountAssignment.objects.filter(user=user).values("customer_id")


def privileged_membership(*, user: AbstractBaseUser) -> QuerySet:
    """Return ``user``'s memberships of the groups that see every customer (reviewer, manager)."""
    memberships = get_user_model().groups.through.objects
    return memberships.filter(user_id=user.pk, group__name__in=(REVIEWER, MANAGER))


def customer_queryset_for(user: UserLike) -> QuerySet[Customer]:
    """Return the customers ``user`` may see: the scoping hook for every customer read.

    Reviewers, managers and admins see every (pseudonymized) customer; everyone else (sales users,
    and signed-in users without a role) sees only the customers assigned to them in
    ``accounts.AccountAssignment``. Anonymous users see nothing.
    """
    if not getattr(user, "is_authenticated", False):
        return Customer.objects.none()
    if user.is_superuser:
        return Customer.objects.all()
    assigned = Q(pk__in=assigned_customer_ids(user=user))
    roles = getattr(user, "_elm_roles", None)  # set by core.permissions.user_roles earlier in the request
    if roles is not None:
        privileged = user_has_role(user, REVIEWER, MANAGER, ADMIN)
        return Customer.objects.all() if privileged else Customer.objects.filter(assigned)
    # Decided inside the same SQL query (an uncorrelated EXISTS runs once): no extra round trip per request.
    return Customer.objects.filter(Q(Exists(privileged_membership(user=user))) | assigned)


def customer_get(*, user: UserLike, pseudonym: str, annotate: Mapping[str, Expression] | None = None) -> Customer:
    """Return the customer with ``pseudonym`` if ``user`` may see it; raise Customer.DoesNotExist otherwise.

    The pseudonym is matched case-insensitively; the embedding is not loaded. ``annotate`` adds
    expressions (counts, concept scores) computed in the same query.
    """
    normalized = pseudonym.strip().lower()
    # Pseudonyms are hex digests; anything else (NUL bytes, 10 kB strings) cannot exist, and must
    # not reach the database as a query parameter.
    if not _PSEUDONYM_RE.fullmatch(normalized):
        raise Customer.DoesNotExist(f"no customer with pseudonym {pseudonym[:80]!r}")
    qs = customer_queryset_for(user).defer("embedding")
    if annotate:
        qs = qs.annotate(**annotate)
    return qs.get(pseudonym=normalized)


def customer_region_choices(*, user: UserLike) -> list[str]:
    """Return the distinct regions of the customers ``user`` may see, sorted."""
    return list(customer_queryset_for(user).order_by("region").values_list("region", flat=True).distinct())


def sales_users() -> QuerySet:
    """Return the active users who may hold a book (the sales group and superusers), by username."""
    return (
        get_user_model()
        .objects.filter(Q(groups__name=SALES) | Q(is_superuser=True), is_active=True)
        .distinct()
        .order_by("username")
    )


def region_sizes() -> list[tuple[str, int]]:
    """Return every region with its number of customers, largest first."""
    return list(Customer.objects.order_by().values_list("region").annotate(n=Count("pk")).order_by("-n", "region"))


def book_sizes() -> dict[int, int]:
    """Return the number of assigned customers per user id."""
    return dict(AccountAssignment.objects.order_by().values_list("user_id").annotate(n=Count("pk")))
