"""Calibration maths on hand-computable cases."""

import numpy as np
import pytest

from recommendations.evaluation.calibrator import (
    Calibrator,
    expected_calibration_error,
    fit_calibrator,
    reliability_table,
)


def test_ece_of_a_hand_built_case():
    """Compute ECE as the count-weighted gap between predicted and observed per bin."""
    # Given 4 predictions at 0.15 (1 of 4 happened) and 6 at 0.85 (3 of 6 happened)
    p = [0.15] * 4 + [0.85] * 6
    y = [1, 0, 0, 0] + [1, 1, 1, 0, 0, 0]
    # Then ECE = (4*|0.25-0.15| + 6*|0.5-0.85|) / 10
    assert expected_calibration_error(p, y) == pytest.approx((4 * 0.10 + 6 * 0.35) / 10)
    table = reliability_table(p, y)
    assert [row["count"] for row in table if row["count"]] == [4, 6]


def test_isotonic_calibration_reduces_ece_on_held_out_data():
    """Map over-confident scores to observed frequencies; ECE drops on fresh data."""
    rng = np.random.default_rng(0)

    def sample(n):
        s = rng.uniform(0, 1, n)
        y = rng.uniform(0, 1, n) < s**3  # true probability is s^3, the raw score over-states it
        return s, y

    s_fit, y_fit = sample(5000)
    s_test, y_test = sample(5000)
    cal = fit_calibrator(s_fit, y_fit)
    before = expected_calibration_error(s_test, y_test)
    after = expected_calibration_error(cal.predict(s_test), y_test)
    assert before > 0.15
    assert after < 0.03
    # And the calibrator survives a round trip through JSON-able data
    again = Calibrator.from_dict(cal.to_dict())
    assert np.allclose(again.predict(s_test), cal.predict(s_test))


def test_platt_is_monotone():
    """Fit a logistic map whose probabilities increase with the score."""
    s = np.linspace(0, 1, 200)
    y = (s > 0.5).astype(int)
    cal = fit_calibrator(s, y, method="platt")
    probs = cal.predict([0.1, 0.5, 0.9])
    assert probs[0] < probs[1] < probs[2]
