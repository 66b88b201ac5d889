"""Customer descriptions: the customer's vector in words, checked, reviewed, shown to sales once approved."""

import pytest
from django.test import override_settings
from django.urls import reverse

from core.models import AuditEvent
from explanations.ml import elm
from explanations.models import CustomerDescription
from explanations.selectors import customer_description_for
from explanations.services import descriptions
from recommendations.models import Customer
from tests.factories import UserFactory, assign
from tests.shop import build_shop

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    """Give a small shop whose customers are embedded (no recommendations needed)."""
    from recommendations.models import Product
    from recommendations.services import embeddings

    products, customers = build_shop()
    embeddings.products_embed(product_ids=list(Product.objects.values_list("id", flat=True)))
    embeddings.customers_embed(customer_ids=[c.pk for c in customers])
    return products, [Customer.objects.get(pk=c.pk) for c in customers]


@pytest.fixture
def no_adapter(tmp_path):
    """Point the adapter directory at an empty folder (no trained adapter)."""
    elm.get_adapter.cache_clear()
    with override_settings(ELM_ADAPTER_DIR=tmp_path / "none"):
        yield
    elm.get_adapter.cache_clear()


def test_without_an_adapter_the_reference_profile_is_used_and_labelled(shop, no_adapter):
    """Describe customers from their purchase facts, measure SC, and queue them for review."""
    # Given embedded customers and no trained adapter
    _, customers = shop
    ids = [c.pk for c in customers[:3]]
    # When they are described
    assert descriptions.customer_descriptions_generate(customer_ids=ids) == 3
    # Then each has a template description equal to its reference text, with its SC, pending review
    rows = CustomerDescription.objects.filter(customer_id__in=ids)
    assert rows.count() == 3
    for row in rows:
        assert row.method == CustomerDescription.Method.TEMPLATE
        assert row.text == row.reference_text and row.text
        assert -1 <= row.consistency <= 1 and row.consistency == pytest.approx(row.reference_consistency)
        assert row.status == CustomerDescription.Status.PENDING_REVIEW
        assert row.versions["customer_input_hash"] == row.customer.embedding_input_hash


def test_describing_again_replaces_and_only_outdated_customers_are_planned(shop, no_adapter):
    """Upsert by customer, and plan only customers without a description from their current vector."""
    # Given every customer described once, and one approved
    _, customers = shop
    ids = [c.pk for c in customers]
    descriptions.customer_descriptions_generate(customer_ids=ids)
    first = CustomerDescription.objects.get(customer=customers[0])
    descriptions.customer_description_review(description=first, reviewer=UserFactory(), action="approve")
    # When nothing changed, nothing is planned
    assert descriptions.customers_to_describe() == []
    # When one customer's vector input changes, only that customer is planned
    Customer.objects.filter(pk=customers[0].pk).update(embedding_input_hash="changed")
    assert descriptions.customers_to_describe() == [customers[0].pk]
    # And describing it again replaces its row (no duplicate) and sends it back to review
    descriptions.customer_descriptions_generate(customer_ids=[customers[0].pk])
    assert CustomerDescription.objects.filter(customer=customers[0]).count() == 1
    assert CustomerDescription.objects.get(customer=customers[0]).status == CustomerDescription.Status.PENDING_REVIEW


def test_review_writes_an_audit_row_and_refuses_a_second_decision(shop, no_adapter):
    """Approve once with an audit event in the same transaction; a second action is refused."""
    # Given a pending description and a reviewer
    _, customers = shop
    descriptions.customer_descriptions_generate(customer_ids=[customers[0].pk])
    description = CustomerDescription.objects.get(customer=customers[0])
    reviewer = UserFactory(groups=["reviewer"])
    # When the reviewer approves it
    done = descriptions.customer_description_review(description=description, reviewer=reviewer, action="approve")
    # Then it is approved by them, with one audit event
    assert done.status == CustomerDescription.Status.APPROVED and done.reviewed_by == reviewer
    event = AuditEvent.objects.get(action="customer_description.approve")
    assert event.actor == reviewer and event.detail["to"] == "approved"
    # And a later reject fails without writing anything
    with pytest.raises(descriptions.DescriptionReviewError, match="approved"):
        descriptions.customer_description_review(description=description, reviewer=reviewer, action="reject")
    assert AuditEvent.objects.filter(action__startswith="customer_description.").count() == 1


def test_sales_read_only_approved_descriptions(shop, no_adapter):
    """Hide a pending description's text from sales but not from reviewers."""
    # Given a pending description of a customer in a sales person's book
    _, customers = shop
    descriptions.customer_descriptions_generate(customer_ids=[customers[0].pk])
    sales, reviewer = UserFactory(groups=["sales"]), UserFactory(groups=["reviewer"])
    assign(sales, customers[0])
    # Then only the reviewer may read it while it is pending
    assert customer_description_for(user=sales, customer=customers[0])[1] is False
    assert customer_description_for(user=reviewer, customer=customers[0])[1] is True
    # And once approved, sales read it too
    description = CustomerDescription.objects.get(customer=customers[0])
    descriptions.customer_description_review(description=description, reviewer=reviewer, action="approve")
    assert customer_description_for(user=sales, customer=customers[0])[1] is True


def test_review_buttons_work_for_reviewers_only(shop, no_adapter, client):
    """Let a reviewer approve from the customer page; refuse sales and unknown actions."""
    # Given a pending description
    _, customers = shop
    descriptions.customer_descriptions_generate(customer_ids=[customers[0].pk])
    pseudonym = customers[0].pseudonym
    url = reverse("customer-description-action", args=[pseudonym, "approve"])
    sales = UserFactory(groups=["sales"])
    assign(sales, customers[0])
    # When sales post the approval, it is forbidden
    client.force_login(sales)
    assert client.post(url).status_code == 403
    # When a reviewer posts an unknown action, it is not found; the approval redirects to the customer
    client.force_login(UserFactory(groups=["reviewer"]))
    assert client.post(reverse("customer-description-action", args=[pseudonym, "publish"])).status_code == 404
    response = client.post(url)
    assert response.status_code == 302 and response.url == reverse("customer-detail", args=[pseudonym])
    assert CustomerDescription.objects.get(customer=customers[0]).status == CustomerDescription.Status.APPROVED


@pytest.mark.slow
@override_settings(ELM_SIG_STEPS=4)
def test_with_an_adapter_the_elm_writes_from_the_vector_and_facts(shop, tmp_path, model_and_tokenizer):
    """Decode the customer's soft tokens with its facts, and record the adapter that did it."""
    from tests.explanations.test_elm import small_artifact
    from tests.explanations.test_explain import READS

    # Given a (small, untrained) adapter in use, recorded as having met the held-out goals
    model, _ = model_and_tokenizer
    artifact = small_artifact(model)
    artifact.metrics["evaluation"] = READS
    elm.save_artifact(artifact, tmp_path)
    _, customers = shop
    elm.get_adapter.cache_clear()
    try:
        with override_settings(ELM_ADAPTER_DIR=tmp_path):
            # When a customer is described
            descriptions.customer_descriptions_generate(customer_ids=[customers[1].pk], max_new_tokens=16)
    finally:
        elm.get_adapter.cache_clear()
    # Then the text comes from the ELM, with its versions, SC and checks stored
    row = CustomerDescription.objects.get(customer=customers[1])
    assert row.method == CustomerDescription.Method.ELM_GROUNDED
    assert row.versions["adapter"] == artifact.version and row.versions["lm"]
    assert row.text and -1 <= row.consistency <= 1
    assert isinstance(row.flags, list)


def test_an_adapter_that_does_not_read_vectors_leaves_descriptions_to_the_facts_and_the_page_says_so(
    shop, monkeypatch, client
):
    """An adapter below the held-out goals writes nothing; the customer page says the text is from purchase facts."""
    from types import SimpleNamespace

    from tests.explanations.test_explain import GUESSES

    # Given an adapter whose held-out evaluation missed a goal
    adapter = SimpleNamespace(metrics={"evaluation": GUESSES}, version="elm-guesses")
    monkeypatch.setattr(elm, "get_adapter", lambda: adapter)
    _, customers = shop
    # When a customer is described
    descriptions.customer_descriptions_generate(customer_ids=[customers[0].pk])
    # Then the description is the purchase-facts text, without the adapter
    row = CustomerDescription.objects.get(customer=customers[0])
    assert row.method == CustomerDescription.Method.TEMPLATE and row.text == row.reference_text
    assert row.versions["adapter"] == ""
    # And the customer page says plainly where the words come from
    reviewer = UserFactory(groups=["reviewer"])
    client.force_login(reviewer)
    page = client.get(reverse("customer-detail", args=[customers[0].pseudonym])).content.decode()
    assert "purchase facts: no ELM adapter reads customer vectors reliably yet." in page


def test_customer_page_shows_the_approved_text_to_sales_without_the_checks(shop, no_adapter, client):
    """Show sales the approved description without its flags; reviewers see the flags too."""
    # Given an approved description that carries a (warning) flag
    _, customers = shop
    descriptions.customer_descriptions_generate(customer_ids=[customers[0].pk])
    description = CustomerDescription.objects.get(customer=customers[0])
    reviewer = UserFactory(groups=["reviewer"])
    descriptions.customer_description_review(description=description, reviewer=reviewer, action="approve")
    CustomerDescription.objects.filter(pk=description.pk).update(
        flags=[{"code": "too_long", "message": "Long.", "start": 0, "end": 0, "text": "", "severity": "warning"}]
    )
    sales = UserFactory(groups=["sales"])
    assign(sales, customers[0])
    url = reverse("customer-detail", args=[customers[0].pseudonym])
    # When sales open the customer page, they read the text but not the flag
    client.force_login(sales)
    page = client.get(url).content.decode()
    assert description.text[:40] in page
    assert "too_long" not in page
    # When the reviewer opens it, the flag is there
    client.force_login(reviewer)
    assert "too_long" in client.get(url).content.decode()


def test_numbers_from_the_facts_are_not_flagged_but_invented_ones_are(shop, no_adapter):
    """Accept the order counts the LM was given, flag a number that is in no fact."""
    from explanations.ml.profiles import facts_prompt

    # Given a customer's facts and reference text
    _, customers = shop
    facts = descriptions._facts_for([customers[0].pk])[customers[0].pk]
    reference = "A reference text."
    given = facts_prompt(facts)
    count = str(facts.top_products[0][1])
    # When a text repeats an order count from the facts, and another invents a number
    faithful = descriptions._checks(f"Bought it in {count} orders.", facts, reference, customers[0].pseudonym)
    invented = descriptions._checks("Bought it in 987 orders.", facts, reference, customers[0].pseudonym)
    # Then only the invented number is flagged
    assert count in given
    assert not [f for f in faithful if f["code"] == "hallucinated_entity:number"]
    assert [f["text"] for f in invented if f["code"] == "hallucinated_entity:number"] == ["987"]
