"""README's first tour, walked as written on the demo's users: review, edit, four-eyes approval, sales read it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from accounts.services import assignment_demo_books
from core.demo_users import DEMO_USERS, demo_users_ensure
from core.permissions import REVIEWER
from explanations.models import Explanation, ReasonVersion
from tests.factories import CustomerFactory, ExplanationFactory, RecommendationFactory

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

README = Path(settings.BASE_DIR) / "README.md"
S = Explanation.Status
EDITED = "These lanterns go with the heart-shaped T-light holders this customer orders."


def tour_users() -> list[str]:
    """Return the usernames README's first tour signs in as, in order."""
    match = re.search(r"^A first tour:(.*?)(?:\n\n|\Z)", README.read_text(encoding="utf-8"), flags=re.S | re.M)
    assert match, "README.md has no paragraph starting 'A first tour:'"
    return re.findall(r"sign in as `([^`]+)`", match.group(1))


def sign_in(username: str, password: str) -> Client:
    """Sign in through the login form, as a person would."""
    client = Client()
    response = client.post(reverse("login"), {"username": username, "password": password})
    assert response.status_code == 302, f"{username} could not sign in"
    return client


def test_the_tour_names_two_reviewers_of_the_demo():
    """Four-eyes needs a second reviewer: the tour names two, and the demo creates both."""
    names = tour_users()
    demo = {u.username: u.role for u in DEMO_USERS}
    assert set(names) <= set(demo), f"the tour names users the demo does not create: {set(names) - set(demo)}"
    assert [n for n in names if demo[n] == REVIEWER] == ["reviewer", "reviewer2"]


def test_the_first_tour_works_as_written():
    """Reviewer approves one and edits another; the other reviewer approves the edit; sales read both."""
    # given the demo's users and books, and a sales person's customer with two reasons awaiting review
    passwords = demo_users_ensure()
    customer = CustomerFactory()
    sales_users = [get_user_model().objects.get(username=u.username) for u in DEMO_USERS if u.role == "sales"]
    assignment_demo_books(users=sales_users)
    first, second = (
        ExplanationFactory(status=S.PENDING_REVIEW, recommendation=RecommendationFactory(customer=customer, rank=r))
        for r in (1, 2)
    )
    reviewer, reviewer2, sales, manager = tour_users()
    assert (reviewer, sales, manager) == ("reviewer", "sales", "manager")
    detail = reverse("customer-detail", args=[customer.pseudonym])
    sales_client = sign_in(sales, passwords[sales])
    assert sales_client.get(detail).status_code == 200, "the customer is not in the sales user's book"

    # when the first reviewer approves one reason in the Review queue and edits the other
    reviewing = sign_in(reviewer, passwords[reviewer])
    queue = reviewing.get(reverse("review-queue")).content.decode()
    assert f'aria-labelledby="review-{first.pk}-title"' in queue
    reviewing.post(reverse("review-action", args=[first.pk]), {"action": "approve", "comment": ""})
    reviewing.post(reverse("review-edit", args=[second.pk]), {"text": EDITED, "comment": "Plainer words."})
    # then the editor cannot approve the edit (four-eyes)
    reviewing.post(reverse("review-action", args=[second.pk]), {"action": "approve", "comment": ""})
    second.refresh_from_db()
    assert (second.status, second.reason_text) == (S.PENDING_REVIEW, EDITED)

    # when the other reviewer approves the edited reason
    sign_in(reviewer2, passwords[reviewer2]).post(
        reverse("review-action", args=[second.pk]), {"action": "approve", "comment": ""}
    )
    # then it is approved, and its versions record who wrote and who approved it
    second.refresh_from_db()
    assert second.status == S.APPROVED
    assert second.review_events.get(action="approve").actor_name == reviewer2
    assert second.reason_versions.get(source=ReasonVersion.Source.EDITED).author_name == reviewer

    # when the sales person opens the account
    page = sales_client.get(detail).content.decode()
    # then both approved reasons are there, and nothing is under review
    assert first.reason_text in page and EDITED in page
    assert "Reason under review" not in page
    # and they can record an outcome
    outcome = reverse(
        "outcome-create", kwargs={"pseudonym": customer.pseudonym, "recommendation_id": second.recommendation_id}
    )
    assert sales_client.post(outcome, {"kind": "pitched", "comment": ""}).status_code == 302
    assert second.recommendation.outcomes.filter(kind="pitched").count() == 1

    # when the manager signs in, the Dashboard, Model quality and Jobs open
    managing = sign_in(manager, passwords[manager])
    for name in ("dashboard", "quality", "job-list"):
        assert managing.get(reverse(name)).status_code == 200, name
