"""Read access to account assignments."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db.models import Count, Q, QuerySet

from accounts.models import AccountAssignment
from core.permissions import MANAGER, REVIEWER, SALES
from recommendations.models import Customer


def assigned_customer_ids(*, user: AbstractBaseUser) -> QuerySet:
    """Return a subquery of the ids of the customers in ``user``'s book."""
    return AccountAssignment.objects.filter(user=user).values("customer_id")


def privileged_membership(*, user: AbstractBaseUser) -> QuerySet:
    """Return ``user``'s memberships of the groups that see every customer (reviewer, manager)."""
    memberships = get_user_model().groups.through.objects
    return memberships.filter(user_id=user.pk, group__name__in=(REVIEWER, MANAGER))


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
