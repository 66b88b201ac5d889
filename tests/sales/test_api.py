"""Sales API: customers, their recommendation cards (explanations as each role may see them), the schema parts."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.urls import reverse
from rest_framework.authtoken.models import Token

from explanations.models import Explanation
from recommendations.models import Customer, RecommendationBatch
from tests.factories import (
    ConceptFactory,
    CustomerConceptFactory,
    CustomerFactory,
    ExplanationFactory,
    ProductFactory,
    PurchaseFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
    UserFactory,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
    pytest.mark.usefixtures("every_user_holds_every_customer"),  # account scoping is tested in tests/accounts
]

CUSTOMERS_URL = reverse("api-customer-list")


@pytest.fixture(autouse=True)
def _clear_throttle_cache():
    # Throttle history lives in the cache; tests must not see each other's requests.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def user():
    return UserFactory()


@pytest.fixture
def client(api_client, user):
    """An API client authenticated with the user's token."""
    token = Token.objects.create(user=user)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return api_client


def customer_url(pseudonym: str) -> str:
    return reverse("api-customer-detail", kwargs={"pseudonym": pseudonym})


def recommendations_url(pseudonym: str) -> str:
    return reverse("api-customer-recommendations", kwargs={"pseudonym": pseudonym})


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


# --------------------------------------------------------------------------- explanations


def _client_for(api_client, **user_kwargs):
    api_client.force_authenticate(UserFactory(**user_kwargs))
    return api_client


FLAG = {
    "code": "hallucinated_entity",
    "message": "“vintage” is not in the evidence for this recommendation.",
    "start": 3,
    "end": 10,
    "text": "vintage",
    "severity": "warning",
}


def test_recommendations_include_every_part_of_their_explanation(api_client):
    """Return reason, evidence, necessity, concepts (shared first), word shares, confidence, flags, versions."""
    # given: a reviewer, one explained recommendation whose concepts list the unshared one first
    client = _client_for(api_client, groups=["reviewer"])
    customer = CustomerFactory()
    rec = RecommendationFactory(
        customer=customer, rank=1, score=0.6, product=ProductFactory(description="WHITE METAL LANTERN")
    )
    ExplanationFactory(
        recommendation=rec,
        reason_text="A vintage lantern for their candle range.",
        flags=[FLAG],
        concepts=[
            {"concept": "Bulk buyer", "customer_score": 0.3, "low": 0.2, "high": 0.4, "sensitivity": -0.2,
             "shared": False},
            {"concept": "Home décor", "customer_score": 0.82, "low": 0.75, "high": 0.88, "sensitivity": 0.31,
             "shared": True},
        ],
    )  # fmt: skip
    # when
    response = client.get(recommendations_url(customer.pseudonym))
    # then
    assert response.status_code == 200
    explanation = response.json()[0]["explanation"]
    assert set(explanation) == {
        "status", "reason", "reason_status", "template_text", "evidence", "necessity", "concepts",
        "word_attributions", "consistency", "confidence", "confidence_band", "confidence_meaning", "flags",
        "versions", "generated_at",
    }  # fmt: skip
    assert explanation["status"] == "generated"
    assert explanation["reason"] == "A vintage lantern for their candle range."
    assert explanation["reason_status"] == "visible"
    assert explanation["template_text"].startswith("It goes with what this customer already buys")
    assert [row["stock_code"] for row in explanation["evidence"]] == ["EV001", "EV002", None]
    assert explanation["evidence"][-1] == {
        "product_id": None, "stock_code": None, "description": "other purchases", "weight": None,
        "share": pytest.approx(0.3), "count": 12, "kind": "rest", "family": "", "co_buyers_rate": None,
        "co_buyers": None,
    }  # fmt: skip
    assert sum(row["share"] for row in explanation["evidence"]) == pytest.approx(0.6)
    assert explanation["necessity"] == {
        "removed": [9001, 9002], "drops_out": False, "new_rank": 1,
        "counterfactual_score": pytest.approx(0.54), "top_n": 10,
    }  # fmt: skip
    assert [c["concept"] for c in explanation["concepts"]] == ["Home décor", "Bulk buyer"]
    product_words = explanation["word_attributions"]["product"]
    assert product_words["words"] == ["WHITE", "METAL", "LANTERN"]
    assert set(product_words) == {"words", "normalized"}
    assert sum(abs(x) for x in product_words["normalized"]) == pytest.approx(1.0)
    assert explanation["word_attributions"]["evidence"]["product_id"] == 9001
    assert explanation["consistency"] == pytest.approx(0.71)
    assert explanation["confidence"] == pytest.approx(0.12)
    assert explanation["flags"] == [FLAG]
    assert explanation["versions"]["sig"] == "sig-20-gausslegendre"


def test_recommendations_not_yet_explained_have_a_null_explanation(client):
    """Return explanation null for a recommendation without one, next to an explained one."""
    # given
    customer = CustomerFactory()
    ExplanationFactory(recommendation=RecommendationFactory(customer=customer, rank=1))
    RecommendationFactory(customer=customer, rank=2)
    # when
    body = client.get(recommendations_url(customer.pseudonym)).json()
    # then
    assert body[0]["explanation"] is not None
    assert body[1]["explanation"] is None


def test_sales_users_get_the_evidence_but_not_the_reason(api_client):
    """Hide the reason and flags from a sales user; give the template reason, evidence, concepts, words, confidence."""
    # given
    client = _client_for(api_client, groups=["sales"])
    explanation = ExplanationFactory(flags=[FLAG])
    pseudonym = explanation.recommendation.customer.pseudonym
    # when
    item = client.get(recommendations_url(pseudonym)).json()[0]["explanation"]
    # then
    assert item["reason"] is None
    assert item["reason_status"] == "under_review"
    # The template reason, built from the evidence only, stands in while the reason is under review.
    assert item["template_text"] == explanation.template_text
    assert item["flags"] is None
    assert len(item["evidence"]) == 3
    assert item["concepts"][0]["concept"] == "Home décor"
    assert item["word_attributions"]["product"]["words"]
    assert item["confidence"] == pytest.approx(0.12)
    assert explanation.reason_text not in str(item)


@pytest.mark.parametrize(
    "user_kwargs",
    [{"groups": ["reviewer"]}, {"groups": ["manager"]}, {"is_superuser": True}],
)
def test_reviewers_managers_and_staff_read_the_reason(api_client, user_kwargs):
    """Show the reason and the flags to reviewers, managers and superusers (admins), whatever its state."""
    # given
    client = _client_for(api_client, **user_kwargs)
    explanation = ExplanationFactory(flags=[FLAG])
    # when
    item = client.get(recommendations_url(explanation.recommendation.customer.pseudonym)).json()[0]["explanation"]
    # then
    assert item["reason"] == explanation.reason_text
    assert item["reason_status"] == "visible"
    assert item["flags"] == [FLAG]


def test_a_user_without_a_role_group_does_not_read_the_reason(client):
    """Treat a signed-in user in no role group like a sales user."""
    # given
    explanation = ExplanationFactory()
    # when
    item = client.get(recommendations_url(explanation.recommendation.customer.pseudonym)).json()[0]["explanation"]
    # then
    assert (item["reason"], item["reason_status"]) == (None, "under_review")


@pytest.mark.parametrize("n_recommendations", [1, 10])
def test_explained_recommendations_query_count_is_constant(
    api_client, django_assert_max_num_queries, n_recommendations
):
    """Answer in 4 queries (token, customer, recommendations+explanations, user's groups) however many."""
    # given: a sales user with a token, and every recommendation explained
    user = UserFactory(groups=["sales"])
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    customer = CustomerFactory()
    for rank in range(1, n_recommendations + 1):
        ExplanationFactory(recommendation=RecommendationFactory(customer=customer, rank=rank))
    # when / then
    with django_assert_max_num_queries(4):
        response = api_client.get(recommendations_url(customer.pseudonym))
    body = response.json()
    assert len(body) == n_recommendations
    assert all(item["explanation"]["reason_status"] == "under_review" for item in body)


def test_customer_detail_lists_usable_concepts_highest_first(client):
    """Return the customer's usable, active concepts with their 90% intervals, highest score first."""
    # given
    customer = CustomerFactory()
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Garden"), score=0.4, low=0.3, high=0.5)
    CustomerConceptFactory(
        customer=customer, concept=ConceptFactory(name="Home décor"), score=0.82, low=0.75, high=0.88
    )
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Untrained", usable=False), score=0.9)
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Retired", is_active=False), score=0.95)
    CustomerConceptFactory(concept=ConceptFactory(name="Someone else's"), score=0.99)
    # when
    body = client.get(customer_url(customer.pseudonym)).json()
    # then
    assert body["concepts"] == [
        {"name": "Home décor", "score": 0.82, "low": 0.75, "high": 0.88, "as_fact": True},
        {"name": "Garden", "score": 0.4, "low": 0.3, "high": 0.5, "as_fact": True},
    ]


def test_customer_detail_without_concept_scores_has_an_empty_list(client):
    """Return concepts [] for a customer that has not been scored."""
    # given
    customer = CustomerFactory()
    # when
    body = client.get(customer_url(customer.pseudonym)).json()
    # then
    assert body["concepts"] == []


@pytest.mark.parametrize("n_concepts", [1, 8])
def test_customer_detail_with_concepts_query_count_is_constant(client, django_assert_max_num_queries, n_concepts):
    """Fetch the concept scores with the customer: 3 queries (token, customer, purchases)."""
    # given
    customer = CustomerFactory()
    for _ in range(n_concepts):
        CustomerConceptFactory(customer=customer)
    PurchaseFactory(customer=customer)
    # when / then
    with django_assert_max_num_queries(3):
        response = client.get(customer_url(customer.pseudonym))
    assert len(response.json()["concepts"]) == n_concepts


def test_customer_list_counts_explained_recommendations(client):
    """Count only the active batch's recommendations with a generated explanation."""
    # given
    customer = CustomerFactory()
    ExplanationFactory.create_batch(2, recommendation__customer=customer)
    ExplanationFactory(recommendation__customer=customer, status=Explanation.Status.FAILED)
    RecommendationFactory(customer=customer)
    superseded = RecommendationBatchFactory(status=RecommendationBatch.Status.SUPERSEDED)
    ExplanationFactory(recommendation=RecommendationFactory(customer=customer, batch=superseded))
    # when
    item = client.get(CUSTOMERS_URL).json()["results"][0]
    # then
    assert (item["recommendation_count"], item["explained_count"]) == (4, 2)


def test_schema_documents_explanations_and_concepts(api_client):
    """Describe the explanation of a recommendation and the customer's concepts as typed components."""
    # when
    components = api_client.get("/api/schema/", {"format": "json"}).json()["components"]["schemas"]
    # then
    explanation = components["Explanation"]["properties"]
    assert set(explanation) == {
        "status", "reason", "reason_status", "template_text", "evidence", "necessity", "concepts",
        "word_attributions", "consistency", "confidence", "confidence_band", "confidence_meaning", "flags",
        "versions", "generated_at",
    }  # fmt: skip
    assert explanation["reason"]["nullable"] is True
    assert components["ReasonStatusEnum"]["enum"] == [
        "visible",
        "under_review",
        "not_shown",
        "from_evidence",
        "unavailable",
    ]
    assert explanation["evidence"]["items"] == {"$ref": "#/components/schemas/EvidenceRow"}
    assert set(components["Necessity"]["properties"]) >= {"removed", "drops_out", "new_rank", "top_n"}
    assert components["Recommendation"]["properties"]["explanation"]["nullable"] is True
    assert components["CustomerDetail"]["properties"]["concepts"]["items"] == {
        "$ref": "#/components/schemas/CustomerConcept"
    }
    assert set(components["CustomerConcept"]["properties"]) == {"name", "score", "low", "high", "as_fact"}


def test_customers_are_read_through_the_scoping_hook(client, monkeypatch):
    """Route list, detail and recommendations through customer_queryset_for."""
    # given: a scoping hook that hides every customer
    customer = CustomerFactory()
    monkeypatch.setattr("accounts.selectors.customer_queryset_for", lambda user: Customer.objects.none())
    # when / then
    assert client.get(CUSTOMERS_URL).json()["count"] == 0
    assert client.get(customer_url(customer.pseudonym)).status_code == 404
    assert client.get(recommendations_url(customer.pseudonym)).status_code == 404
