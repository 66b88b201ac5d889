"""Sales read only approved reasons; reviewers read every state. Through the customer page and the API."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser
from django.urls import reverse

from explanations.models import Explanation
from explanations.review import reason_visible_to
from explanations.services import review
from tests.factories import ExplanationFactory, ExposureFactory, UserFactory, assign

pytestmark = pytest.mark.django_db

S = Explanation.Status
REASON = "It goes with the heart-shaped T-light holders this customer reorders."
NON_APPROVED = [S.GENERATED, S.PENDING_REVIEW, S.CHANGES_REQUESTED, S.REJECTED, S.WITHDRAWN]
IN_REVIEW = [S.GENERATED, S.PENDING_REVIEW, S.CHANGES_REQUESTED]
REFUSED = [S.REJECTED, S.WITHDRAWN]
TEMPLATE = "It goes with what this customer already buys, such as white hanging heart t-light holder."


def explained(status: str) -> Explanation:
    """An explanation in ``status`` whose recommendation is in the explained arm of the A/B test."""
    explanation = ExplanationFactory(status=status, reason_text=REASON)
    ExposureFactory(recommendation=explanation.recommendation, arm="explained")
    return explanation


def page_html(client, user, explanation) -> str:
    client.force_login(user)
    url = reverse("customer-detail", kwargs={"pseudonym": explanation.recommendation.customer.pseudonym})
    return client.get(url).content.decode()


def api_item(api_client, user, explanation) -> dict:
    api_client.force_authenticate(user)
    url = reverse("api-customer-recommendations", kwargs={"pseudonym": explanation.recommendation.customer.pseudonym})
    response = api_client.get(url)
    assert response.status_code == 200
    return response.json()[0]["explanation"]


@pytest.fixture
def sales():
    return UserFactory(groups=["sales"])


@pytest.mark.parametrize("status", IN_REVIEW)
def test_sales_see_reason_under_review_until_approved_on_the_page(client, sales, status):
    """Before approval the page shows "Reason under review" and the evidence, never the text."""
    explanation = explained(status)
    assign(sales, explanation.recommendation.customer)
    html = page_html(client, sales, explanation)
    assert "Reason under review" in html
    assert REASON not in html
    assert "Based on these past purchases" in html


@pytest.mark.parametrize("status", IN_REVIEW)
def test_sales_see_reason_under_review_until_approved_in_the_api(api_client, sales, status):
    explanation = explained(status)
    assign(sales, explanation.recommendation.customer)
    item = api_item(api_client, sales, explanation)
    assert (item["reason"], item["reason_status"]) == (None, "under_review")
    assert len(item["evidence"]) == 3  # the evidence is always shown


@pytest.mark.parametrize("status", REFUSED)
def test_sales_see_the_template_reason_for_a_refused_text_on_the_page_and_in_the_api(client, api_client, sales, status):
    """A rejected or withdrawn text is not "under review": the template reason built from the evidence is shown."""
    # given an explanation of a sales person's customer whose written reason was refused
    explanation = explained(status)
    assign(sales, explanation.recommendation.customer)
    # when
    html = page_html(client, sales, explanation)
    item = api_item(api_client, sales, explanation)
    # then the page shows the template reason as the reason, never the refused text nor "under review"
    assert "Reason under review" not in html
    assert REASON not in html
    assert f'<blockquote class="reason reason--from-evidence"><p>{TEMPLATE}</p></blockquote>' in html
    # and the API says the same
    assert (item["reason"], item["reason_status"], item["template_text"]) == (None, "from_evidence", TEMPLATE)


def test_rejecting_a_reason_shows_sales_the_template_instead(client, sales):
    """Walk it through the review service: pending (under review) -> rejected (template reason)."""
    # given a pending explanation that sales see as under review
    explanation = explained(S.PENDING_REVIEW)
    assign(sales, explanation.recommendation.customer)
    assert "Reason under review" in page_html(client, sales, explanation)
    # when a reviewer rejects it
    review.explanation_reject(
        user=UserFactory(groups=["reviewer"]), explanation_id=explanation.pk, comment="Claims a reorder."
    )
    # then sales see the template reason, not "under review"
    html = page_html(client, sales, explanation)
    assert "Reason under review" not in html and REASON not in html
    assert "no written reason was approved" in html and TEMPLATE in html


def test_sales_read_the_reason_once_a_reviewer_approved_it_page_and_api(client, api_client, sales):
    """The same explanation: hidden while pending, shown after the approval, on the page and in the API."""
    # given a pending explanation of a sales person's customer
    explanation = explained(S.PENDING_REVIEW)
    assign(sales, explanation.recommendation.customer)
    assert REASON not in page_html(client, sales, explanation)
    # when a reviewer approves it
    review.explanation_approve(user=UserFactory(groups=["reviewer"]), explanation_id=explanation.pk)
    # then the sales person reads it on the page and in the API
    html = page_html(client, sales, explanation)
    assert REASON in html
    assert "Reason under review" not in html
    item = api_item(api_client, sales, explanation)
    assert (item["reason"], item["reason_status"]) == (REASON, "visible")


def test_withdrawing_hides_the_reason_from_sales_again(api_client, sales):
    reviewer = UserFactory(groups=["reviewer"])
    explanation = explained(S.APPROVED)
    assign(sales, explanation.recommendation.customer)
    assert api_item(api_client, sales, explanation)["reason"] == REASON
    review.explanation_withdraw(user=reviewer, explanation_id=explanation.pk, comment="Product recalled.")
    assert api_item(api_client, sales, explanation)["reason"] is None


@pytest.mark.parametrize("groups", [["reviewer"], ["manager"]])
@pytest.mark.parametrize("status", NON_APPROVED + [S.APPROVED])
def test_reviewers_and_managers_read_every_state(client, api_client, groups, status):
    user = UserFactory(groups=groups)
    explanation = explained(status)
    assert REASON in page_html(client, user, explanation)
    assert api_item(api_client, user, explanation)["reason"] == REASON


@pytest.mark.parametrize(
    ("user_kwargs", "status", "expected"),
    [
        ({"groups": ["sales"]}, S.PENDING_REVIEW, False),
        ({"groups": ["sales"]}, S.APPROVED, True),
        ({}, S.APPROVED, True),  # a signed-in user without a role is treated like sales
        ({}, S.PENDING_REVIEW, False),
        ({"is_staff": True}, S.PENDING_REVIEW, False),  # the staff flag is not a role
        ({"groups": ["reviewer"]}, S.PENDING_REVIEW, True),
        ({"groups": ["manager"]}, S.REJECTED, True),
        ({"is_superuser": True}, S.WITHDRAWN, True),
    ],
)
def test_reason_visible_to(user_kwargs, status, expected):
    """The one selector that decides: reviewers, managers, admins always; everyone else only when approved."""
    assert reason_visible_to(UserFactory(**user_kwargs), ExplanationFactory(status=status)) is expected


def test_anonymous_users_never_read_a_reason():
    assert reason_visible_to(AnonymousUser(), ExplanationFactory(status=S.APPROVED)) is False
