"""Fact sheets for a whole shard: the same sheets as one recommendation at a time, with a constant number
of queries."""

import copy
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from explanations.models import Concept
from explanations.services import explain
from explanations.services.sheets import reason_sheet, reason_sheets_batch
from recommendations.models import Customer, Product, Purchase, Recommendation
from tests.factories import ConceptFactory, CustomerFactory, PurchaseFactory
from tests.shop import build_shop, embed_and_recommend

pytestmark = pytest.mark.django_db

CONCEPTS = ["Sheet lapsed", "Sheet seasonal", "Sheet frequent", "Sheet seed", "Sheet unknown"]


@pytest.fixture
def facts_list():
    """Facts of every recommendation of a shop with re-orders, a product bought again, a customer who buys
    everything (co-purchases) and shared concepts of every kind of rule (one with no concept row)."""
    build_shop(customers=8)
    batch = embed_and_recommend()
    now = timezone.now()
    for customer in Customer.objects.all()[:4]:
        for purchase in Purchase.objects.filter(customer=customer):
            PurchaseFactory(customer=customer, product=purchase.product, occurred_at=now - timedelta(days=20))
    everyone = CustomerFactory()
    for product in Product.objects.filter(is_merchandise=True):
        PurchaseFactory(customer=everyone, product=product)
    first = Recommendation.objects.filter(batch=batch).order_by("customer_id", "rank").first()
    PurchaseFactory(customer=first.customer, product=first.product, occurred_at=now - timedelta(days=45))
    ConceptFactory(name="Sheet lapsed", rule=Concept.Rule.LAPSED, threshold=0.5)
    ConceptFactory(name="Sheet seasonal", rule=Concept.Rule.SEASONAL, threshold=0.6)
    ConceptFactory(name="Sheet frequent", rule=Concept.Rule.FREQUENT, threshold=0)
    ConceptFactory(name="Sheet seed", rule=Concept.Rule.SEED_PHRASES)
    recs = Recommendation.objects.filter(batch=batch).select_related("customer", "product", "batch")
    out = []
    for k, rec in enumerate(recs.order_by("customer_id", "rank")):
        facts = explain.explanation_facts(recommendation=rec)
        # Rotate which concepts are shared, so one customer's recommendations ask for different names.
        facts.concepts = [{"concept": CONCEPTS[(k + j) % len(CONCEPTS)], "shared": j < k % 3} for j in range(3)]
        out.append(facts)
    return out


def test_batch_sheets_equal_the_one_recommendation_sheets(facts_list):
    """Every field of every sheet is the same as reason_sheet builds for that recommendation alone."""
    # Given the facts of many recommendations, twice (a sheet is kept on its facts once built)
    single, batch = copy.deepcopy(facts_list), copy.deepcopy(facts_list)
    # When the sheets are built one at a time and for the whole list
    expected = [reason_sheet(f) for f in single]
    found = reason_sheets_batch(batch)
    # Then they are equal, and the list covers re-orders, co-purchases and concepts that hold or not
    assert found == expected
    assert any(s["product"]["orders"] for s in found)
    assert any(s["co_purchase"] for s in found)
    assert any(s["evidence"] and s["evidence"][0]["reorder_days"] for s in found)
    assert {c["holds"] for s in found for c in s["concepts"]} == {True, False, None}
    # And each facts keeps its sheet, as reason_sheet does
    assert [reason_sheet(f) for f in batch] == expected


def test_the_number_of_queries_does_not_grow_with_the_recommendations(facts_list, django_assert_max_num_queries):
    """A whole shard costs the queries of two recommendations."""
    # Given the queries of the sheets of two recommendations (after the concept cut-offs are cached)
    reason_sheets_batch(copy.deepcopy(facts_list[:2]))
    with CaptureQueriesContext(connection) as two:
        reason_sheets_batch(copy.deepcopy(facts_list[1:3]))
    assert len(facts_list) > 10
    # When the sheets of all of them are built, then no more queries are made
    with django_assert_max_num_queries(len(two.captured_queries)):
        reason_sheets_batch(copy.deepcopy(facts_list))
