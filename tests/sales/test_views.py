"""Sales pages: the customer list and the customer page with its recommendation cards."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from recommendations.models import RecommendationBatch
from sales.forms import SORT_CHOICES
from sales.selectors import CUSTOMER_ORDERINGS
from sales.views import CUSTOMERS_PER_PAGE
from tests.factories import (
    CustomerFactory,
    ExplanationFactory,
    ProductFactory,
    PurchaseFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
)

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

LIST_URL = reverse("customer-list")


def detail_url(pseudonym: str) -> str:
    return reverse("customer-detail", kwargs={"pseudonym": pseudonym})


def rows(html: str) -> list[str]:
    """Return the pseudonyms of the customer-list rows, in page order."""
    return re.findall(r'<th scope="row"><a class="mono" href="/customers/([0-9a-f]+)/">', html)


# --------------------------------------------------------------------------- access


@pytest.mark.parametrize("url", [LIST_URL, "/customers/0000000000000001/"])
def test_pages_send_anonymous_visitors_to_sign_in(client, url):
    """Redirect anonymous visitors to the sign-in page, remembering where they were going."""
    # when
    response = client.get(url)
    # then
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


def test_language_switch_renders_the_page_in_japanese(signed_in):
    """Remember the chosen language and mark the page with it."""
    # when
    response = signed_in.post("/i18n/setlang/", {"language": "ja", "next": LIST_URL})
    page = signed_in.get(LIST_URL)
    # then
    assert response.status_code == 302
    assert '<html lang="ja">' in page.content.decode()


# --------------------------------------------------------------------------- customer list


def test_customer_list_shows_customers_with_their_facts(signed_in, manager):
    """Show pseudonym, region, last purchase, orders, localized revenue and open recommendations."""
    # given
    customer = CustomerFactory(
        pseudonym="abcdef0123456789",
        region="Western Europe",
        order_count=1234,
        revenue="98765.40",
        last_purchase_at=dt.datetime(2011, 12, 9, 12, 0, tzinfo=dt.UTC),
    )
    RecommendationFactory.create_batch(3, customer=customer)
    # when
    response = signed_in.get(LIST_URL)
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert rows(html) == ["abcdef0123456789"]
    assert "Western Europe" in html
    assert "1,234" in html
    assert "98,765.40" in html
    assert "Dec. 9, 2011" in html
    assert '<span class="badge badge--accent">3</span>' in html
    assert "alice" in html  # the user menu


def test_customer_list_searches_filters_and_sorts(signed_in):
    """Apply the pseudonym prefix, the region and the sort order from the form."""
    # given
    CustomerFactory(pseudonym="aa00000000000001", region="Asia-Pacific", revenue="10.00")
    CustomerFactory(pseudonym="aa00000000000002", region="Asia-Pacific", revenue="90.00")
    CustomerFactory(pseudonym="aa00000000000003", region="Americas", revenue="50.00")
    CustomerFactory(pseudonym="bb00000000000004", region="Asia-Pacific", revenue="70.00")
    # when
    response = signed_in.get(LIST_URL, {"q": "AA", "region": "Asia-Pacific", "sort": "revenue"})
    # then
    html = response.content.decode()
    assert rows(html) == ["aa00000000000001", "aa00000000000002"]
    assert '<option value="Americas">Americas</option>' in html  # regions offered in the filter
    assert 'aria-sort="ascending"' in html


def test_customer_list_reports_an_invalid_search_next_to_the_field(signed_in):
    """Show the error for a non-hex search and list customers unfiltered."""
    # given
    CustomerFactory(pseudonym="cc00000000000001")
    # when
    response = signed_in.get(LIST_URL, {"q": "zz-top"})
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert "Pseudonyms contain only the characters 0-9 and a-f." in html
    assert rows(html) == ["cc00000000000001"]


def test_customer_list_ignores_an_unknown_sort(signed_in):
    """Fall back to the default order for a sort key outside the allow-list."""
    # given
    CustomerFactory()
    # when
    response = signed_in.get(LIST_URL, {"sort": "embedding"})
    # then
    assert response.status_code == 200
    assert len(rows(response.content.decode())) == 1


def test_customer_list_paginates(signed_in):
    """Show CUSTOMERS_PER_PAGE rows per page and the rest on the next page."""
    # given
    CustomerFactory.create_batch(CUSTOMERS_PER_PAGE + 3)
    # when
    first = signed_in.get(LIST_URL).content.decode()
    second = signed_in.get(LIST_URL, {"page": 2}).content.decode()
    garbage = signed_in.get(LIST_URL, {"page": "x"})
    # then
    assert len(rows(first)) == CUSTOMERS_PER_PAGE
    assert len(rows(second)) == 3
    assert not set(rows(first)) & set(rows(second))
    assert 'href="?page=2"' in first
    assert garbage.status_code == 200


def test_customer_list_shows_an_empty_state_for_no_matches(signed_in):
    """Say that nothing matched instead of rendering an empty table."""
    # given
    CustomerFactory(pseudonym="dd00000000000001")
    # when
    html = signed_in.get(LIST_URL, {"q": "ee"}).content.decode()
    # then
    assert "No customers match these filters" in html
    assert "<table" not in html


def test_sort_choices_cover_the_selector_allow_list():
    """Offer exactly the orderings the selector accepts."""
    # then
    assert {key for key, _label in SORT_CHOICES} == set(CUSTOMER_ORDERINGS)


@pytest.mark.parametrize("n_customers", [2, CUSTOMERS_PER_PAGE + 5])
def test_customer_list_query_count_does_not_grow_with_the_page(signed_in, django_assert_max_num_queries, n_customers):
    """Render a page in 6 queries (session, user, user's roles, regions, count, page) whatever its size."""
    # given
    for customer in CustomerFactory.create_batch(n_customers):
        RecommendationFactory.create_batch(2, customer=customer)
    # when / then
    with django_assert_max_num_queries(6):
        response = signed_in.get(LIST_URL)
    assert len(rows(response.content.decode())) == min(n_customers, CUSTOMERS_PER_PAGE)


# --------------------------------------------------------------------------- customer page


def test_customer_page_shows_active_recommendations_in_rank_order(signed_in):
    """List the active batch's products best first with score bars; hide other batches."""
    # given
    customer = CustomerFactory(pseudonym="ab00000000000001")
    old = RecommendationBatchFactory(status=RecommendationBatch.Status.SUPERSEDED)
    RecommendationFactory(customer=customer, batch=old, rank=1, product=ProductFactory(description="STALE ITEM"))
    for rank, description in [(2, "SECOND ITEM"), (1, "FIRST ITEM"), (3, "THIRD ITEM")]:
        RecommendationFactory(
            customer=customer, rank=rank, score=1 - rank / 10, product=ProductFactory(description=description)
        )
    # when
    response = signed_in.get(detail_url(customer.pseudonym))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    assert html.index("FIRST ITEM") < html.index("SECOND ITEM") < html.index("THIRD ITEM")
    assert "STALE ITEM" not in html
    assert html.count('<meter class="score__bar"') == 3
    assert 'value="0.900000"' in html


def test_customer_page_shows_recent_purchases_newest_first(signed_in):
    """List the latest purchase lines with invoice, product and quantity."""
    # given
    customer = CustomerFactory()
    now = timezone.now()
    PurchaseFactory(customer=customer, invoice="OLDER1", occurred_at=now - dt.timedelta(days=9))
    PurchaseFactory(customer=customer, invoice="NEWER1", occurred_at=now - dt.timedelta(days=1), quantity=2400)
    # when
    html = signed_in.get(detail_url(customer.pseudonym)).content.decode()
    # then
    assert html.index("NEWER1") < html.index("OLDER1")
    assert "2,400" in html


def test_customer_page_without_recommendations_says_so(signed_in):
    """Show an empty state when the customer has no active recommendations."""
    # given
    customer = CustomerFactory()
    # when
    html = signed_in.get(detail_url(customer.pseudonym)).content.decode()
    # then
    assert "No active recommendations for this customer yet." in html


@pytest.mark.parametrize("pseudonym", ["0000000000000000", "not-a-pseudonym"])
def test_customer_page_is_404_for_an_unknown_pseudonym(signed_in, pseudonym):
    """Answer 404, not 500, for a pseudonym that does not exist."""
    # when
    response = signed_in.get(detail_url(pseudonym))
    # then
    assert response.status_code == 404


@pytest.mark.parametrize("n_items", [1, 10])
def test_customer_page_query_count_is_constant(signed_in, django_assert_max_num_queries, n_items):
    """Render in 11 queries however many items: session, user, user's roles, customer, recommendations (with
    explanations and exposures), purchases, customer description, exposure assignment (first view only),
    outcomes, explain job."""
    # given: nothing explained yet, so the page looks for a running explain job
    customer = CustomerFactory()
    for rank in range(1, n_items + 1):
        RecommendationFactory(customer=customer, rank=rank)
        PurchaseFactory(customer=customer)
    # when / then
    with django_assert_max_num_queries(11):
        response = signed_in.get(detail_url(customer.pseudonym))
    assert response.content.decode().count('<meter class="score__bar"') == n_items


def test_customer_list_shows_how_many_recommendations_are_explained(signed_in):
    """Show the number of explained active recommendations per customer."""
    # given
    customer = CustomerFactory()
    ExplanationFactory.create_batch(2, recommendation__customer=customer)
    RecommendationFactory(customer=customer)
    # when
    html = signed_in.get(LIST_URL).content.decode()
    # then
    assert '<span class="badge badge--accent">3</span>' in html
    assert '<span class="badge badge--explained">2</span>' in html


@pytest.mark.parametrize("n_customers", [2, CUSTOMERS_PER_PAGE + 5])
def test_customer_list_with_explanations_query_count_is_constant(signed_in, django_assert_max_num_queries, n_customers):
    """Count explained recommendations without per-row queries (still 6 queries per page)."""
    # given
    for customer in CustomerFactory.create_batch(n_customers):
        ExplanationFactory(recommendation__customer=customer)
    # when / then
    with django_assert_max_num_queries(6):
        response = signed_in.get(LIST_URL)
    assert response.content.decode().count('<span class="badge badge--explained">1</span>') == min(
        n_customers, CUSTOMERS_PER_PAGE
    )
