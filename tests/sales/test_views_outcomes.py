"""The sales side of the customer pages: "My accounts" filters, outcome buttons and the A/B control arm."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from explanations.models import Explanation
from outcomes.models import Exposure, Outcome
from tests.factories import (
    CustomerFactory,
    ExplanationFactory,
    ExposureFactory,
    OutcomeFactory,
    PurchaseFactory,
    RecommendationFactory,
    UserFactory,
    assign,
)

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

LIST_URL = reverse("customer-list")
REASON = "It goes with the heart-shaped T-light holders this customer reorders."


def detail_url(pseudonym: str) -> str:
    return reverse("customer-detail", kwargs={"pseudonym": pseudonym})


def outcome_url(rec) -> str:
    return reverse("outcome-create", kwargs={"pseudonym": rec.customer.pseudonym, "recommendation_id": rec.pk})


def rows(html: str) -> list[str]:
    return re.findall(r'<th scope="row"><a class="mono" href="/customers/([0-9a-f]+)/">', html)


@pytest.fixture
def sales_user():
    return UserFactory(username="sam", groups=["sales"])


@pytest.fixture
def sales(client, sales_user):
    client.force_login(sales_user)
    return client


# --------------------------------------------------------------------------- My accounts


def test_sales_people_see_only_their_book_titled_my_accounts(sales, sales_user):
    """List the sales person's assigned customers under "My accounts", nobody else's."""
    # given
    mine, theirs = CustomerFactory(), CustomerFactory()
    assign(sales_user, mine)
    assign(UserFactory(groups=["sales"]), theirs)
    # when
    html = sales.get(LIST_URL).content.decode()
    # then
    assert rows(html) == [mine.pseudonym]
    assert "<h1>My accounts</h1>" in html


def test_list_filters_by_last_purchase_date_range(sales, sales_user):
    """Keep customers whose last purchase falls within the chosen dates, both ends included."""
    # given
    at = lambda day: timezone.make_aware(dt.datetime(2011, 11, day, 12))  # noqa: E731
    before, first_day, last_day, after = (CustomerFactory(last_purchase_at=at(d)) for d in (1, 5, 20, 21))
    assign(sales_user, before, first_day, last_day, after)
    # when
    html = sales.get(LIST_URL, {"last_from": "2011-11-05", "last_to": "2011-11-20"}).content.decode()
    # then
    assert set(rows(html)) == {first_day.pseudonym, last_day.pseudonym}


def test_list_reports_a_reversed_date_range(sales, sales_user):
    """Say that the end date is before the start date and ignore it instead of showing nothing."""
    assign(sales_user, CustomerFactory())
    html = sales.get(LIST_URL, {"last_from": "2011-11-20", "last_to": "2011-11-05"}).content.decode()
    assert "The end date is before the start date." in html


def test_list_filters_by_open_recommendations(sales, sales_user):
    """Open = an active recommendation without won/lost/not relevant; pitched ones stay open."""
    # given
    pitched, closed, without = CustomerFactory(), CustomerFactory(), CustomerFactory()
    assign(sales_user, pitched, closed, without)
    OutcomeFactory(recommendation=RecommendationFactory(customer=pitched), kind="pitched", user=sales_user)
    OutcomeFactory(recommendation=RecommendationFactory(customer=closed), kind="won", user=sales_user)
    # when
    with_open = rows(sales.get(LIST_URL, {"open": "yes"}).content.decode())
    without_open = rows(sales.get(LIST_URL, {"open": "no"}).content.decode())
    # then
    assert with_open == [pitched.pseudonym]
    assert set(without_open) == {closed.pseudonym, without.pseudonym}


def test_list_sorts_by_open_recommendations(sales, sales_user):
    """Sort by the number of open recommendations from the column header."""
    # given
    few, many = CustomerFactory(), CustomerFactory()
    assign(sales_user, few, many)
    RecommendationFactory.create_batch(1, customer=few)
    RecommendationFactory.create_batch(3, customer=many)
    # when
    descending = rows(sales.get(LIST_URL, {"sort": "-open_count"}).content.decode())
    ascending = rows(sales.get(LIST_URL, {"sort": "open_count"}).content.decode())
    # then
    assert descending == [many.pseudonym, few.pseudonym]
    assert ascending == [few.pseudonym, many.pseudonym]


# --------------------------------------------------------------------------- customer page: outcomes


@pytest.fixture
def rec(sales_user):
    recommendation = RecommendationFactory(rank=1)
    assign(sales_user, recommendation.customer)
    return recommendation


def test_customer_page_offers_outcome_buttons_to_sales(sales, rec):
    """Render a CSRF-protected form with the four outcome buttons, a comment field and a token."""
    html = sales.get(detail_url(rec.customer.pseudonym)).content.decode()
    assert f'action="{outcome_url(rec)}"' in html
    assert "csrfmiddlewaretoken" in html
    for kind, label in [("pitched", "Pitched"), ("won", "Won"), ("lost", "Lost"), ("not_relevant", "Not relevant")]:
        assert f'name="kind" value="{kind}"' in html
        assert f">{label}</button>" in html
    assert 'name="comment"' in html
    assert 'maxlength="1000"' in html
    assert re.search(r'name="token" value="[0-9a-f-]{36}"', html)


@pytest.mark.parametrize("groups", [["manager"], ["reviewer"]])
def test_customer_page_shows_outcomes_read_only_to_managers_and_reviewers(client, rec, groups):
    """Show recorded outcomes without the buttons to users who do not sell."""
    OutcomeFactory(recommendation=rec, kind="won", comment="Ordered 48")
    client.force_login(UserFactory(groups=groups))
    html = client.get(detail_url(rec.customer.pseudonym)).content.decode()
    assert 'name="kind"' not in html
    assert '<span class="badge badge--outcome-won">Won</span>' in html
    assert "Ordered 48" in html


def test_posting_an_outcome_records_it_and_returns_to_the_card(sales, sales_user, rec):
    """Record the outcome with who and the comment, then redirect to the card with a confirmation."""
    # when
    response = sales.post(outcome_url(rec), {"kind": "won", "comment": "Ordered 48", "token": str(uuid.uuid4())})
    # then
    assert response.status_code == 302
    assert response["Location"] == f"{detail_url(rec.customer.pseudonym)}#rec-1"
    outcome = Outcome.objects.get()
    assert (outcome.user, outcome.kind, outcome.comment, outcome.recommendation) == (
        sales_user,
        "won",
        "Ordered 48",
        rec,
    )
    html = sales.get(response["Location"]).content.decode()
    assert "Recorded “Won” for" in html
    assert '<span class="badge badge--outcome-won">Won</span>' in html


def test_double_submitting_the_same_form_records_once(sales, rec):
    """Record one row when the same button of the same rendered form is sent twice."""
    data = {"kind": "pitched", "token": str(uuid.uuid4())}
    sales.post(outcome_url(rec), data)
    response = sales.post(outcome_url(rec), data, follow=True)
    assert Outcome.objects.count() == 1
    assert "was already recorded" in response.content.decode()


def test_two_buttons_of_the_same_form_record_both(sales, rec):
    """Pitched then won from the same rendering are two real events."""
    token = str(uuid.uuid4())
    sales.post(outcome_url(rec), {"kind": "pitched", "token": token})
    sales.post(outcome_url(rec), {"kind": "won", "token": token})
    assert sorted(Outcome.objects.values_list("kind", flat=True)) == ["pitched", "won"]


def test_an_invalid_outcome_is_reported_not_recorded(sales, rec):
    """Refuse an unknown kind with an error message and no row."""
    response = sales.post(outcome_url(rec), {"kind": "sold"}, follow=True)
    assert Outcome.objects.count() == 0
    assert "The outcome was not recorded" in response.content.decode()


def test_outcomes_of_another_book_are_404(sales):
    """Answer 404 for a recommendation of a customer outside the sales person's book."""
    other = RecommendationFactory()
    response = sales.post(outcome_url(other), {"kind": "won"})
    assert response.status_code == 404
    assert not Outcome.objects.exists()


def test_outcome_post_needs_csrf(client, sales_user, rec):
    """Refuse a cross-site form post (no CSRF token)."""
    from django.test import Client

    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(sales_user)
    response = csrf_client.post(outcome_url(rec), {"kind": "won"})
    assert response.status_code == 403
    assert not Outcome.objects.exists()


# --------------------------------------------------------------------------- A/B control arm


def test_control_arm_hides_the_reason_from_sales_but_keeps_the_evidence(sales, rec):
    """Show no reason (not even "under review") for a control-arm item; evidence and confidence stay."""
    # given an explanation whose reason sales could read (approved), in the control arm
    ExplanationFactory(recommendation=rec, reason_text=REASON, status=Explanation.Status.APPROVED)
    ExposureFactory(recommendation=rec, arm=Exposure.Arm.CONTROL)
    # when
    html = sales.get(detail_url(rec.customer.pseudonym)).content.decode()
    # then
    assert REASON not in html
    assert "Reason under review" not in html
    assert "Based on these past purchases" in html
    assert "chance of purchase within 90 days" in html
    assert "A/B control" not in html  # sales are not told which arm they are in


def test_explained_arm_shows_the_visible_reason_to_sales(sales, rec):
    """Show the reason when the item is in the explained arm and the reason is visible to the user."""
    ExplanationFactory(recommendation=rec, reason_text=REASON, status=Explanation.Status.APPROVED)
    ExposureFactory(recommendation=rec, arm=Exposure.Arm.EXPLAINED)
    html = sales.get(detail_url(rec.customer.pseudonym)).content.decode()
    assert REASON in html


def test_managers_see_the_reason_and_the_arm_of_control_items(client, rec):
    """Managers read the reason of a control item, labelled as hidden from sales."""
    ExplanationFactory(recommendation=rec, reason_text=REASON)
    ExposureFactory(recommendation=rec, arm=Exposure.Arm.CONTROL)
    client.force_login(UserFactory(groups=["manager"]))
    html = client.get(detail_url(rec.customer.pseudonym)).content.decode()
    assert REASON in html
    assert "A/B control: reason hidden from sales" in html


def test_showing_the_page_to_sales_counts_exposures(sales, client, rec):
    """Count a showing for sales people; a manager's visit assigns the arm but is not an exposure."""
    manager = UserFactory(groups=["manager"])
    sales.get(detail_url(rec.customer.pseudonym))
    sales.get(detail_url(rec.customer.pseudonym))
    client.force_login(manager)
    client.get(detail_url(rec.customer.pseudonym))
    exposure = Exposure.objects.get(recommendation=rec)
    assert exposure.show_count == 2
    assert exposure.first_shown_at is not None


def test_outcome_from_a_control_item_is_stored_as_unexplained(sales, rec):
    """Store explained=False for an outcome on a control-arm recommendation."""
    ExposureFactory(recommendation=rec, arm=Exposure.Arm.CONTROL)
    sales.post(outcome_url(rec), {"kind": "won"})
    assert Outcome.objects.get().explained is False


@pytest.mark.parametrize("n_items", [1, 10])
def test_sales_customer_page_with_outcomes_query_count_is_constant(
    sales, sales_user, django_assert_max_num_queries, n_items
):
    """Outcomes and exposures of every card are read in a constant number of queries."""
    # given: every item explained, shown before and with outcomes
    customer = CustomerFactory()
    assign(sales_user, customer)
    for rank in range(1, n_items + 1):
        rec = RecommendationFactory(customer=customer, rank=rank)
        ExplanationFactory(recommendation=rec)
        OutcomeFactory(recommendation=rec, user=sales_user, comment="called")
        PurchaseFactory(customer=customer)
    sales.get(detail_url(customer.pseudonym))
    # when / then
    with django_assert_max_num_queries(11):
        response = sales.get(detail_url(customer.pseudonym))
    assert response.content.decode().count('<span class="badge badge--outcome-pitched">') == n_items


# --------------------------------------------------------------------------- profile in words


@pytest.mark.parametrize(("status", "shown"), [("approved", True), ("pending_review", False)])
def test_profile_in_words_is_shown_to_sales_once_approved(sales, sales_user, status, shown):
    """Show the customer's description to sales only when approved; otherwise say it is under review."""
    from explanations.models import CustomerDescription

    customer = CustomerFactory()
    assign(sales_user, customer)
    CustomerDescription.objects.create(
        customer=customer,
        text="Buys garden decorations in bulk before spring.",
        reference_text="Buys garden decorations.",
        method=CustomerDescription.Method.TEMPLATE,
        status=status,
        generated_at=timezone.now(),
    )
    html = sales.get(detail_url(customer.pseudonym)).content.decode()
    assert ("Buys garden decorations in bulk before spring." in html) is shown
    assert ("A description of this customer is under review." in html) is not shown


def test_profile_in_words_says_when_none_exists(sales, sales_user):
    """Say that no profile text exists (rather than leaving a gap)."""
    customer = CustomerFactory()
    assign(sales_user, customer)
    html = sales.get(detail_url(customer.pseudonym)).content.decode()
    assert "No approved profile text and no concept scores exist for this customer yet." in html
