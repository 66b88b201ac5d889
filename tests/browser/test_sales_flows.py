"""End-to-end in Chromium: outcomes feed the manager's KPIs, approval reaches sales, the language sticks."""

from __future__ import annotations

import re

import pytest

from outcomes.models import Outcome
from tests.browser.conftest import sign_in, sign_out
from tests.factories import (
    TEST_PASSWORD,
    CustomerFactory,
    ExplanationFactory,
    ProductFactory,
    RecommendationFactory,
    UserFactory,
    assign,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

REASON = "It goes with the heart-shaped T-light holders this customer reorders every autumn."


@pytest.fixture
def book():
    """A sales person with one customer and one explained recommendation, and a manager and a reviewer."""
    sales = UserFactory(username="sam", groups=["sales"])
    customer = CustomerFactory(pseudonym="5a1e5000000000aa", region="British Isles")
    assign(sales, customer)
    rec = RecommendationFactory(
        customer=customer, rank=1, score=0.61, product=ProductFactory(description="WHITE METAL LANTERN")
    )
    explanation = ExplanationFactory(recommendation=rec, reason_text=REASON)
    return {
        "sales": sales,
        "manager": UserFactory(username="maria", groups=["manager"]),
        "reviewer": UserFactory(username="rita", groups=["reviewer"]),
        "customer": customer,
        "rec": rec,
        "explanation": explanation,
    }


def kpi(page, label: str) -> str:
    """Return the value of the dashboard's key figure called ``label``."""
    stat = page.locator(".kpi-grid .stat").filter(has=page.locator("dt", has_text=re.compile(f"^{label}$")))
    return stat.locator("dd").inner_text().strip()


def test_an_outcome_recorded_by_sales_changes_the_managers_kpi(new_page, book):
    """Sales press "Won" with a comment; the manager's dashboard counts one more won deal."""
    # given the manager's dashboard before
    manager = new_page()
    sign_in(manager, "maria", TEST_PASSWORD)
    manager.goto("/dashboard/")
    assert kpi(manager, "Won") == "0"
    # when the sales person records a win on the customer page
    sales = new_page()
    sign_in(sales, "sam", TEST_PASSWORD)
    sales.get_by_role("link", name=book["customer"].pseudonym).click()
    card = sales.locator("#rec-1")
    card.get_by_label("Comment (optional)").fill("Ordered 48 for the shop window")
    card.get_by_role("button", name="Won").click()
    # then the page confirms it, the outcome is stored with who and the arm, and the KPI moved
    assert "Recorded “Won” for WHITE METAL LANTERN" in sales.locator(".messages").inner_text()
    outcome = Outcome.objects.get()
    assert (outcome.user.username, outcome.kind, outcome.comment) == ("sam", "won", "Ordered 48 for the shop window")
    manager.reload()
    assert kpi(manager, "Won") == "1"


def test_a_reviewers_approval_shows_the_reason_to_sales(new_page, book):
    """Sales see "under review" until a reviewer approves the text on the review page, then the text."""
    from explanations.services.review import explanation_record_generated

    # given a generated reason queued for review
    explanation_record_generated(explanation=book["explanation"])
    sales = new_page()
    sign_in(sales, "sam", TEST_PASSWORD)
    customer_url = f"/customers/{book['customer'].pseudonym}/"
    sales.goto(customer_url)
    assert "Reason under review" in sales.locator("#rec-1").inner_text()
    assert REASON not in sales.content()
    # when the reviewer approves it in the review queue
    reviewer = new_page()
    sign_in(reviewer, "rita", TEST_PASSWORD)
    reviewer.goto(f"/review/{book['explanation'].pk}/")
    reviewer.get_by_role("button", name="Approve", exact=True).click()
    reviewer.wait_for_load_state()
    # then the sales person reads the reason
    sales.reload()
    assert REASON in sales.locator("#rec-1 .reason").inner_text()
    assert "Reason under review" not in sales.locator("#rec-1").inner_text()


def test_the_language_switch_is_remembered_across_sign_out_and_browsers(new_page, book):
    """Switch to Japanese, sign out, sign in from another browser: the pages stay Japanese."""
    # given
    page = new_page()
    sign_in(page, "sam", TEST_PASSWORD)
    assert page.locator("html").get_attribute("lang") == "en"
    # when
    page.locator("#language-select").select_option("ja")
    page.locator(".lang-form [type=submit]").click()
    page.wait_for_load_state()
    # then
    assert page.locator("html").get_attribute("lang") == "ja"
    assert page.locator("h1").inner_text() == "担当アカウント"
    sign_out(page)
    assert page.locator("html").get_attribute("lang") == "ja"
    other_browser = new_page(locale="en-GB")
    sign_in(other_browser, "sam", TEST_PASSWORD)
    assert other_browser.locator("html").get_attribute("lang") == "ja"
    assert other_browser.locator("h1").inner_text() == "担当アカウント"
