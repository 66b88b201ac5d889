"""Sales pages: explanations on the customer page as each role may see them (evidence, reason, flags, confidence)."""

from __future__ import annotations

import pytest

from explanations.models import Explanation
from jobs.models import Job
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
    assign,
)
from tests.sales.test_views import detail_url

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]


# --------------------------------------------------------------------------- explanations on the customer page

FLAG = {
    "code": "hallucinated_entity",
    "message": "“vintage” is not in the evidence for this recommendation.",
    "start": 2,
    "end": 9,
    "text": "vintage",
    "severity": "warning",
}
REASON = "A vintage lantern that goes with their heart-shaped T-light holders."


def sign_in_as(client, *, book=(), **user_kwargs):
    """Sign in a new user; ``book`` lists the customers assigned to them (what a sales person sees)."""
    user = UserFactory(**user_kwargs)
    assign(user, *book)
    client.force_login(user)
    return client


@pytest.fixture
def explained():
    """A customer with one explained recommendation (flagged reason) and a concept score."""
    customer = CustomerFactory(pseudonym="ab00000000000042")
    CustomerConceptFactory(
        customer=customer, concept=ConceptFactory(name="Home décor"), score=0.82, low=0.75, high=0.88
    )
    rec = RecommendationFactory(
        customer=customer, rank=1, score=0.5, product=ProductFactory(description="WHITE METAL LANTERN")
    )
    return ExplanationFactory(recommendation=rec, reason_text=REASON, flags=[FLAG])


def test_customer_page_shows_the_explanation_evidence_and_highlights(client, explained):
    """Render evidence shares, necessity, confidence, word highlights, concept chips and the generated note."""
    # given
    page = sign_in_as(client, groups=["reviewer"])
    # when
    response = page.get(detail_url(explained.recommendation.customer.pseudonym))
    # then
    html = response.content.decode()
    assert response.status_code == 200
    # concept chip row with the 90% interval
    assert '<span class="chip__name">Home décor</span>' in html
    assert '<span class="chip__score">0.82</span>' in html
    assert "(0.75–0.88)" in html
    # evidence: each purchase's share of the score (0.15 and 0.10 of 0.5), the rest aggregated
    assert "WHITE HANGING HEART T-LIGHT HOLDER" in html
    assert '<span class="evidence__value">30.0%</span>' in html
    assert '<span class="evidence__value">20.0%</span>' in html
    assert "12 other purchases" in html
    assert 'style="width: 50.00%"' in html
    # necessity, confidence and the generated note
    assert "Without the top 2 purchases this item would still rank #1." in html
    assert "<strong>12%</strong> chance of purchase within 90 days" in html
    assert "Explanation generated" in html
    # SIG highlighting: LANTERN has 1/6 of the attribution and lowers the match (negative share)
    assert 'class="word word--pos" style="--w: 1.000" title="50% of the attribution">WHITE' in html
    assert 'class="word word--neg" style="--w: 0.333" title="-17% of the attribution">LANTERN' in html
    assert '<span class="visually-hidden"> (-17%)</span>' in html
    # shared concepts
    assert '<li class="chip chip--shared">' in html


def test_customer_page_hides_the_reason_and_flags_from_sales_users(client, explained):
    """Show "Reason under review" instead of the reason to sales users; evidence and confidence stay."""
    # given
    page = sign_in_as(client, groups=["sales"], book=[explained.recommendation.customer])
    # when
    html = page.get(detail_url(explained.recommendation.customer.pseudonym)).content.decode()
    # then
    assert "Reason under review" in html
    assert REASON not in html
    assert "heart-shaped" not in html
    assert 'class="flag ' not in html
    assert "is not in the evidence" not in html
    assert "Semantic consistency" not in html
    assert '<span class="evidence__value">30.0%</span>' in html
    assert "chance of purchase within 90 days" in html
    assert 'class="word word--pos"' in html
    assert '<span class="chip__name">Home décor</span>' in html


@pytest.mark.parametrize("user_kwargs", [{"groups": ["reviewer"]}, {"groups": ["manager"]}, {"is_superuser": True}])
def test_customer_page_shows_reason_and_flags_to_reviewers(client, explained, user_kwargs):
    """Show the reason with its flagged span marked, and the flags as warning badges."""
    # given
    page = sign_in_as(client, **user_kwargs)
    # when
    html = page.get(detail_url(explained.recommendation.customer.pseudonym)).content.decode()
    # then
    assert "Reason under review" not in html
    assert 'A <mark class="reason__flagged reason__flagged--warning"' in html
    assert ">vintage<span" in html
    assert "lantern that goes with their heart-shaped T-light holders." in html
    assert '<li class="flag flag--warning">' in html
    assert "Not in the evidence" in html
    assert "Semantic consistency 0.71" in html


def test_customer_page_ignores_flag_offsets_that_do_not_match_the_reason(client, explained):
    """Show the reason unmarked when a flag's offsets point elsewhere, keeping the badge."""
    # given
    explained.flags = [{**FLAG, "start": 0, "end": 5}]
    explained.save()
    page = sign_in_as(client, is_superuser=True)
    # when
    html = page.get(detail_url(explained.recommendation.customer.pseudonym)).content.decode()
    # then
    assert "<mark" not in html
    assert REASON in html
    assert '<li class="flag flag--warning">' in html


def test_customer_page_states_when_the_item_needs_its_top_purchases(signed_in):
    """Say the item would drop out of the top N without its top purchases."""
    # given
    explanation = ExplanationFactory(
        recommendation__batch=RecommendationBatchFactory(params={"top_n": 5}),
        necessity={"removed": [1, 2, 3], "drops_out": True, "new_rank": None, "counterfactual_score": 0.1},
    )
    # when
    html = signed_in.get(detail_url(explanation.recommendation.customer.pseudonym)).content.decode()
    # then
    assert "Without the top 3 purchases this item would drop out of the top 5." in html


def test_customer_page_states_a_changed_rank(signed_in):
    """Say which rank the item would take without its top purchases."""
    # given
    explanation = ExplanationFactory(
        recommendation__rank=2,
        necessity={"removed": [1], "drops_out": False, "new_rank": 4, "counterfactual_score": 0.3},
    )
    # when
    html = signed_in.get(detail_url(explanation.recommendation.customer.pseudonym)).content.decode()
    # then
    assert "Without the top purchase this item would rank #4 instead of #2." in html


def test_customer_page_says_when_confidence_is_not_calibrated(signed_in):
    """Say "Not calibrated yet" instead of a probability when there is no calibration."""
    # given
    explanation = ExplanationFactory(confidence=None)
    # when
    html = signed_in.get(detail_url(explanation.recommendation.customer.pseudonym)).content.decode()
    # then
    assert "Not calibrated yet" in html
    assert "chance of purchase" not in html


def test_customer_page_shows_small_probabilities_with_one_decimal(signed_in):
    """Show 3.8% rather than 4% for a probability below ten percent."""
    # given
    explanation = ExplanationFactory(confidence=0.0375)
    # when
    html = signed_in.get(detail_url(explanation.recommendation.customer.pseudonym)).content.decode()
    # then
    assert "<strong>3.8%</strong> chance of purchase within 90 days" in html
    assert 'class="confidence__bar" min="0" max="100" value="3.75"' in html


def test_customer_page_shows_pending_and_the_running_explain_job(signed_in):
    """Show "Explanation pending" for unexplained items and the explain job's progress."""
    # given
    customer = CustomerFactory()
    ExplanationFactory(recommendation=RecommendationFactory(customer=customer, rank=1))
    RecommendationFactory(customer=customer, rank=2)
    Job.objects.create(kind="explain", status=Job.Status.RUNNING, items_done=3, items_total=8)
    # when
    html = signed_in.get(detail_url(customer.pseudonym)).content.decode()
    # then
    assert html.count("Explanation pending") == 1
    assert "Explanations are being generated: 3 of 8 done." in html
    assert '<progress max="8" value="3"' in html


def test_customer_page_without_a_running_job_shows_no_progress(signed_in):
    """Show no progress note when no explain job is running."""
    # given
    customer = CustomerFactory()
    RecommendationFactory(customer=customer, rank=1)
    Job.objects.create(kind="explain", status=Job.Status.SUCCEEDED, items_done=8, items_total=8)
    # when
    html = signed_in.get(detail_url(customer.pseudonym)).content.decode()
    # then
    assert "Explanation pending" in html
    assert "Explanations are being generated" not in html


def test_customer_page_says_when_an_explanation_failed(signed_in):
    """Show a failure note, not an empty explanation, for a failed explanation."""
    # given
    explanation = ExplanationFactory(status=Explanation.Status.FAILED, evidence=[], reason_text="")
    # when
    html = signed_in.get(detail_url(explanation.recommendation.customer.pseudonym)).content.decode()
    # then
    assert "The explanation could not be generated" in html
    assert "Based on these past purchases" not in html


def test_a_failed_reason_still_shows_the_measured_numbers(signed_in):
    """When only the reason failed (the numbers pass stored evidence), sales still read the evidence."""
    # given a failed explanation whose numbers exist
    explanation = ExplanationFactory(status=Explanation.Status.FAILED, reason_text="")
    assert explanation.evidence
    # when
    html = signed_in.get(detail_url(explanation.recommendation.customer.pseudonym)).content.decode()
    # then the failure is said and the evidence is shown
    assert "The reason could not be written; it will be retried." in html
    assert "Based on these past purchases" in html
    assert "The explanation could not be generated" not in html


@pytest.mark.parametrize("n_items", [1, 10])
def test_customer_page_with_explanations_query_count_is_constant(client, django_assert_max_num_queries, n_items):
    """Render in 12 queries however many items: session, user, user's roles, customer+concepts,
    recommendations+explanations+exposures, purchases, customer description, exposure assignment (first view
    only) and show count, outcomes, explain job, user's review groups."""
    # given: a sales user; half the items explained, so the job and the role checks both run
    customer = CustomerFactory()
    page = sign_in_as(client, groups=["sales"], book=[customer])
    for concept in ("Garden", "Home décor", "Bulk buyer"):
        CustomerConceptFactory(customer=customer, concept=ConceptFactory(name=concept))
    for rank in range(1, n_items + 1):
        rec = RecommendationFactory(customer=customer, rank=rank)
        if rank % 2:
            ExplanationFactory(recommendation=rec, flags=[FLAG])
        PurchaseFactory(customer=customer)
    # when / then
    with django_assert_max_num_queries(12):
        response = page.get(detail_url(customer.pseudonym))
    html = response.content.decode()
    assert html.count('<meter class="score__bar"') == n_items
    assert html.count("Reason under review") == (n_items + 1) // 2
    assert html.count('<span class="chip__name">') >= 3
