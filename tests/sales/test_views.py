"""Sales pages: the customer list and the customer page with its recommendation cards."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from explanations.models import Explanation
from jobs.models import Job
from recommendations.models import RecommendationBatch
from sales.forms import SORT_CHOICES
from sales.selectors import CUSTOMER_ORDERINGS
from sales.views import CUSTOMERS_PER_PAGE
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

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

LIST_URL = reverse("customer-list")


@pytest.fixture
def user():
    """A manager: reads every customer (sales people see only their book, tested with sign_in_as)."""
    return UserFactory(username="alice", groups=["manager"])


@pytest.fixture
def signed_in(client, user):
    client.force_login(user)
    return client


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


def test_customer_list_shows_customers_with_their_facts(signed_in, user):
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
