"""customer_queryset_for: sales see their book, reviewers/managers/admins see everyone, anonymous no one."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse

from accounts import selectors
from core.permissions import user_roles
from recommendations.models import Customer
from sales import selectors as sales_selectors
from tests.factories import CustomerFactory, UserFactory, assign

pytestmark = pytest.mark.django_db


@pytest.fixture
def customers():
    return [CustomerFactory(region=region) for region in ("British Isles", "British Isles", "Western Europe")]


@pytest.fixture(params=["roles from SQL", "roles already read"])
def roles_read(request):
    """Run a test twice: roles decided inside the query, and roles read earlier in the request (cached)."""
    return (lambda user: user_roles(user)) if request.param == "roles already read" else (lambda user: None)


def test_sales_users_see_only_their_assigned_customers(customers, roles_read):
    """Restrict a sales user to the customers assigned to them."""
    # Given a sales user with two of three customers in their book, and another sales user with the third
    sales, other = UserFactory(groups=["sales"]), UserFactory(groups=["sales"])
    assign(sales, customers[0], customers[2])
    assign(other, customers[1])
    for user in (sales, other):
        roles_read(user)
    # When / Then
    assert set(selectors.customer_queryset_for(sales)) == {customers[0], customers[2]}
    assert set(selectors.customer_queryset_for(other)) == {customers[1]}


@pytest.mark.parametrize("groups", [["reviewer"], ["manager"], ["sales", "reviewer"], ["sales", "manager"]])
def test_reviewers_and_managers_see_every_customer(customers, groups, roles_read):
    """Give reviewers and managers (also when they are sales people too) every customer."""
    user = UserFactory(groups=groups)
    roles_read(user)
    assert selectors.customer_queryset_for(user).count() == len(customers)


def test_admins_see_every_customer(customers):
    admin = UserFactory(is_superuser=True, is_staff=True)
    assert selectors.customer_queryset_for(admin).count() == len(customers)


@pytest.mark.parametrize("kwargs", [{}, {"is_staff": True}])
def test_users_without_a_role_see_nothing(customers, kwargs, roles_read):
    """Treat a signed-in user without a role (even with the staff flag) like a sales user with an empty book."""
    user = UserFactory(**kwargs)
    roles_read(user)
    assert selectors.customer_queryset_for(user).count() == 0


def test_anonymous_users_see_nothing(customers):
    assert selectors.customer_queryset_for(AnonymousUser()).count() == 0


def test_every_customer_read_goes_through_the_scope(customers):
    """Scope the list, the region choices and the single-customer read by the same rule."""
    # Given a sales user whose book holds one British Isles customer
    sales = UserFactory(groups=["sales"])
    assign(sales, customers[0])
    # When / Then: the list, the region filter choices and customer_get agree
    assert list(sales_selectors.customer_list(user=sales)) == [customers[0]]
    assert selectors.customer_region_choices(user=sales) == ["British Isles"]
    assert selectors.customer_get(user=sales, pseudonym=customers[0].pseudonym) == customers[0]
    with pytest.raises(Customer.DoesNotExist):
        selectors.customer_get(user=sales, pseudonym=customers[2].pseudonym)


def test_the_customer_page_and_api_answer_404_outside_the_book(client, customers):
    """Answer 404, not 403, for a customer outside the book: existence is not revealed either."""
    sales = UserFactory(groups=["sales"])
    assign(sales, customers[0])
    client.force_login(sales)
    assert client.get(reverse("customer-detail", args=[customers[0].pseudonym])).status_code == 200
    assert client.get(reverse("customer-detail", args=[customers[1].pseudonym])).status_code == 404
    assert client.get(reverse("api-customer-detail", args=[customers[1].pseudonym])).status_code == 404
    listed = client.get(reverse("api-customer-list")).json()["results"]
    assert [c["pseudonym"] for c in listed] == [customers[0].pseudonym]
