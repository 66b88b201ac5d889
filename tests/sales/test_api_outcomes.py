"""Outcomes API: list and record outcomes of a recommendation."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from outcomes.models import Outcome
from tests.factories import OutcomeFactory, RecommendationFactory, UserFactory, assign

pytestmark = pytest.mark.django_db


def url(rec) -> str:
    return reverse(
        "api-recommendation-outcomes", kwargs={"pseudonym": rec.customer.pseudonym, "recommendation_id": rec.pk}
    )


@pytest.fixture
def rec(sales_user):
    recommendation = RecommendationFactory()
    assign(sales_user, recommendation.customer)
    return recommendation


def test_post_records_an_outcome_and_a_repeated_token_returns_it(api_client, sales_user, rec):
    """Answer 201 for a new outcome and 200 with the same row for a repeated client token."""
    api_client.force_authenticate(sales_user)
    body = {"kind": "won", "comment": "48 pieces", "client_token": str(uuid.uuid4())}
    first = api_client.post(url(rec), body, format="json")
    second = api_client.post(url(rec), body, format="json")
    assert (first.status_code, second.status_code) == (201, 200)
    assert first.json()["id"] == second.json()["id"]
    assert first.json()["recorded_by"] == "sam"
    assert first.json()["explained"] is True
    assert Outcome.objects.count() == 1


@pytest.mark.parametrize(
    ("body", "field"), [({"kind": "sold"}, "kind"), ({"kind": "won", "comment": "x" * 1001}, "comment")]
)
def test_post_rejects_invalid_bodies(api_client, sales_user, rec, body, field):
    """Answer 400 naming the field for an unknown kind or a too long comment."""
    api_client.force_authenticate(sales_user)
    response = api_client.post(url(rec), body, format="json")
    assert response.status_code == 400
    assert field in response.json()
    assert not Outcome.objects.exists()


def test_managers_read_but_cannot_record(api_client, rec):
    """Let managers list outcomes (403 on POST)."""
    OutcomeFactory(recommendation=rec, kind="lost")
    api_client.force_authenticate(UserFactory(groups=["manager"]))
    assert [o["kind"] for o in api_client.get(url(rec)).json()] == ["lost"]
    assert api_client.post(url(rec), {"kind": "won"}, format="json").status_code == 403


def test_other_books_are_404(api_client, sales_user):
    """Answer 404 for a recommendation of a customer outside the caller's book."""
    other = RecommendationFactory()
    api_client.force_authenticate(sales_user)
    assert api_client.get(url(other)).status_code == 404
    assert api_client.post(url(other), {"kind": "won"}, format="json").status_code == 404


def test_recommendations_api_withholds_the_reason_of_control_items_from_sales(api_client, sales_user, rec):
    """Give sales no reason for a control-arm recommendation (status not_shown); managers still read it."""
    from explanations.models import Explanation
    from outcomes.models import Exposure
    from tests.factories import ExplanationFactory, ExposureFactory

    ExplanationFactory(recommendation=rec, reason_text="Goes with the lanterns.", status=Explanation.Status.APPROVED)
    ExposureFactory(recommendation=rec, arm=Exposure.Arm.CONTROL)
    url_ = reverse("api-customer-recommendations", kwargs={"pseudonym": rec.customer.pseudonym})
    api_client.force_authenticate(sales_user)
    explanation = api_client.get(url_).json()[0]["explanation"]
    assert (explanation["reason"], explanation["reason_status"], explanation["template_text"]) == (
        None,
        "not_shown",
        None,
    )
    api_client.force_authenticate(UserFactory(groups=["manager"]))
    assert api_client.get(url_).json()[0]["explanation"]["reason"] == "Goes with the lanterns."
