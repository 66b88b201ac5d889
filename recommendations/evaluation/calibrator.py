"""Calibrated confidence: isotonic (or Platt) maps a recommendation score to P(bought within 90 days).

Plain statistics (no model code): the offline evaluation reports calibration with it, and explanations fit
the served confidence with it (``explanations.services.confidence``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression


@dataclass
class Calibrator:
    method: str
    x_thresholds: list[float] = field(default_factory=list)
    y_thresholds: list[float] = field(default_factory=list)
    platt: tuple[float, float] | None = None

    def predict(self, scores) -> np.ndarray:
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            a, b = self.platt
            return 1 / (1 + np.exp(-(a * s + b)))
        return np.interp(s, self.x_thresholds, self.y_thresholds)

    def to_dict(self) -> dict:
        return {"method": self.method, "x": self.x_thresholds, "y": self.y_thresholds, "platt": self.platt}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        platt = tuple(data["platt"]) if data.get("platt") else None
        return cls(data["method"], list(data.get("x", [])), list(data.get("y", [])), platt)


def fit_calibrator(scores, outcomes, *, method: str = "isotonic") -> Calibrator:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(outcomes, dtype=np.float64)
    if method == "platt":
        model = LogisticRegression(C=1e6, max_iter=1000).fit(s.reshape(-1, 1), y)
        return Calibrator("platt", platt=(float(model.coef_[0][0]), float(model.intercept_[0])))
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y)
    return Calibrator("isotonic", [float(v) for v in iso.X_thresholds_], [float(v) for v in iso.y_thresholds_])


def reliability_table(probabilities, outcomes, *, bins: int = 10) -> list[dict]:
    """Return per equal-width bin: range, count, mean predicted probability, observed frequency."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 0, 1)
    y = np.asarray(outcomes, dtype=np.float64)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        table.append(
            {
                "low": float(edges[b]),
                "high": float(edges[b + 1]),
                "count": n,
                "predicted": float(p[mask].mean()) if n else None,
                "observed": float(y[mask].mean()) if n else None,
            }
        )
    return table


def expected_calibration_error(probabilities, outcomes, *, bins: int = 10) -> float:
    """ECE: the count-weighted mean |observed - predicted| over equal-width bins."""
    table = reliability_table(probabilities, outcomes, bins=bins)
    total = sum(row["count"] for row in table)
    if not total:
        return 0.0
    return float(sum(row["count"] * abs(row["observed"] - row["predicted"]) for row in table if row["count"]) / total)
