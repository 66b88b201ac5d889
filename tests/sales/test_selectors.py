"""Sales selectors: the customer list (filters, ordering, counts), one customer, active recommendations."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone, translation

from explanations.models import Explanation
from jobs.models import Job
from recommendations.models import Customer, RecommendationBatch
from sales import selectors
from tests.factories import (
    ConceptFactory,
    CustomerConceptFactory,
    CustomerFactory,
    ExplanationFactory,
    PurchaseFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
    UserFactory,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.usefixtures("every_user_holds_every_customer"),  # account scoping is tested in tests/accounts
]


@pytest.fixture
def user():
    return UserFactory()


def test_customer_list_filters_by_region_and_pseudonym_prefix(user):
    """Keep only customers of the region whose pseudonym starts with the (case-folded) prefix."""
    # given
    CustomerFactory(pseudonym="abc0000000000001", region="British Isles")
    CustomerFactory(pseudonym="abc0000000000002", region="Western Europe")
    CustomerFactory(pseudonym="abd0000000000003", region="British Isles")
    # when
    found = selectors.customer_list(user=user, region="British Isles", search=" ABC ")
    # then
    assert [c.pseudonym for c in found] == ["abc0000000000001"]


@pytest.mark.parametrize("search", ["xyz", "abc%", "a" * 65])
def test_customer_list_rejects_a_search_that_cannot_match(user, search):
    """Raise InvalidCustomerQuery for non-hex or over-long pseudonym prefixes."""
    # when / then
    with pytest.raises(selectors.InvalidCustomerQuery) as exc_info:
        selectors.customer_list(user=user, search=search)
    assert exc_info.value.field == "pseudonym"


def test_customer_list_rejects_an_ordering_outside_the_allow_list(user):
    """Raise InvalidCustomerQuery naming the allowed orderings for any other sort key."""
    # when / then
    with pytest.raises(selectors.InvalidCustomerQuery) as exc_info:
        selectors.customer_list(user=user, ordering="embedding")
    assert exc_info.value.field == "ordering"
    assert "-revenue" in exc_info.value.message


@pytest.mark.parametrize(
    ("ordering", "expected"),
    [
        ("revenue", ["low", "mid", "high"]),
        ("-revenue", ["high", "mid", "low"]),
        ("order_count", ["high", "low", "mid"]),
        ("-order_count", ["mid", "low", "high"]),
    ],
)
def test_customer_list_orders_by_allowed_keys(user, ordering, expected):
    """Sort ascending or descending by the requested allowed key."""
    # given
    names = {}
    for name, revenue, orders in [("low", "1.00", 5), ("mid", "50.00", 9), ("high", "900.00", 1)]:
        names[CustomerFactory(revenue=Decimal(revenue), order_count=orders).pseudonym] = name
    # when
    found = selectors.customer_list(user=user, ordering=ordering)
    # then
    assert [names[c.pseudonym] for c in found] == expected


def test_customer_list_defaults_to_most_recent_purchase_first_with_never_purchased_last(user):
    """Sort by last purchase, newest first, customers without purchases at the end."""
    # given
    now = timezone.now()
    old = CustomerFactory(last_purchase_at=now - dt.timedelta(days=300))
    never = CustomerFactory(last_purchase_at=None, first_purchase_at=None)
    new = CustomerFactory(last_purchase_at=now - dt.timedelta(days=1))
    # when
    found = list(selectors.customer_list(user=user))
    # then
    assert found == [new, old, never]


def test_customer_list_counts_only_recommendations_of_the_active_batch(user):
    """Annotate recommendation_count from the active batch, ignoring superseded ones."""
    # given
    customer = CustomerFactory()
    idle = CustomerFactory()
    RecommendationFactory.create_batch(3, customer=customer)
    old = RecommendationBatchFactory(status=RecommendationBatch.Status.SUPERSEDED)
    RecommendationFactory.create_batch(5, customer=customer, batch=old)
    RecommendationFactory.create_batch(2, customer=idle, batch=old)
    # when
    counts = {c.pseudonym: c.recommendation_count for c in selectors.customer_list(user=user)}
    # then
    assert counts == {customer.pseudonym: 3, idle.pseudonym: 0}


def test_customer_list_page_takes_one_query_however_many_recommendations(user, django_assert_num_queries):
    """Fetch a page of customers with their counts in a single query (no N+1)."""
    # given
    for customer in CustomerFactory.create_batch(20):
        RecommendationFactory.create_batch(2, customer=customer)
    # when / then
    with django_assert_num_queries(1):
        page = list(selectors.customer_list(user=user)[:50])
    assert len(page) == 20
    assert {c.recommendation_count for c in page} == {2}


def test_customer_get_finds_a_customer_case_insensitively(user):
    """Return the customer for its pseudonym typed in upper case."""
    # given
    customer = CustomerFactory(pseudonym="00ff00ff00ff00ff")
    # when
    found = selectors.customer_get(user=user, pseudonym="00FF00FF00FF00FF")
    # then
    assert found == customer


def test_customer_get_raises_for_an_unknown_pseudonym(user):
    """Raise Customer.DoesNotExist when no customer has the pseudonym."""
    # when / then
    with pytest.raises(Customer.DoesNotExist):
        selectors.customer_get(user=user, pseudonym="0000000000000000")


def test_customer_get_hides_customers_from_anonymous_users():
    """Raise Customer.DoesNotExist for anonymous users, through the scoping hook."""
    # given
    customer = CustomerFactory()
    # when / then
    with pytest.raises(Customer.DoesNotExist):
        selectors.customer_get(user=AnonymousUser(), pseudonym=customer.pseudonym)


def test_recommendations_for_customer_returns_the_active_batch_in_rank_order(user, django_assert_num_queries):
    """Return active-batch recommendations best rank first, products loaded in the same query."""
    # given
    customer = CustomerFactory()
    for rank in (3, 1, 2):
        RecommendationFactory(customer=customer, rank=rank, score=1 - rank / 10)
    running = RecommendationBatchFactory(status=RecommendationBatch.Status.RUNNING)
    superseded = RecommendationBatchFactory(status=RecommendationBatch.Status.SUPERSEDED)
    RecommendationFactory(customer=customer, batch=running, rank=1)
    RecommendationFactory(customer=customer, batch=superseded, rank=1)
    RecommendationFactory(rank=1)  # another customer's
    # when
    with django_assert_num_queries(1):
        recommendations = selectors.recommendations_for_customer(user=user, customer=customer)
        descriptions = [r.product.description for r in recommendations]
    # then
    assert [r.rank for r in recommendations] == [1, 2, 3]
    assert all(r.batch.status == RecommendationBatch.Status.ACTIVE for r in recommendations)
    assert len(descriptions) == 3


def test_recommendations_for_customer_is_empty_without_an_active_batch(user):
    """Return nothing while no batch is active, even if older batches exist."""
    # given
    customer = CustomerFactory()
    RecommendationFactory(
        customer=customer, batch=RecommendationBatchFactory(status=RecommendationBatch.Status.SUPERSEDED)
    )
    # when
    recommendations = selectors.recommendations_for_customer(user=user, customer=customer)
    # then
    assert recommendations == []


def test_recommendations_for_customer_loads_explanations_in_the_same_query(user, django_assert_num_queries):
    """Return explanations (or None) with the recommendations in one query."""
    # given
    customer = CustomerFactory()
    explained = ExplanationFactory(recommendation=RecommendationFactory(customer=customer, rank=1))
    RecommendationFactory(customer=customer, rank=2)
    # when
    with django_assert_num_queries(1):
        recommendations = selectors.recommendations_for_customer(user=user, customer=customer)
        explanations = [selectors.explanation_or_none(r) for r in recommendations]
        top_n = [r.batch.params for r in recommendations]
    # then
    assert explanations == [explained, None]
    assert len(top_n) == 2


def test_customer_get_with_concepts_returns_usable_active_scores_highest_first(user, django_assert_num_queries):
    """Annotate the usable, active concept scores of this customer only, best first, in the same query."""
    # given
    customer = CustomerFactory()
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Garden"), score=0.4, low=0.3, high=0.5)
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Home décor"), score=0.8, low=0.7, high=0.9)
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Weak", usable=False), score=0.9)
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Off", is_active=False), score=0.9)
    CustomerConceptFactory(concept=ConceptFactory(name="Other customer's"), score=0.99)
    # when (seed-phrase concepts: no rule to check on the customer's orders)
    with django_assert_num_queries(1), translation.override("en"):
        found = selectors.customer_get(user=user, pseudonym=customer.pseudonym, with_concepts=True)
    # then
    assert [(c["name"], c["score"], c["low"], c["high"]) for c in found.concept_scores] == [
        ("Home décor", 0.8, 0.7, 0.9),
        ("Garden", 0.4, 0.3, 0.5),
    ]
    assert found.concept_scores[0]["description"] == "Customers who match home décor."
    assert found.concept_scores[0]["key"] == "Home décor"


def test_customer_concepts_are_named_in_the_active_language(user):
    """A Japanese reader gets the Japanese name and description where an admin wrote one, else the English."""
    # given one concept named in Japanese (the default concepts are) and one that is not
    customer = CustomerFactory()
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Home décor"), score=0.8)
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Weekend", name_ja=""), score=0.4)
    # when
    with translation.override("ja"):
        found = selectors.customer_get(user=user, pseudonym=customer.pseudonym, with_concepts=True)
    # then
    assert [(c["key"], c["name"]) for c in found.concept_scores] == [
        ("Home décor", "インテリア雑貨"),
        ("Weekend", "Weekend"),
    ]
    assert found.concept_scores[0]["description"].startswith("ランタン")


@pytest.mark.parametrize(("days_before_last_sale", "as_fact"), [(0, False), (200, True)])
def test_a_lapsed_chip_states_the_fact_only_when_the_customer_has_not_ordered_for_90_days(
    user, days_before_last_sale, as_fact
):
    """A concept whose description states a fact ("no order in the last 90 days") is shown as that fact only
    when the customer's own orders agree; otherwise as a similarity to the profile."""
    # given a customer scored high on Lapsed, whose last order is this many days before the data's last sale
    from explanations.models import Concept

    now = timezone.now()
    customer = CustomerFactory()
    PurchaseFactory(occurred_at=now)  # another customer's sale: the data's reference time
    PurchaseFactory(customer=customer, occurred_at=now - dt.timedelta(days=days_before_last_sale))
    lapsed = ConceptFactory(name="Lapsed", rule=Concept.Rule.LAPSED, description="No order in the last 90 days.")
    CustomerConceptFactory(customer=customer, concept=lapsed, score=0.52, low=0.4, high=0.6)
    # when
    found = selectors.customer_get(user=user, pseudonym=customer.pseudonym, with_concepts=True)
    # then
    assert [c["as_fact"] for c in found.concept_scores] == [as_fact]


def test_customer_list_counts_generated_explanations_of_the_active_batch(user):
    """Annotate explained_count: active-batch recommendations with a generated explanation."""
    # given
    customer = CustomerFactory()
    ExplanationFactory.create_batch(2, recommendation__customer=customer)
    ExplanationFactory(recommendation__customer=customer, status=Explanation.Status.FAILED)
    old = RecommendationBatchFactory(status=RecommendationBatch.Status.SUPERSEDED)
    ExplanationFactory(recommendation=RecommendationFactory(customer=customer, batch=old))
    # when
    found = selectors.customer_list(user=user).get(pk=customer.pk)
    # then
    assert (found.recommendation_count, found.explained_count) == (3, 2)


def test_explain_job_running_returns_the_newest_running_explain_job(user):
    """Return the latest running explain job, ignoring other kinds and finished jobs."""
    # given
    Job.objects.create(kind="explain", status=Job.Status.SUCCEEDED)
    Job.objects.create(kind="recommend", status=Job.Status.RUNNING)
    Job.objects.create(kind="explain", status=Job.Status.RUNNING, items_total=4, items_done=4)
    newer = Job.objects.create(kind="explain", status=Job.Status.RUNNING, items_total=8, items_done=3)
    # when
    found = selectors.explain_job_running(user=user)
    # then
    assert found == newer
    assert (found.items_done, found.items_total) == (3, 8)


def test_explain_job_running_is_none_without_one(user):
    """Return None when no explain job is running."""
    # given
    Job.objects.create(kind="explain", status=Job.Status.QUEUED)
    # when / then
    assert selectors.explain_job_running(user=user) is None
