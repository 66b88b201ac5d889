"""The review API: the pending queue with filters, one item with its history, transitions, edits, bulk."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from explanations.models import Explanation
from explanations.services import review
from tests.factories import CustomerFactory, ExplanationFactory, RecommendationFactory, UserFactory

pytestmark = pytest.mark.django_db

S = Explanation.Status
QUEUE = reverse("api-review-queue")
FLAG = {
    "code": "risky_claim:guarantee",
    "message": "A guarantee.",
    "start": 0,
    "end": 6,
    "text": "Always",
    "severity": "warning",
}


def pending(*, hours: float = 1, **kwargs) -> Explanation:
    return ExplanationFactory(
        status=S.PENDING_REVIEW, review_requested_at=timezone.now() - dt.timedelta(hours=hours), **kwargs
    )


def action_url(explanation: Explanation, action: str) -> str:
    return reverse("api-review-action", kwargs={"explanation_id": explanation.pk, "action": action})


@pytest.fixture
def reviewer(api_client):
    user = UserFactory(groups=["reviewer"])
    api_client.force_authenticate(user)
    return user


@pytest.mark.parametrize(("groups", "status"), [(["sales"], 403), (["manager"], 403), (["reviewer"], 200)])
def test_the_queue_api_is_for_reviewers(api_client, groups, status):
    api_client.force_authenticate(UserFactory(groups=groups))
    assert api_client.get(QUEUE).status_code == status


def test_the_queue_lists_pending_items_with_text_flags_evidence_and_age(api_client, reviewer, settings):
    settings.ELM_REVIEW_SLA_HOURS = 48
    customer = CustomerFactory(pseudonym="ab000000000000bb", region="Nordics")
    late = pending(hours=50, recommendation=RecommendationFactory(customer=customer), flags=[FLAG])
    pending(hours=1)
    ExplanationFactory(status=S.APPROVED)
    body = api_client.get(QUEUE).json()
    assert body["count"] == 2
    first = body["results"][0]
    assert first["id"] == late.pk
    assert first["customer"] == {"pseudonym": "ab000000000000bb", "region": "Nordics"}
    assert first["reason_text"] == late.reason_text
    assert first["flags"] == [FLAG]
    assert len(first["evidence"]) == 3
    assert first["overdue"] is True and first["age_hours"] >= 50
    assert body["results"][1]["overdue"] is False


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"flag": "risky_claim"}, {"flagged"}),
        ({"flag": "none"}, {"clean", "nordic"}),
        ({"confidence_min": "0.5"}, {"clean"}),
        ({"consistency_max": "0.3"}, {"flagged"}),
        ({"min_age_hours": "24"}, {"nordic"}),
        ({"region": "Nordics"}, {"nordic"}),
    ],
)
def test_queue_filters(api_client, reviewer, params, expected):
    items = {
        "flagged": pending(flags=[FLAG], confidence=0.2, consistency=0.2),
        "clean": pending(confidence=0.7, consistency=0.6),
        "nordic": pending(
            hours=30,
            recommendation=RecommendationFactory(customer=CustomerFactory(region="Nordics")),
            confidence=0.1,
            consistency=0.6,
        ),
    }
    ids = {r["id"] for r in api_client.get(QUEUE, params).json()["results"]}
    assert {name for name, e in items.items() if e.pk in ids} == expected


@pytest.mark.parametrize(
    "params", [{"flag": "nope"}, {"confidence_min": "2"}, {"sort": "random"}, {"status": "approved"}]
)
def test_bad_queue_parameters_are_400(api_client, reviewer, params):
    assert api_client.get(QUEUE, params).status_code == 400


def test_approve_returns_the_item_with_its_history(api_client, reviewer):
    explanation = ExplanationFactory(status=S.GENERATED)
    review.explanation_record_generated(explanation=explanation)
    response = api_client.post(action_url(explanation, "approve"), {"comment": "clear"}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == S.APPROVED
    assert [(e["action"], e["actor"]) for e in body["events"]] == [("submit", ""), ("approve", reviewer.username)]
    assert [v["number"] for v in body["versions"]] == [1]


@pytest.mark.parametrize(
    ("setup", "action", "payload", "status", "code"),
    [
        ("approved", "approve", {}, 409, "not_allowed"),
        ("pending", "reject", {}, 400, "comment_required"),
        ("own_edit", "approve", {"comment": "mine"}, 403, "four_eyes"),
        ("pending", "request-changes", {"comment": "Shorter."}, 200, None),
        ("approved", "withdraw", {"comment": "Recalled."}, 200, None),
    ],
)
def test_transitions_answer_with_the_refusal_code(api_client, reviewer, setup, action, payload, status, code):
    explanation = {
        "approved": lambda: ExplanationFactory(status=S.APPROVED),
        "pending": lambda: pending(),
        "own_edit": lambda: pending(reason_edited_by=reviewer),
    }[setup]()
    response = api_client.post(action_url(explanation, action), payload, format="json")
    assert response.status_code == status
    if code:
        assert response.json()["code"] == code


def test_items_say_whether_the_caller_may_approve_them(api_client, reviewer):
    """Four-eyes in the API: can_approve is false on the text the caller wrote, true on the others."""
    # given
    own = pending(hours=2, reason_edited_by=reviewer)
    other = pending(hours=1, reason_edited_by=UserFactory(groups=["reviewer"]))
    # when
    queue = {item["id"]: item["can_approve"] for item in api_client.get(QUEUE).json()["results"]}
    detail = api_client.get(reverse("api-review-detail", kwargs={"explanation_id": own.pk})).json()
    # then
    assert queue == {own.pk: False, other.pk: True}
    assert detail["can_approve"] is False


def test_review_items_show_the_evidence_lines_of_the_review_page(api_client, reviewer):
    """Evidence rows carry their kind: a past purchase, the aggregated rest, or the popularity term."""
    # given: a hybrid recommendation whose evidence ends with the non-personal popularity term
    explanation = pending(recommendation__score=0.5)
    explanation.evidence = [*explanation.evidence, {"product_id": None, "kind": "popularity", "share": 0.05}]
    explanation.save(update_fields=["evidence"])
    # when
    item = api_client.get(reverse("api-review-detail", kwargs={"explanation_id": explanation.pk})).json()
    # then
    assert [row["kind"] for row in item["evidence"]] == ["purchase", "purchase", "rest", "popularity"]
    assert [row["stock_code"] for row in item["evidence"]] == ["EV001", "EV002", None, None]


def test_edit_checks_the_text_again(api_client, reviewer):
    explanation = pending()
    url = reverse("api-review-edit", kwargs={"explanation_id": explanation.pk})
    response = api_client.post(url, {"text": "Ring 020 7946 0958 for a guaranteed reorder."}, format="json")
    assert response.status_code == 200
    body = response.json()
    assert {"pii:phone", "risky_claim:guarantee"} <= {f["code"] for f in body["flags"]}
    assert body["edited_by"] == reviewer.username
    assert body["consistency"] is None
    assert [v["source"] for v in body["versions"]] == ["edited"]  # the factory row had no version 1


def test_bulk_approve_reports_refused_flagged_items(api_client, reviewer):
    clean, flagged = pending(), pending(flags=[FLAG])
    response = api_client.post(
        reverse("api-review-bulk"), {"action": "approve", "ids": [clean.pk, flagged.pk]}, format="json"
    )
    assert response.status_code == 200
    body = response.json()
    assert body["done"] == [clean.pk]
    assert [r["id"] for r in body["refused"]] == [flagged.pk]


def test_sales_cannot_act_through_the_api(api_client):
    api_client.force_authenticate(UserFactory(groups=["sales"]))
    explanation = pending()
    assert api_client.post(action_url(explanation, "approve"), {}, format="json").status_code == 403
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW


def test_the_api_queue_query_count_is_constant(api_client, reviewer, django_assert_max_num_queries):
    for _ in range(15):
        pending(reason_edited_by=UserFactory())
    with django_assert_max_num_queries(4):
        assert len(api_client.get(QUEUE).json()["results"]) == 15
