"""The reviewer queue page and the review detail page: filters, highlights, SLA, actions, bulk, queries."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from explanations.models import Explanation, ReviewEvent
from explanations.services import review
from tests.factories import (
    CustomerFactory,
    ExplanationFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db

S = Explanation.Status
QUEUE = reverse("review-queue")
EMAIL_TEXT = "Ask buyer@shop-example.co.uk about the heart holders."
EMAIL_FLAG = {
    "code": "pii:email",
    "message": "An e-mail address.",
    "start": 4,
    "end": 28,
    "text": "buyer@shop-example.co.uk",
    "severity": "error",
}
LONG_FLAG = {"code": "too_long", "message": "Too long.", "start": 0, "end": 3, "text": "Ask", "severity": "warning"}


def pending(*, hours: float = 1, **kwargs) -> Explanation:
    """A queued explanation that has waited ``hours``."""
    return ExplanationFactory(
        status=S.PENDING_REVIEW, review_requested_at=timezone.now() - dt.timedelta(hours=hours), **kwargs
    )


def item_ids(html: str) -> list[int]:
    """Return the explanation ids of the queue's items, in page order."""
    return [
        int(i) for i in re.findall(r'<article class="review-item[^"]*" aria-labelledby="review-(\d+)-title">', html)
    ]


@pytest.fixture
def reviewer(client):
    user = UserFactory(groups=["reviewer"])
    client.force_login(user)
    return user


@pytest.mark.parametrize(("groups", "status"), [(["sales"], 403), (["manager"], 403), (["reviewer"], 200)])
def test_the_queue_is_for_reviewers(client, groups, status):
    client.force_login(UserFactory(groups=groups))
    assert client.get(QUEUE).status_code == status


def test_anonymous_visitors_are_sent_to_sign_in(client):
    assert client.get(QUEUE).status_code == 302


def test_the_queue_lists_pending_items_of_the_active_batch_oldest_first(client, reviewer):
    """Only pending_review of the active batch, oldest first; other states and old batches stay out."""
    old, new = pending(hours=30), pending(hours=2)
    ExplanationFactory(status=S.APPROVED)
    ExplanationFactory(status=S.CHANGES_REQUESTED)
    superseded = RecommendationBatchFactory(status="superseded")
    pending(recommendation=RecommendationFactory(batch=superseded))
    html = client.get(QUEUE).content.decode()
    assert item_ids(html) == [old.pk, new.pk]
    assert item_ids(client.get(QUEUE, {"sort": "newest"}).content.decode()) == [new.pk, old.pk]


def test_an_item_shows_customer_product_text_flags_template_evidence_and_metrics(client, reviewer):
    """Each item: pseudonym, region, product, text with the flagged span marked, template, evidence, SC, confidence."""
    customer = CustomerFactory(pseudonym="ab000000000000aa", region="Nordics")
    explanation = pending(
        recommendation=RecommendationFactory(customer=customer, score=0.5),
        reason_text=EMAIL_TEXT,
        flags=[EMAIL_FLAG],
        confidence=0.234,
        consistency=0.61,
    )
    html = client.get(QUEUE).content.decode()
    assert "ab000000000000aa" in html and "Nordics" in html
    assert explanation.recommendation.product.description in html
    # the flagged span is highlighted in place, with its label
    assert re.search(
        r'<mark class="reason__flagged reason__flagged--error"[^>]*>buyer@shop-example.co.uk'
        r'<span class="visually-hidden"> \(Personal data\)</span></mark>',
        html,
    )
    assert "Ask <mark" in html
    assert explanation.template_text in html
    assert "WHITE HANGING HEART T-LIGHT HOLDER" in html
    assert '<span class="evidence__value">30.0%</span>' in html
    assert "23.4%" in html and "0.61" in html


def test_items_past_the_sla_are_highlighted(client, reviewer, settings):
    settings.ELM_REVIEW_SLA_HOURS = 48
    late, fresh = pending(hours=50), pending(hours=47)
    html = client.get(QUEUE).content.decode()
    assert f'<article class="review-item review-item--overdue" aria-labelledby="review-{late.pk}-title">' in html
    assert f'<article class="review-item" aria-labelledby="review-{fresh.pk}-title">' in html
    assert html.count("Past SLA</strong>") == 1


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"flag": "pii"}, {"email"}),
        ({"flag": "error"}, {"email"}),
        ({"flag": "too_long"}, {"long"}),
        ({"flag": "any"}, {"email", "long"}),
        ({"flag": "none"}, {"clean", "old", "nordic"}),
        ({"confidence_min": "20", "confidence_max": "40"}, {"email"}),
        ({"consistency_max": "0.3"}, {"long"}),
        ({"consistency_min": "0.5"}, {"email", "clean", "old", "nordic"}),
        ({"age": "sla"}, {"old"}),
        ({"age": "24"}, {"old"}),
        ({"region": "Nordics"}, {"nordic"}),
        ({"flag": "none", "region": "Nordics"}, {"nordic"}),
    ],
)
def test_queue_filters(client, reviewer, params, expected):
    """Filter on flag type, confidence (percent), consistency, age and region."""
    items = {
        "email": pending(flags=[EMAIL_FLAG], reason_text=EMAIL_TEXT, confidence=0.3, consistency=0.6),
        "long": pending(flags=[LONG_FLAG], reason_text=EMAIL_TEXT, confidence=0.5, consistency=0.2),
        "clean": pending(confidence=0.8, consistency=0.7),
        "old": pending(hours=60, confidence=0.9, consistency=0.7),
        "nordic": pending(
            recommendation=RecommendationFactory(customer=CustomerFactory(region="Nordics")),
            confidence=0.1,
            consistency=0.9,
        ),
    }
    html = client.get(QUEUE, params).content.decode()
    names = {name for name, e in items.items() if e.pk in item_ids(html)}
    assert names == expected


def test_invalid_filter_values_are_reported_and_ignored(client, reviewer):
    pending()
    html = client.get(QUEUE, {"confidence_min": "250", "flag": "nope"}).content.decode()
    assert "field--invalid" in html
    assert len(item_ids(html)) == 1


def test_the_queue_is_paginated(client, reviewer):
    for _ in range(23):
        pending()
    first = client.get(QUEUE).content.decode()
    second = client.get(QUEUE, {"page": 2}).content.decode()
    assert (len(item_ids(first)), len(item_ids(second))) == (20, 3)
    assert "Page 1 of 2" in first


@pytest.mark.parametrize("n_items", [1, 20])
def test_queue_queries_do_not_grow_with_the_page(client, reviewer, django_assert_max_num_queries, n_items):
    """Session, user, roles, regions, summary, count, items, their other languages' texts: a fixed few."""
    for i in range(n_items):
        pending(
            flags=[EMAIL_FLAG] if i % 2 else [], reason_text=EMAIL_TEXT, reason_edited_by=reviewer if i % 3 else None
        )
    with django_assert_max_num_queries(9):
        response = client.get(QUEUE, {"flag": "", "region": ""})
    assert len(item_ids(response.content.decode())) == n_items


# --------------------------------------------------------------------------- actions


def test_approve_from_the_queue(client, reviewer):
    explanation = pending()
    response = client.post(reverse("review-action", args=[explanation.pk]), {"action": "approve", "next": QUEUE})
    assert response.status_code == 302 and response.url == QUEUE
    explanation.refresh_from_db()
    assert explanation.status == S.APPROVED
    assert "Approved" in client.get(QUEUE).content.decode()


def test_request_changes_needs_a_comment(client, reviewer):
    explanation = pending()
    url = reverse("review-action", args=[explanation.pk])
    client.post(url, {"action": "request_changes", "comment": ""})
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW
    client.post(url, {"action": "request_changes", "comment": "Name the product."})
    explanation.refresh_from_db()
    assert explanation.status == S.CHANGES_REQUESTED
    assert ReviewEvent.objects.get(explanation=explanation).comment == "Name the product."


def test_an_unsafe_next_url_is_ignored(client, reviewer):
    explanation = pending()
    response = client.post(
        reverse("review-action", args=[explanation.pk]), {"action": "approve", "next": "https://evil.example/"}
    )
    assert response.url == reverse("review-detail", args=[explanation.pk])


def test_edit_from_the_page_flags_an_email_and_blocks_the_editors_approval(client, reviewer):
    explanation = ExplanationFactory(status=S.GENERATED)
    review.explanation_record_generated(explanation=explanation)
    client.post(reverse("review-edit", args=[explanation.pk]), {"text": EMAIL_TEXT})
    explanation.refresh_from_db()
    assert explanation.reason_text == EMAIL_TEXT
    assert "pii:email" in [f["code"] for f in explanation.flags]
    html = client.get(reverse("review-detail", args=[explanation.pk])).content.decode()
    assert "You wrote this text, so another reviewer has to approve it." in html
    client.post(reverse("review-action", args=[explanation.pk]), {"action": "approve", "comment": "ok"})
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW


def test_bulk_approve_skips_flagged_items_with_a_message(client, reviewer):
    """Ticked clean items are approved; a ticked flagged item stays pending and is named in a warning."""
    clean = [pending() for _ in range(2)]
    flagged = pending(flags=[EMAIL_FLAG], reason_text=EMAIL_TEXT)
    response = client.post(
        reverse("review-bulk"), {"action": "approve", "ids": [e.pk for e in clean] + [flagged.pk]}, follow=True
    )
    html = response.content.decode()
    assert "2 items approved." in html
    assert f"Item {flagged.pk} was not changed: It has flags; approve it on its own after reading them." in html
    assert set(Explanation.objects.filter(status=S.APPROVED).values_list("pk", flat=True)) == {e.pk for e in clean}
    flagged.refresh_from_db()
    assert flagged.status == S.PENDING_REVIEW


def test_bulk_reject_needs_a_comment(client, reviewer):
    explanation = pending()
    html = client.post(reverse("review-bulk"), {"action": "reject", "ids": [explanation.pk]}, follow=True)
    assert "Say why the texts are rejected." in html.content.decode()
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW


def test_bulk_checkboxes_mark_only_approvable_items(client, reviewer):
    clean, flagged = pending(), pending(flags=[EMAIL_FLAG], reason_text=EMAIL_TEXT)
    html = client.get(QUEUE).content.decode()
    assert (
        f'value="{clean.pk}" form="bulk-form" id="review-{clean.pk}-select" class="review-select" data-approvable>'
        in html
    )
    assert f'value="{flagged.pk}" form="bulk-form" id="review-{flagged.pk}-select" class="review-select">' in html


def test_the_detail_page_shows_events_and_versions(client, reviewer):
    """History: every event (who, from -> to, comment, hash) and every text version, newest first."""
    explanation = ExplanationFactory(status=S.GENERATED)
    review.explanation_record_generated(explanation=explanation)
    other = UserFactory(groups=["reviewer"], username="second-reviewer")
    review.explanation_request_changes(user=other, explanation_id=explanation.pk, comment="Shorter, please.")
    review.explanation_edit(user=reviewer, explanation_id=explanation.pk, text="Pairs with their heart holders.")
    html = client.get(reverse("review-detail", args=[explanation.pk])).content.decode()
    assert "Shorter, please." in html and "second-reviewer" in html
    assert "Pending review → Changes requested" in html
    assert "Changes requested → Pending review" in html
    assert html.index("Version 2") < html.index("Version 1")
    assert "Pairs with their heart holders." in html
    assert review.text_sha256("Pairs with their heart holders.")[:12] in html


def test_the_detail_page_is_404_for_an_unknown_id(client, reviewer):
    assert client.get(reverse("review-detail", args=[987654])).status_code == 404


def test_the_nav_links_to_the_queue_for_reviewers_only(client):
    client.force_login(UserFactory(groups=["reviewer"]))
    assert f'href="{QUEUE}"' in client.get(reverse("customer-list")).content.decode()
    client.force_login(UserFactory(groups=["sales"]))
    assert f'href="{QUEUE}"' not in client.get(reverse("customer-list")).content.decode()
