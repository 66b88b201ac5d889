"""The card cache (sales.cache): the page and the API read cards from it until something they show changes."""

from __future__ import annotations

import re
import uuid

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from explanations.models import Explanation
from explanations.services.review import explanation_approve, explanation_edit
from jobs.models import Job
from outcomes.models import Exposure, Outcome
from recommendations.models import RecommendationBatch
from recommendations.services.recommend import recommendation_batch_activate
from sales.cache import (
    CSRF_PLACEHOLDER,
    FORM_TOKEN_PLACEHOLDER,
    PROGRESS_PLACEHOLDER,
    CustomerPage,
    customer_page_fill,
)
from tests.factories import (
    ConceptFactory,
    CustomerConceptFactory,
    CustomerFactory,
    ExplanationFactory,
    ExposureFactory,
    OutcomeFactory,
    ProductFactory,
    PurchaseFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
    UserFactory,
    assign,
)

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

S = Explanation.Status
REASON = "A white lantern that goes with their heart-shaped T-light holders."
EDITED = "A white lantern for the shelf where their T-light holders stand."
# The session is read from the shared cache when there is one (settings: cached_db), else from the database.
SESSION_QUERIES = 0 if settings.SESSION_ENGINE.endswith("cached_db") else 1


def page_url(customer) -> str:
    return reverse("customer-detail", args=[customer.pseudonym])


def api_url(customer) -> str:
    return reverse("api-customer-recommendations", args=[customer.pseudonym])


def book(user, *, n_items: int = 1, status: str = S.PENDING_REVIEW):
    """A customer in ``user``'s book with ``n_items`` explained recommendations already shown once."""
    customer = CustomerFactory()
    assign(user, customer)
    explanations = []
    for rank in range(1, n_items + 1):
        rec = RecommendationFactory(customer=customer, rank=rank)
        explanations.append(ExplanationFactory(recommendation=rec, status=status, reason_text=REASON, flags=[]))
        ExposureFactory(recommendation=rec, arm=Exposure.Arm.EXPLAINED)
    return customer, explanations


def recommendation_reads(queries) -> int:
    """How many of the captured queries read the recommendations themselves (what a cache hit skips)."""
    return sum(1 for q in queries if q["sql"].startswith('SELECT "recommendations_recommendation"."id"'))


@pytest.mark.parametrize("n_items", [1, 8])
def test_a_cached_page_takes_at_most_five_queries_and_reads_no_recommendations(client, n_items):
    """Answer a sales person's repeated page view from the card cache in at most 5 queries, however many cards."""
    # given: a sales person who opened the page once
    sales = UserFactory(groups=["sales"])
    customer, _ = book(sales, n_items=n_items, status=S.APPROVED)
    client.force_login(sales)
    first = client.get(page_url(customer))
    # when
    with CaptureQueriesContext(connection) as captured:
        again = client.get(page_url(customer))
    # then: the user with its roles, the customer with the versions, the exposures' show count (+ the session)
    assert len(captured.captured_queries) <= 5 + SESSION_QUERIES
    assert recommendation_reads(captured.captured_queries) == 0
    assert again.content.decode().count('<meter class="score__bar"') == n_items
    assert first.content.decode().count(REASON) == again.content.decode().count(REASON) == n_items
    assert Exposure.objects.filter(recommendation__customer=customer, show_count=2).count() == n_items


@pytest.mark.parametrize("n_items", [1, 8])
def test_a_cached_api_answer_takes_at_most_five_queries(client, n_items):
    """Answer a repeated recommendations API call from the cache, without reading the recommendations."""
    # given
    sales = UserFactory(groups=["sales"])
    customer, _ = book(sales, n_items=n_items, status=S.APPROVED)
    client.force_login(sales)
    first = client.get(api_url(customer)).json()
    # when
    with CaptureQueriesContext(connection) as captured:
        again = client.get(api_url(customer)).json()
    # then
    assert len(captured.captured_queries) <= 5 + SESSION_QUERIES
    assert recommendation_reads(captured.captured_queries) == 0
    assert again == first
    assert [item["explanation"]["reason"] for item in again] == [REASON] * n_items


@pytest.mark.parametrize("url", [page_url, api_url])
def test_approving_a_reason_shows_it_to_sales_at_once(client, url):
    """A reason approved after the cards were cached is shown on the next view (the page and the API)."""
    # given: sales saw the card while its reason was under review (cached)
    sales = UserFactory(groups=["sales"])
    reviewer = UserFactory(groups=["reviewer"])
    customer, (explanation,) = book(sales)
    client.force_login(sales)
    client.get(url(customer))
    assert REASON not in client.get(url(customer)).content.decode()
    # when
    explanation_approve(user=reviewer, explanation_id=explanation.pk)
    # then
    assert REASON in client.get(url(customer)).content.decode()


@pytest.mark.parametrize("url", [page_url, api_url])
def test_editing_a_reason_shows_the_new_text(client, url):
    """A reviewer's edit replaces the cached text for the next reader."""
    # given: a reviewer read the reason (cached)
    reader = UserFactory(groups=["reviewer"])
    editor = UserFactory(groups=["reviewer"])
    customer, (explanation,) = book(reader)
    client.force_login(reader)
    client.get(url(customer))
    assert REASON in client.get(url(customer)).content.decode()
    # when
    explanation_edit(user=editor, explanation_id=explanation.pk, text=EDITED)
    # then
    body = client.get(url(customer)).content.decode()
    assert EDITED in body
    assert REASON not in body


@pytest.mark.parametrize("url", [page_url, api_url])
def test_a_new_batch_replaces_the_cached_cards(client, url):
    """Once a new batch activates, its recommendations are shown, not the cached ones of the old batch."""
    # given: cards of the active batch were cached
    sales = UserFactory(groups=["sales"])
    customer, _ = book(sales, status=S.APPROVED)
    client.force_login(sales)
    client.get(url(customer))
    old_body = client.get(url(customer)).content.decode()
    new_batch = RecommendationBatchFactory(status=RecommendationBatch.Status.RUNNING)
    new_product = ProductFactory(description="ENAMEL BREAD BIN CREAM")
    RecommendationFactory(customer=customer, batch=new_batch, product=new_product, rank=1)
    assert new_product.description not in old_body
    # when
    recommendation_batch_activate(batch_id=new_batch.pk)
    # then
    assert new_product.description in client.get(url(customer)).content.decode()


def test_cards_are_cached_per_language_and_role(client):
    """A reviewer never gets the card cached for sales (and the other way round), nor one in another language."""
    # given: a reason under review, read first by sales (hidden), in English
    sales = UserFactory(groups=["sales"])
    reviewer = UserFactory(groups=["reviewer"])
    customer, _ = book(sales)
    client.force_login(sales)
    client.get(page_url(customer))
    assert REASON not in client.get(page_url(customer)).content.decode()
    # when / then: the reviewer reads it
    client.force_login(reviewer)
    assert REASON in client.get(page_url(customer)).content.decode()
    # when / then: in Japanese, the card's own labels are translated (not the English card from the cache)
    japanese = client.get(page_url(customer), HTTP_ACCEPT_LANGUAGE="ja").content.decode()
    english = client.get(page_url(customer), HTTP_ACCEPT_LANGUAGE="en").content.decode()  # English last: tests after
    assert 'id="rec-1-score">Match score<' in english
    assert 'id="rec-1-score">一致スコア<' in japanese


def test_a_recorded_outcome_and_a_new_purchase_show_at_once(client):
    """The cached page shows an outcome recorded and a purchase imported after it was cached."""
    # given: a sales person's page, cached
    sales = UserFactory(groups=["sales"])
    customer, (explanation,) = book(sales, status=S.APPROVED)
    client.force_login(sales)
    client.get(page_url(customer))
    assert "badge--outcome-won" not in client.get(page_url(customer)).content.decode()
    # when
    OutcomeFactory(recommendation=explanation.recommendation, user=sales, kind="won")
    PurchaseFactory(customer=customer, description="ENAMEL FLOWER JUG CREAM")
    # then
    body = client.get(page_url(customer)).content.decode()
    assert "badge--outcome-won" in body
    assert "ENAMEL FLOWER JUG CREAM" in body


def test_new_concept_scores_and_counts_show_at_once(client):
    """The cached page shows concept scores and explained counts that changed after it was cached."""
    # given: a page cached with one recommendation not explained yet and no concept scores
    sales = UserFactory(groups=["sales"])
    customer = CustomerFactory()
    assign(sales, customer)
    rec = RecommendationFactory(customer=customer, rank=1)
    ExposureFactory(recommendation=rec, arm=Exposure.Arm.EXPLAINED)
    client.force_login(sales)
    client.get(page_url(customer))
    before = client.get(page_url(customer))
    assert "Gift buyer" not in before.content.decode()
    # when / then: a concept score alone
    CustomerConceptFactory(customer=customer, concept=ConceptFactory(name="Gift buyer"))
    assert "Gift buyer" in client.get(page_url(customer)).content.decode()
    # when / then: an explanation
    ExplanationFactory(recommendation=rec, status=S.APPROVED, reason_text=REASON, flags=[])
    after = client.get(page_url(customer))
    assert (before.context["customer"].explained_count, after.context["customer"].explained_count) == (0, 1)


TOKEN_INPUT = re.compile(r'name="token" value="([^"]*)"')
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]*)"')


def test_a_cached_page_gives_each_form_fresh_tokens_that_record_an_outcome():
    """A page body from the cache carries a new idempotency token per form and a CSRF token that is accepted."""
    # given: a sales person whose page (two cards) is cached, with CSRF checks on as in production
    sales = UserFactory(groups=["sales"])
    customer, (first_explanation, _) = book(sales, n_items=2, status=S.APPROVED)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(sales)
    earlier = browser.get(page_url(customer)).content.decode()
    # when
    html = browser.get(page_url(customer)).content.decode()
    # then: two forms, two new UUIDs, no placeholder left over
    tokens = TOKEN_INPUT.findall(html)
    assert len(tokens) == 2
    assert len({*tokens, *TOKEN_INPUT.findall(earlier)}) == 4
    assert all(uuid.UUID(token) for token in tokens)
    assert not any(p in html for p in (CSRF_PLACEHOLDER, FORM_TOKEN_PLACEHOLDER, PROGRESS_PLACEHOLDER))
    # when: the first card's form is posted as the browser would
    rec = first_explanation.recommendation
    response = browser.post(
        reverse("outcome-create", kwargs={"pseudonym": customer.pseudonym, "recommendation_id": rec.pk}),
        {"kind": "won", "token": tokens[0], "csrfmiddlewaretoken": CSRF_INPUT.findall(html)[0]},
    )
    # then: recorded, and the next (cached) page shows it with again new tokens
    assert response.status_code == 302
    assert Outcome.objects.filter(recommendation=rec, kind="won").count() == 1
    after = browser.get(page_url(customer)).content.decode()
    assert "badge--outcome-won" in after
    assert not set(TOKEN_INPUT.findall(after)) & set(tokens)


def test_a_cached_page_shows_the_forms_of_the_readers_roles():
    """Readers with the same card view but different roles (sales + manager, manager) get their own forms."""
    # given: the page cached for a manager who also sells
    seller = UserFactory(groups=["sales", "manager"])
    manager = UserFactory(groups=["manager"])
    customer, _ = book(seller, status=S.APPROVED)
    seller_client, manager_client = Client(), Client()
    seller_client.force_login(seller)
    manager_client.force_login(manager)
    assert 'class="outcome-form"' in seller_client.get(page_url(customer)).content.decode()
    # when
    html = manager_client.get(page_url(customer)).content.decode()
    # then: no outcome form for the manager, and the seller's form is still there
    assert REASON in html
    assert 'class="outcome-form"' not in html
    assert 'class="outcome-form"' in seller_client.get(page_url(customer)).content.decode()


def test_filling_a_page_body_replaces_every_placeholder_and_asks_for_a_csrf_token_only_for_forms():
    """customer_page_fill puts in one token per form, the CSRF token and the progress note."""
    # given
    with_forms = CustomerPage(
        html=f"{PROGRESS_PLACEHOLDER}<i>{CSRF_PLACEHOLDER}</i>"
        f"<b>{FORM_TOKEN_PLACEHOLDER}</b><b>{FORM_TOKEN_PLACEHOLDER}</b>",
        recommendation_ids=(1, 2),
        pending_count=0,
        recommendation_count=2,
        explained_count=2,
    )
    without_forms = CustomerPage(
        html="<p>no forms</p>", recommendation_ids=(), pending_count=0, recommendation_count=0, explained_count=0
    )
    asked = []

    def csrf_token() -> str:
        asked.append(1)
        return "csrf123"

    # when
    filled = customer_page_fill(page=with_forms, csrf_token=csrf_token, progress="<p>progress</p>")
    plain = customer_page_fill(page=without_forms, csrf_token=csrf_token)
    # then
    tokens = re.findall(r"<b>([^<]*)</b>", filled)
    assert filled.startswith("<p>progress</p><i>csrf123</i>")
    assert len(set(tokens)) == 2
    assert all(uuid.UUID(token) for token in tokens)
    assert plain == "<p>no forms</p>"
    assert asked == [1]


def test_a_cached_page_shows_the_explain_jobs_progress_of_the_moment(client):
    """The progress note of a page whose body comes from the cache follows the running job."""
    # given: a cached page with a card waiting for its explanation, while the job has done 3 of 8
    sales = UserFactory(groups=["sales"])
    customer = CustomerFactory()
    assign(sales, customer)
    RecommendationFactory(customer=customer, rank=1)
    job = Job.objects.create(kind="explain", status=Job.Status.RUNNING, items_done=3, items_total=8)
    client.force_login(sales)
    client.get(page_url(customer))
    assert "3 of 8 done" in client.get(page_url(customer)).content.decode()
    # when
    Job.objects.filter(pk=job.pk).update(items_done=5)
    html = client.get(page_url(customer)).content.decode()
    # then
    assert "Explanations are being generated: 5 of 8 done." in html
    assert PROGRESS_PLACEHOLDER not in html
