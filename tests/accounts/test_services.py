"""Assignment services: one customer, a whole region, removal and the demo books."""

import pytest
from django.core.exceptions import ValidationError

from accounts.models import AccountAssignment
from accounts.services import (
    assignment_bulk_by_region,
    assignment_create,
    assignment_delete,
    assignment_demo_books,
)
from core.models import AuditEvent
from tests.factories import CustomerFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def sales():
    return UserFactory(username="sam", groups=["sales"])


@pytest.fixture
def admin_user():
    return UserFactory(username="root", is_superuser=True, is_staff=True)


def test_assignment_create_is_idempotent_and_audited(sales, admin_user):
    """Assign a customer once, however often it is asked, and audit the one real change."""
    customer = CustomerFactory()
    first = assignment_create(customer=customer, user=sales, assigned_by=admin_user)
    again = assignment_create(customer=customer, user=sales, assigned_by=admin_user)
    assert first.pk == again.pk
    assert first.assigned_by == admin_user
    events = AuditEvent.objects.filter(action="account.assign")
    assert [(e.actor, e.object_ref, e.detail) for e in events] == [(admin_user, str(sales.pk), {"customers": 1})]


@pytest.mark.parametrize("kwargs", [{"groups": ["reviewer"]}, {"groups": ["sales"], "is_active": False}, {}])
def test_accounts_are_assigned_to_active_sales_users_only(kwargs):
    """Refuse to put a book in the hands of a reviewer, an inactive user or a user without a role."""
    with pytest.raises(ValidationError):
        assignment_create(customer=CustomerFactory(), user=UserFactory(**kwargs))
    assert not AccountAssignment.objects.exists()


def test_bulk_by_region_assigns_the_whole_region_once(sales, admin_user):
    """Assign every customer of one region, skip those already assigned, and leave other regions alone."""
    # Given three customers in Western Europe (one already assigned) and two elsewhere
    west = [CustomerFactory(region="Western Europe") for _ in range(3)]
    CustomerFactory.create_batch(2, region="British Isles")
    assignment_create(customer=west[0], user=sales)
    # When the region is assigned twice
    n = assignment_bulk_by_region(region="Western Europe", user=sales, assigned_by=admin_user)
    again = assignment_bulk_by_region(region="Western Europe", user=sales, assigned_by=admin_user)
    # Then the two missing ones were added, and nothing the second time
    assert (n, again) == (2, 0)
    assert set(AccountAssignment.objects.filter(user=sales).values_list("customer_id", flat=True)) == {
        c.pk for c in west
    }
    event = AuditEvent.objects.filter(action="account.assign", actor=admin_user).get()
    assert event.detail == {"customers": 2, "region": "Western Europe"}


def test_assignment_delete_removes_and_audits(sales, admin_user):
    customers = CustomerFactory.create_batch(3)
    for c in customers:
        assignment_create(customer=c, user=sales)
    removed = assignment_delete(
        assignments=AccountAssignment.objects.filter(customer__in=customers[:2]), actor=admin_user
    )
    assert removed == 2
    assert list(AccountAssignment.objects.values_list("customer_id", flat=True)) == [customers[2].pk]
    event = AuditEvent.objects.get(action="account.unassign")
    assert (event.actor, event.object_ref, event.detail) == (admin_user, str(sales.pk), {"customers": 2})


def test_demo_books_split_territories_and_the_largest_region(sales):
    """Give each sales user a disjoint book: whole small regions, topped up with active large-region accounts."""
    # Given 40 British Isles customers (order counts 1..40) and three smaller regions
    british = [CustomerFactory(region="British Isles", order_count=n) for n in range(1, 41)]
    west = CustomerFactory.create_batch(6, region="Western Europe")
    south = CustomerFactory.create_batch(4, region="Southern Europe")
    asia = CustomerFactory.create_batch(3, region="Asia-Pacific")
    sales2 = UserFactory(username="sasha", groups=["sales"])
    # When books of 12 are dealt
    sizes = assignment_demo_books(users=[sales, sales2], per_user=12)
    # Then both books are full and disjoint
    assert sizes == {"sam": 12, "sasha": 12}
    books = {
        u: set(AccountAssignment.objects.filter(user=u).values_list("customer_id", flat=True)) for u in (sales, sales2)
    }
    assert not books[sales] & books[sales2]
    # And each smaller region went whole to one user
    for region in (west, south, asia):
        ids = {c.pk for c in region}
        assert ids <= books[sales] or ids <= books[sales2]
    # And the top-up came from the most active British Isles customers, shared between both users
    topped = {c.pk: c.order_count for c in british if c.pk in books[sales] | books[sales2]}
    assert sorted(topped.values()) == list(range(40 - len(topped) + 1, 41))
    assert all(any(c.pk in books[u] for c in british) for u in (sales, sales2))


def test_demo_books_are_kept_on_a_second_run(sales):
    """Re-running the demo keeps existing books (nothing reassigned, nothing added)."""
    CustomerFactory.create_batch(10, region="British Isles")
    first = assignment_demo_books(users=[sales], per_user=5)
    CustomerFactory.create_batch(10, region="British Isles")
    second = assignment_demo_books(users=[sales], per_user=5)
    assert first == second == {"sam": 5}
    assert AccountAssignment.objects.count() == 5
