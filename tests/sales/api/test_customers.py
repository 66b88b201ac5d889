"""Sales API: the customer list, a customer's detail and recommendations in rank order."""

from __future__ import annotations

import pytest

from recommendations.models import RecommendationBatch
from tests.factories import (
    CustomerFactory,
    PurchaseFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
)
from tests.sales.api.support import CUSTOMERS_URL, customer_url, recommendations_url

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
    pytest.mark.usefixtures("every_user_holds_every_customer"),  # account scoping is tested in tests/accounts
]


# --------------------------------------------------------------------------- customer list


def test_customer_list_items_have_the_documented_fields(client):
    """Return each customer's pseudonym, region, purchase facts, revenue and recommendation count."""
    # given
    customer = CustomerFactory(pseudonym="aaaa000000000001", region="Western Europe", order_count=7)
    RecommendationFactory.create_batch(2, customer=customer)
    # when
    response = client.get(CUSTOMERS_URL)
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 1
    item = body["results"][0]
    assert set(item) == {
        "pseudonym",
        "region",
        "first_purchase_at",
        "last_purchase_at",
        "order_count",
        "revenue",
        "recommendation_count",
        "explained_count",
        "url",
    }
    assert item["pseudonym"] == "aaaa000000000001"
    assert item["region"] == "Western Europe"
    assert item["order_count"] == 7
    assert item["revenue"] == "123.45"
    assert item["recommendation_count"] == 2
    assert item["explained_count"] == 0
    assert item["url"].endswith("/api/customers/aaaa000000000001/")


def test_customer_list_caps_a_huge_limit(client):
    """Serve at most max_limit (200) items however large the requested limit."""
    # given
    CustomerFactory.create_batch(205)
    # when
    response = client.get(CUSTOMERS_URL, {"limit": 100000})
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 205
    assert len(body["results"]) == 200
    assert "limit=200" in body["next"]


def test_customer_list_pages_with_limit_and_offset(client):
    """Return consecutive, non-overlapping pages for limit/offset."""
    # given
    CustomerFactory.create_batch(5)
    # when
    first = client.get(CUSTOMERS_URL, {"limit": 2, "offset": 0}).json()
    second = client.get(CUSTOMERS_URL, {"limit": 2, "offset": 2}).json()
    beyond = client.get(CUSTOMERS_URL, {"limit": 2, "offset": 50}).json()
    # then
    first_ids = [c["pseudonym"] for c in first["results"]]
    second_ids = [c["pseudonym"] for c in second["results"]]
    assert len(first_ids) == len(second_ids) == 2
    assert not set(first_ids) & set(second_ids)
    assert beyond["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "abc"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "-5"}, "limit"),
        ({"limit": "1_0"}, "limit"),
        ({"offset": "abc"}, "offset"),
        ({"offset": "-1"}, "offset"),
        ({"offset": "1.5"}, "offset"),
        ({"offset": str(10**12)}, "offset"),
        ({"ordering": "embedding"}, "ordering"),
        ({"ordering": "-pseudonym"}, "ordering"),
        ({"pseudonym": "not-hex!"}, "pseudonym"),
        ({"pseudonym": "a" * 65}, "pseudonym"),
    ],
)
def test_customer_list_rejects_malformed_parameters_with_400(client, params, field):
    """Answer 400 naming the malformed parameter instead of guessing or failing with 500."""
    # given
    CustomerFactory()
    # when
    response = client.get(CUSTOMERS_URL, params)
    # then
    assert response.status_code == 400
    body = response.json()
    assert list(body) == [field]
    assert body[field][0]


def test_customer_list_explains_an_unknown_ordering(client):
    """Name the allowed orderings in the 400 body."""
    # when
    response = client.get(CUSTOMERS_URL, {"ordering": "pseudonym"})
    # then
    assert response.status_code == 400
    message = response.json()["ordering"][0]
    assert message.startswith('"pseudonym" is not a valid ordering.')
    assert "-last_purchase_at" in message
    assert "order_count" in message


def test_customer_list_treats_empty_filters_as_absent(client):
    """Return every customer for empty region and pseudonym parameters."""
    # given
    CustomerFactory.create_batch(2)
    # when
    response = client.get(CUSTOMERS_URL, {"region": "", "pseudonym": ""})
    # then
    assert response.status_code == 200
    assert response.json()["count"] == 2


def test_customer_list_filters_by_region(client):
    """Keep only customers of the given region."""
    # given
    CustomerFactory(region="Western Europe")
    wanted = CustomerFactory(region="Asia-Pacific")
    # when
    body = client.get(CUSTOMERS_URL, {"region": "Asia-Pacific"}).json()
    # then
    assert [c["pseudonym"] for c in body["results"]] == [wanted.pseudonym]


def test_customer_list_searches_by_pseudonym_prefix(client):
    """Keep customers whose pseudonym starts with the prefix, ignoring its case."""
    # given
    CustomerFactory(pseudonym="beef000000000001")
    CustomerFactory(pseudonym="beef000000000002")
    CustomerFactory(pseudonym="0beef00000000003")
    # when
    body = client.get(CUSTOMERS_URL, {"pseudonym": "BEEF"}).json()
    # then
    assert sorted(c["pseudonym"] for c in body["results"]) == ["beef000000000001", "beef000000000002"]


def test_customer_list_orders_by_revenue_descending(client):
    """Sort by the requested allowed key."""
    # given
    for revenue in ("5.00", "500.00", "50.00"):
        CustomerFactory(revenue=revenue)
    # when
    body = client.get(CUSTOMERS_URL, {"ordering": "-revenue"}).json()
    # then
    assert [c["revenue"] for c in body["results"]] == ["500.00", "50.00", "5.00"]


@pytest.mark.parametrize("n_customers", [3, 40])
def test_customer_list_query_count_does_not_grow_with_the_page(client, django_assert_max_num_queries, n_customers):
    """Answer a page in 3 queries (token, count, page) whatever its size."""
    # given
    for customer in CustomerFactory.create_batch(n_customers):
        RecommendationFactory(customer=customer)
    # when / then
    with django_assert_max_num_queries(3):
        response = client.get(CUSTOMERS_URL, {"limit": 200})
    assert len(response.json()["results"]) == n_customers


# --------------------------------------------------------------------------- customer detail


def test_customer_detail_includes_profile_and_recent_purchases(client):
    """Return the profile, links and the latest purchase lines with stock codes."""
    # given
    customer = CustomerFactory()
    purchase = PurchaseFactory(customer=customer, quantity=12)
    # when
    response = client.get(customer_url(customer.pseudonym))
    # then
    assert response.status_code == 200
    body = response.json()
    assert body["pseudonym"] == customer.pseudonym
    assert body["recommendations_url"].endswith(recommendations_url(customer.pseudonym))
    assert body["recent_purchases"] == [
        {
            "occurred_at": body["recent_purchases"][0]["occurred_at"],
            "invoice": purchase.invoice,
            "stock_code": purchase.product.stock_code,
            "description": purchase.description,
            "quantity": 12,
            "unit_price": "2.550",
            "kind": "sale",
        }
    ]


@pytest.mark.parametrize("n_purchases", [1, 30])
def test_customer_detail_query_count_is_constant(client, django_assert_max_num_queries, n_purchases):
    """Answer in 3 queries (token, customer, purchases) however many purchases."""
    # given
    customer = CustomerFactory()
    PurchaseFactory.create_batch(n_purchases, customer=customer)
    # when / then
    with django_assert_max_num_queries(3):
        response = client.get(customer_url(customer.pseudonym))
    assert len(response.json()["recent_purchases"]) == min(n_purchases, 20)


@pytest.mark.parametrize("pseudonym", ["0000000000000000", "no-such-customer", "%00"])
def test_unknown_pseudonym_is_404(client, pseudonym):
    """Answer 404 with a message for an unknown pseudonym, on detail and recommendations."""
    # given
    CustomerFactory()
    # when
    detail = client.get(f"/api/customers/{pseudonym}/")
    recommendations = client.get(f"/api/customers/{pseudonym}/recommendations/")
    # then
    assert detail.status_code == recommendations.status_code == 404
    assert detail.json() == {"detail": "No customer with this pseudonym."}


# --------------------------------------------------------------------------- recommendations


def test_recommendations_come_from_the_active_batch_in_rank_order(client):
    """List only the active batch's recommendations, best rank first, with their products."""
    # given
    customer = CustomerFactory()
    superseded = RecommendationBatchFactory(status=RecommendationBatch.Status.SUPERSEDED)
    RecommendationFactory(customer=customer, batch=superseded, rank=1, score=0.99)
    ranked = {rank: RecommendationFactory(customer=customer, rank=rank, score=1 - rank / 10) for rank in (2, 1, 3)}
    # when
    response = client.get(recommendations_url(customer.pseudonym))
    # then
    assert response.status_code == 200
    body = response.json()
    assert [r["rank"] for r in body] == [1, 2, 3]
    assert body[0] == {
        "rank": 1,
        "score": pytest.approx(0.9),
        "product": {"stock_code": ranked[1].product.stock_code, "description": ranked[1].product.description},
        "kind": "new",
        "history": "New to this customer",
        "generated_at": body[0]["generated_at"],
        "explanation": None,
    }
    assert all(r["score"] != 0.99 for r in body)


def test_recommendations_are_empty_when_no_batch_is_active(client):
    """Return an empty list, not old recommendations, while no batch is active."""
    # given
    customer = CustomerFactory()
    running = RecommendationBatchFactory(status=RecommendationBatch.Status.RUNNING)
    RecommendationFactory(customer=customer, batch=running, rank=1)
    # when
    response = client.get(recommendations_url(customer.pseudonym))
    # then
    assert response.status_code == 200
    assert response.json() == []


@pytest.mark.parametrize("n_recommendations", [1, 10])
def test_recommendations_query_count_is_constant(client, django_assert_max_num_queries, n_recommendations):
    """Answer in 3 queries (token, customer, recommendations+products) however many there are."""
    # given
    customer = CustomerFactory()
    for rank in range(1, n_recommendations + 1):
        RecommendationFactory(customer=customer, rank=rank)
    # when / then
    with django_assert_max_num_queries(3):
        response = client.get(recommendations_url(customer.pseudonym))
    assert len(response.json()) == n_recommendations
