"""The confidence model's features, measures and fit, on hand-computable and synthetic data (no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from explanations import confidence_model as cm
from explanations.confidence_folds import TooLittleData, confidence_fit_report

CUTOFF = pd.Timestamp("2011-09-01")


def _lines(rows):
    return pd.DataFrame(rows, columns=["customer", "item", "quantity", "occurred_at"])


def _feature(x: np.ndarray, name: str, row: int = 0) -> float:
    return float(x[row, cm.FEATURE_NAMES.index(name)])


def test_features_of_a_hand_built_history():
    """A customer who orders a product every 30 days, last 30 days ago, is due now; the other item is new."""
    # Given customer a: item X on three days 30 days apart (two lines on the first), item Y once;
    # customer b: item Y once, and a line after the cutoff that must be ignored
    day = CUTOFF - pd.Timedelta(days=90)
    lines = _lines(
        [
            ("a", "X", 2, day + pd.Timedelta(hours=9)),
            ("a", "X", 1, day + pd.Timedelta(hours=15)),
            ("a", "Y", 1, day + pd.Timedelta(hours=15)),
            ("a", "X", 1, day + pd.Timedelta(days=30)),
            ("a", "X", 1, day + pd.Timedelta(days=60)),
            ("b", "Y", 4, day + pd.Timedelta(days=10)),
            ("b", "X", 9, CUTOFF + pd.Timedelta(days=1)),
        ]
    )
    # When the features of (a, X) and (b, X) are computed at the cutoff
    x = cm.pair_features(lines, as_of=CUTOFF, customers=["a", "b"], items=["X", "X"], scores=[0.5, 0.2], ranks=[1, 1])
    # Then a's re-order facts, order counts and basket are the hand-computed ones
    assert _feature(x, "times_bought") == 3 and _feature(x, "days_since_bought") == 30
    assert _feature(x, "due_ratio") == pytest.approx(1.0)  # 30 days since, usual interval 30 days
    assert _feature(x, "customer_orders_recent") == 3 and _feature(x, "customer_basket") == pytest.approx(4 / 3)
    assert _feature(x, "customer_days_since_order") == 30 and _feature(x, "customer_orders_month") == 1
    assert _feature(x, "customer_order_rate") == pytest.approx(3 / 90 * 30)
    assert _feature(x, "customer_interval") == 30 and _feature(x, "customer_due_ratio") == pytest.approx(1.0)
    assert _feature(x, "order_share") == pytest.approx(1.0)
    # And X has one buyer, who came back for it on other days: (1 + 1) / (1 + 5)
    assert _feature(x, "item_buyers_recent") == 1 and _feature(x, "item_repurchase_rate") == pytest.approx(2 / 6)
    # And for b, X is new (its purchase after the cutoff does not count)
    assert _feature(x, "times_bought", 1) == 0 and _feature(x, "days_since_bought", 1) == cm.NEVER
    assert _feature(x, "due_ratio", 1) == 0


def test_within_list_auc_is_the_mean_of_the_lists_aucs():
    """Average the AUC of each list with both outcomes; lists with one outcome only are left out."""
    rng = np.random.default_rng(0)
    groups = np.repeat(np.arange(30), 10)
    p = rng.uniform(size=300).round(1)  # ties inside lists
    y = (rng.uniform(size=300) < p).astype(int)
    y[:10] = 0  # one list without a purchase
    expected = np.mean(
        [roc_auc_score(y[groups == g], p[groups == g]) for g in range(30) if 0 < y[groups == g].sum() < 10]
    )
    assert cm.within_list_auc(groups, p, y) == pytest.approx(expected)


def _synthetic(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs whose purchase depends on the due ratio and the customer's order rate, as in real re-orders."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, len(cm.FEATURE_NAMES)))
    due = x[:, cm.FEATURE_NAMES.index("due_ratio")] * 3
    rate = x[:, cm.FEATURE_NAMES.index("customer_order_rate")] * 4
    logit = -3 + 1.5 * rate - 1.2 * np.abs(due - 1)
    return x, (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)


@pytest.mark.parametrize(("kind", "params"), list(cm.CANDIDATES))
def test_every_candidate_learns_a_signal_and_calibrates_on_a_later_fold(kind, params):
    """Fit on one fold, calibrate on a second and judge on a third: the signal is found, the figure is right."""
    # Given three independent folds of the same process
    (x_fit, y_fit), (x_val, y_val), (x_test, y_test) = (_synthetic(4000, s) for s in (1, 2, 3))
    # When a candidate is fitted, then calibrated on the later fold
    model = cm.calibrate(cm.fit_estimator(kind, params, x_fit, y_fit), x_val, y_val)
    p = model.predict(x_test)
    # Then it ranks purchases well and its probabilities match the observed frequencies
    assert roc_auc_score(y_test, p) > 0.7
    assert cm.expected_calibration_error(p, y_test) < 0.03
    # And a stored model predicts the same after a round trip
    again = cm.FittedConfidence.loads(model.dumps())
    np.testing.assert_allclose(again.predict(x_test), p)
    assert again.version() == model.version()


def _periodic_shop(seed: int = 0) -> tuple[pd.DataFrame, dict]:
    """60 customers who each re-order 3 of 12 products at their own rhythm over 400 days."""
    rng = np.random.default_rng(seed)
    items = [f"{20000 + i}" for i in range(12)]
    start = pd.Timestamp("2010-11-01")
    rows = []
    for c in range(60):
        every = rng.integers(30, 80)  # longer than the exclusion window below: the items come back as due
        for item in rng.choice(items, size=3, replace=False):
            day = float(rng.uniform(0, every))
            while day < 400:
                rows.append((f"c{c:02d}", item, int(rng.integers(1, 6)), start + pd.Timedelta(days=day)))
                day += every * rng.uniform(0.7, 1.3)
    lines = _lines(rows)
    lines["unit_price"], lines["region"] = 1.0, "United Kingdom"
    vectors = rng.normal(size=(len(items), 8))
    return lines, {code: v / np.linalg.norm(v) for code, v in zip(items, vectors, strict=True)}


def test_the_folds_report_measures_the_test_window_it_never_fitted_on():
    """Fitting folds before validation before test; the served model is the recipe one horizon later."""
    # Given a shop of regular re-orderers
    lines, embeddings = _periodic_shop()
    params = {"alpha": 1.0, "beta": 0.03, "gamma": 0.04, "rho": 4.0, "neighbours": 5, "shrinkage": 1.0,
              "half_life_days": 90.0, "pop_window_days": 30}  # fmt: skip
    # When the confidence model is chosen, calibrated and measured
    served, report = confidence_fit_report(lines, embeddings=embeddings, params=params, top_n=5, exclusion_days=20)
    # Then the cutoffs are ordered and every window ends by the next one's use
    cutoffs = report["cutoffs"]
    assert max(cutoffs["fitting"]) < cutoffs["validation"] < cutoffs["test"] < cutoffs["latest"]
    # And the regular rhythm is found on the test window, with a calibrated figure
    test = report["test"]
    assert test["auc"] > 0.7 and test["pairs"] == 60 * 5
    assert {row["rank"] for row in test["by_rank"]} == {1, 2, 3, 4, 5}
    assert set(test["by_kind"]) == {"reorder", "new"}
    assert served.calibrator is not None and report["chosen"]["kind"] in {k for k, _ in cm.CANDIDATES}


def test_too_few_pairs_is_too_little_data():
    """A shop with a few weeks of history cannot fill the folds: a clear TooLittleData, not a crash."""
    lines, embeddings = _periodic_shop()
    recent = lines.loc[lines["occurred_at"] > lines["occurred_at"].max() - pd.Timedelta(days=120)]
    with pytest.raises(TooLittleData, match="too little data"):
        confidence_fit_report(recent, embeddings=embeddings, params={"neighbours": 5}, top_n=5, exclusion_days=20)
