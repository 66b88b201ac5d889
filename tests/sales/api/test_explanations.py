"""Sales API: each recommendation's explanation as each role may see it, concepts, the schema and scoping."""

from __future__ import annotations

import pytest
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
from tests.sales.api.support import CUSTOMERS_URL, customer_url, recommendations_url

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
    pytest.mark.usefixtures("every_user_holds_every_customer"),  # account scoping is tested in tests/accounts
]


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
