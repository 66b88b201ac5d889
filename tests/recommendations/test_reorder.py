"""Re-order or new: the facts each recommendation carries about the customer's history with the product."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from explanations.confidence_model import order_days, pair_history
from recommendations.models import Purchase
from recommendations.services.reorder import NEW, reorder_facts
from tests.factories import CustomerFactory, ProductFactory, PurchaseFactory

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")
REFERENCE = datetime(2011, 12, 1, 12, tzinfo=LONDON)


def _buy(customer, product, day: str, hour: int = 10, **kwargs):
    at = datetime.fromisoformat(day).replace(hour=hour, tzinfo=LONDON)
    return PurchaseFactory(customer=customer, product=product, occurred_at=at, **kwargs)


def test_counts_orders_by_day_and_their_usual_interval():
    """Two lines on one day are one order; three orders 30 and 40 days apart are 'about every 35 days'."""
    # Given a customer who bought a product on three days (twice on the first) and another never
    customer, product, other = CustomerFactory(), ProductFactory(), ProductFactory()
    _buy(customer, product, "2011-08-01", 9)
    _buy(customer, product, "2011-08-01", 15)
    _buy(customer, product, "2011-08-31")
    _buy(customer, product, "2011-10-10")
    # When the facts of both pairs are read
    facts = reorder_facts(pairs=[(customer.pk, product.pk), (customer.pk, other.pk)], reference=REFERENCE)
    # Then the bought one is a re-order with its count, last day and mean interval; the other is new
    bought = facts[(customer.pk, product.pk)]
    assert (bought.times_bought, bought.last_bought) == (3, date(2011, 10, 10))
    assert bought.usual_interval_days == pytest.approx(35.0)
    assert facts[(customer.pk, other.pk)] == NEW


def test_ignores_returns_and_lines_after_the_reference():
    """A return, or a purchase after the batch's reference time, does not make a product a re-order."""
    # Given one return before the reference and one sale after it
    customer, product = CustomerFactory(), ProductFactory()
    _buy(customer, product, "2011-09-01", quantity=-2, kind=Purchase.Kind.RETURN)
    _buy(customer, product, "2011-12-05")
    # When the facts are read as of the reference
    facts = reorder_facts(pairs=[(customer.pk, product.pk)], reference=REFERENCE)
    # Then the product is still new to the customer
    assert facts[(customer.pk, product.pk)] == NEW


def test_a_single_order_has_no_usual_interval():
    """Bought once: a re-order with no interval to state."""
    customer, product = CustomerFactory(), ProductFactory()
    _buy(customer, product, "2011-11-02")
    fact = reorder_facts(pairs=[(customer.pk, product.pk)], reference=REFERENCE)[(customer.pk, product.pk)]
    assert (fact.times_bought, fact.last_bought, fact.usual_interval_days) == (1, date(2011, 11, 2), None)


def test_sql_facts_equal_the_confidence_models_pandas_facts():
    """The card's facts (SQL) and the confidence model's (pandas, used in fitting) are the same definition."""
    # Given random purchases of three customers and four products, some late at night (day boundaries)
    rng = np.random.default_rng(5)
    customers = [CustomerFactory() for _ in range(3)]
    products = [ProductFactory() for _ in range(4)]
    rows = []
    for _ in range(40):
        c, p = customers[rng.integers(3)], products[rng.integers(4)]
        at = datetime(2011, 1, 1, tzinfo=LONDON) + pd.Timedelta(hours=float(rng.uniform(0, 24 * 300)))
        PurchaseFactory(customer=c, product=p, occurred_at=at)
        rows.append({"customer": c.pk, "item": p.pk, "quantity": 6, "occurred_at": at.replace(tzinfo=None)})
    pairs = [(c.pk, p.pk) for c in customers for p in products]
    # When both compute the facts of every pair
    sql = reorder_facts(pairs=pairs, reference=REFERENCE)
    history = pair_history(order_days(pd.DataFrame(rows)), [c for c, _ in pairs], [p for _, p in pairs])
    # Then they agree pair by pair
    for k, pair in enumerate(pairs):
        assert sql[pair].times_bought == history.times_bought[k]
        if sql[pair].times_bought:
            assert np.datetime64(sql[pair].last_bought) == history.last_day[k].astype("datetime64[D]")
        if sql[pair].usual_interval_days is None:
            assert np.isnan(history.usual_interval[k])
        else:
            assert sql[pair].usual_interval_days == pytest.approx(history.usual_interval[k])
