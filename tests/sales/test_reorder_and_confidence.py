"""Re-order or new on the card (text, page filter, API filter) and the confidence band with its meaning."""

from __future__ import annotations

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import translation

from explanations.presentation import confidence_view
from sales.presentation import history_text
from tests.factories import CustomerFactory, ExplanationFactory, RecommendationFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]


@pytest.fixture
def signed_in(client):
    client.force_login(UserFactory(username="manager", groups=["manager"]))
    return client


def _mixed_list():
    """A customer with a re-order at rank 1 and a new product at rank 2."""
    customer = CustomerFactory(pseudonym="ab00000000000007")
    reorder = RecommendationFactory(
        customer=customer, rank=1, times_bought=4, last_bought=dt.date(2011, 10, 2), usual_interval_days=35.2,
        product__description="REORDERED MUG",
    )  # fmt: skip
    new = RecommendationFactory(customer=customer, rank=2, product__description="BRAND NEW LANTERN")
    return customer, reorder, new


@pytest.mark.parametrize(
    ("times", "last", "interval", "expected"),
    [
        (4, dt.date(2011, 10, 2), 35.2, "Re-order: bought 4 times, last on 2011-10-02, about every 35 days"),
        (1, dt.date(2011, 11, 5), None, "Re-order: bought once, last on 2011-11-05"),
        (0, None, None, "New to this customer"),
    ],
)
def test_the_card_says_re_order_or_new(times, last, interval, expected):
    """State how often and when the customer bought the product and their usual interval, or that it is new."""
    # Given a recommendation with these re-order facts
    rec = RecommendationFactory.build(times_bought=times, last_bought=last, usual_interval_days=interval)
    # When its history is written (in English)
    with translation.override("en"):
        text = history_text(rec)
    # Then it reads as a sales person expects
    assert text == expected


def test_the_history_is_written_in_japanese():
    """The Japanese page gets the Japanese sentence."""
    rec = RecommendationFactory.build(times_bought=4, last_bought=dt.date(2011, 10, 2), usual_interval_days=35)
    with translation.override("ja"):
        text = history_text(rec)
    assert "2011-10-02" in text and "35" in text and "Re-order" not in text


@pytest.mark.parametrize(
    ("kind", "shown", "hidden"),
    [("reorder", "REORDERED MUG", "BRAND NEW LANTERN"), ("new", "BRAND NEW LANTERN", "REORDERED MUG")],
)
def test_the_customer_page_filters_re_orders_and_new_products(signed_in, kind, shown, hidden):
    """?kind=reorder shows only re-orders, ?kind=new only new products; each card says which it is."""
    # Given a list with one of each
    customer, _, _ = _mixed_list()
    url = reverse("customer-detail", kwargs={"pseudonym": customer.pseudonym})
    # When the page is filtered, and when it is not
    filtered = signed_in.get(url, {"kind": kind}).content.decode()
    everything = signed_in.get(url, {"kind": "bogus"}).content.decode()
    # Then the filter keeps only that kind, and an unknown kind shows all
    assert shown in filtered and hidden not in filtered
    assert "REORDERED MUG" in everything and "BRAND NEW LANTERN" in everything
    assert "Re-order: bought 4 times, last on 2011-10-02, about every 35 days" in everything
    assert "New to this customer" in everything


def test_the_api_filters_by_kind_and_rejects_an_unknown_one(api_client):
    """GET .../recommendations/?kind=reorder returns only re-orders; an unknown kind is a 400."""
    customer, _, _ = _mixed_list()
    api_client.force_authenticate(UserFactory(groups=["manager"]))
    url = f"/api/customers/{customer.pseudonym}/recommendations/"
    # When the API is asked for each kind
    reorders = api_client.get(url, {"kind": "reorder"}).json()
    new = api_client.get(url, {"kind": "new"}).json()
    bad = api_client.get(url, {"kind": "old"})
    # Then each answer holds its kind only, with the card's text
    assert [(r["rank"], r["kind"]) for r in reorders] == [(1, "reorder")]
    assert reorders[0]["history"].startswith("Re-order: bought 4 times")
    assert [(r["rank"], r["kind"]) for r in new] == [(2, "new")]
    assert bad.status_code == 400 and "kind" in bad.json()


@pytest.mark.parametrize(
    ("probability", "band", "meaning"),
    [
        (0.31, "high", "About 31 in 100 recommendations like this one led to a purchase within 90 days."),
        (0.12, "medium", "About 12 in 100 recommendations like this one led to a purchase within 90 days."),
        (0.03, "low", "About 3 in 100 recommendations like this one led to a purchase within 90 days."),
        (0.002, "low", "Fewer than 1 in 100 recommendations like this one led to a purchase within 90 days."),
    ],
)
def test_the_confidence_has_a_band_and_a_one_line_meaning(probability, band, meaning):
    with translation.override("en"):
        view = confidence_view(probability)
    assert (view.band, view.meaning) == (band, meaning)


def test_the_confidence_band_shows_on_the_page_and_in_the_api(signed_in, api_client):
    """The page shows the band and meaning beside the figure; the API returns the same."""
    explanation = ExplanationFactory(confidence=0.27)
    pseudonym = explanation.recommendation.customer.pseudonym
    html = signed_in.get(reverse("customer-detail", kwargs={"pseudonym": pseudonym})).content.decode()
    api_client.force_authenticate(UserFactory(groups=["manager"]))
    body = api_client.get(f"/api/customers/{pseudonym}/recommendations/").json()
    assert "badge--confidence-high" in html and "About 27 in 100 recommendations like this one" in html
    assert body[0]["explanation"]["confidence_band"] == "high"
    assert body[0]["explanation"]["confidence_meaning"].startswith("About 27 in 100")
    assert confidence_view(None) is None
