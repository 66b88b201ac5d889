"""The admin: assign a region, assign selected customers, erase selected customers."""

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.urls import reverse

from accounts.models import AccountAssignment
from core.models import AuditEvent
from recommendations.models import Customer, Purchase
from tests.factories import CustomerFactory, PurchaseFactory, UserFactory

pytestmark = pytest.mark.django_db

REGION_URL = "admin:accounts_accountassignment_assign_region"
CUSTOMERS_URL = "admin:recommendations_customer_changelist"


@pytest.fixture
def admin_client(client):
    client.force_login(UserFactory(username="root", is_superuser=True, is_staff=True))
    return client


@pytest.fixture
def sales():
    return UserFactory(username="sam", groups=["sales"])


def test_assign_region_form_assigns_every_customer_of_the_region(admin_client, sales):
    """Offer regions with their sizes and sales users, and assign the chosen region."""
    west = CustomerFactory.create_batch(3, region="Western Europe")
    CustomerFactory(region="British Isles")
    page = admin_client.get(reverse(REGION_URL))
    assert page.status_code == 200
    assert "Western Europe (3 customers)" in page.content.decode()
    response = admin_client.post(reverse(REGION_URL), {"region": "Western Europe", "user": sales.pk})
    assert response.status_code == 302
    assert set(AccountAssignment.objects.filter(user=sales).values_list("customer_id", flat=True)) == {
        c.pk for c in west
    }


def test_assign_region_form_offers_only_sales_users(admin_client, sales):
    """Reject a user who is not a sales person (the form offers sales users only)."""
    reviewer = UserFactory(groups=["reviewer"])
    CustomerFactory(region="Western Europe")
    response = admin_client.post(reverse(REGION_URL), {"region": "Western Europe", "user": reviewer.pk})
    assert response.status_code == 200  # the form again, with an error
    assert response.context["form"].errors["user"]
    assert not AccountAssignment.objects.exists()


@pytest.mark.parametrize("groups", [["manager"], ["reviewer"]])
def test_staff_without_assignment_rights_cannot_assign_regions(client, groups):
    """Refuse the region form to staff users who may not add assignments."""
    client.force_login(UserFactory(groups=groups, is_staff=True))
    assert client.get(reverse(REGION_URL)).status_code == 403


def test_customer_action_assigns_the_selected_customers(admin_client, sales):
    """Ask for a sales user first, then assign exactly the selected customers."""
    chosen = CustomerFactory.create_batch(2)
    CustomerFactory()
    selected = {"action": "assign_to_sales_user", ACTION_CHECKBOX_NAME: [c.pk for c in chosen]}
    # When the action is chosen, an intermediate page asks for the user
    page = admin_client.post(reverse(CUSTOMERS_URL), selected)
    assert page.status_code == 200
    assert not AccountAssignment.objects.exists()
    # And applying it assigns the selection
    done = admin_client.post(reverse(CUSTOMERS_URL), {**selected, "apply": "1", "user": sales.pk})
    assert done.status_code == 302
    assert set(AccountAssignment.objects.values_list("customer_id", flat=True)) == {c.pk for c in chosen}


def test_customer_action_erases_after_confirmation(admin_client):
    """Erase the selected customers only after confirmation; their purchases stay, detached."""
    doomed, kept = CustomerFactory(), CustomerFactory()
    line = PurchaseFactory(customer=doomed)
    selected = {"action": "erase_customers", ACTION_CHECKBOX_NAME: [doomed.pk]}
    confirm_page = admin_client.post(reverse(CUSTOMERS_URL), selected)
    assert confirm_page.status_code == 200
    assert Customer.objects.filter(pk=doomed.pk).exists()
    admin_client.post(reverse(CUSTOMERS_URL), {**selected, "confirm": "1"})
    assert list(Customer.objects.all()) == [kept]
    assert Purchase.objects.get(pk=line.pk).customer_id is None
    assert AuditEvent.objects.filter(action="customer.erase").count() == 1


def test_deleting_a_customer_in_the_admin_is_an_erasure(admin_client):
    """Route the admin's own delete through the erasure service (purchases detached, audited)."""
    customer = CustomerFactory()
    line = PurchaseFactory(customer=customer)
    url = reverse("admin:recommendations_customer_delete", args=[customer.pk])
    admin_client.post(url, {"post": "yes"})
    assert not Customer.objects.exists()
    assert Purchase.objects.get(pk=line.pk).customer_id is None
    assert AuditEvent.objects.filter(action="customer.erase").count() == 1
