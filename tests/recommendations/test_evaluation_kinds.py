"""The offline evaluation's split of recommendations into re-orders and new products, on a hand-built case."""

from __future__ import annotations

import pandas as pd
import pytest

from recommendations.evaluation.baselines import PopularityRecommender
from recommendations.evaluation.kinds import kind_report
from recommendations.evaluation.training import TrainingData

CUTOFF = pd.Timestamp("2011-09-01")


def test_re_orders_and_new_products_are_counted_and_scored_apart():
    """Popularity ranks A (3 buyers), C (2), B (1); each list splits by what the customer bought before."""
    # Given four customers' purchases before the cutoff (c1's B is in the exclusion window) and two after
    rows = [
        ("c1", "A", "2011-03-01"), ("c1", "B", "2011-08-20"),
        ("c2", "A", "2011-04-01"), ("c2", "C", "2011-04-02"),
        ("c3", "A", "2011-05-01"),
        ("c4", "C", "2011-05-05"),
        ("c1", "C", "2011-09-10"), ("c3", "A", "2011-10-01"),
    ]  # fmt: skip
    interactions = pd.DataFrame(
        [{"customer": c, "item": i, "quantity": 1, "unit_price": 1.0, "occurred_at": pd.Timestamp(d),
          "region": "United Kingdom"} for c, i, d in rows]
    )  # fmt: skip
    train = interactions.loc[interactions["occurred_at"] < CUTOFF]
    model = PopularityRecommender(window_days=None).fit(TrainingData.from_interactions(train, as_of=CUTOFF))
    # When the top-2 lists at the cutoff are split by kind
    report = kind_report(model, interactions, cutoff=CUTOFF, top_n=2)
    # Then re-orders are c1 A, c2 A, c2 C, c3 A, c4 C (c3's A bought again: 1 of 5)
    # and new products c1 C, c3 C, c4 A (c1's C bought: 1 of 3)
    assert report["reorder"] == {"recommendations": 5, "share": pytest.approx(5 / 8), "bought": pytest.approx(0.2)}
    assert report["new"] == {"recommendations": 3, "share": pytest.approx(3 / 8), "bought": pytest.approx(1 / 3)}
