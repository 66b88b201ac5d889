"""The purchase-probability model behind the confidence: features a sales manager recognises, fitted on folds.

Pure pandas / numpy / scikit-learn (no database, no torch): ``explanations.services.confidence`` feeds it
the database's sale lines, the offline report the CSV's. An "order" is a customer's calendar day with a
purchase (the interactions carry no invoice numbers), the same unit as the re-order facts on the cards.

Every feature is measured at a cutoff from the lines strictly before it, so a fold at a past cutoff and the
served recommendations (cutoff = the latest purchase) see the same definitions.
"""

from __future__ import annotations

import hashlib
import pickle
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from recommendations.evaluation.calibrator import (
    Calibrator,
    expected_calibration_error,
    fit_calibrator,
)
from recommendations.evaluation.training import REPURCHASE_PRIOR_BUYERS

DAY = pd.Timedelta(days=1)
RECENT_DAYS = 90  # "recent" popularity and order counts look back one horizon
NEVER = 9999.0  # days since a purchase that never happened (linear models cannot take NaN)

# (name, what a sales manager reads): the order of the columns of ``pair_features``. Counts that grow with the
# length of the history (all orders, distinct products, all buyers, the interval itself) are left out: the
# folds' cutoffs have 3 to 12 months of history behind them, and on validation the model without them told
# purchases apart better inside each list (within-list AUC 0.622 against 0.587; overall AUC equal).
FEATURES: tuple[tuple[str, str], ...] = (
    ("customer_orders_recent", "orders in the last 90 days"),
    ("customer_order_rate", "orders per 30 days since the first one"),
    ("customer_days_since_order", "days since the customer's last order"),
    ("customer_interval", "the customer's usual days between orders"),
    ("customer_due_ratio", "days since their last order / their usual interval (1 = due now)"),
    ("customer_basket", "mean number of products per order"),
    ("customer_orders_month", "orders in the last 30 days"),
    ("item_buyers_month", "customers who bought it in the last 30 days"),
    ("item_buyers_recent", "customers who bought it in the last 90 days"),
    ("item_repurchase_rate", "share of its buyers who bought it again on another day"),
    ("times_bought", "orders in which the customer bought this product (0 = new to them)"),
    ("days_since_bought", "days since the customer last bought this product"),
    ("due_ratio", "days since bought / usual interval (1 = due now)"),
    ("order_share", "share of the customer's orders that included this product"),
    ("score", "the recommender's score"),
    ("score_gap", "score below the best of the customer's list"),
    ("rank", "position in the customer's list"),
)
FEATURE_NAMES = tuple(name for name, _ in FEATURES)


def order_days(lines: pd.DataFrame) -> pd.DataFrame:
    """Return one row per (customer, item, day) with the quantity bought that day: the unit every count uses."""
    day = pd.to_datetime(lines["occurred_at"]).dt.normalize()
    frame = pd.DataFrame({"customer": lines["customer"].to_numpy(), "item": lines["item"].to_numpy(), "day": day})
    frame["quantity"] = lines["quantity"].to_numpy() if "quantity" in lines else 1
    return frame.groupby(["customer", "item", "day"], sort=False, as_index=False)["quantity"].sum()


@dataclass(frozen=True)
class PairHistory:
    """Per (customer, item): orders with it, first and last day; what re-order-or-new says on a card."""

    times_bought: np.ndarray  # int, 0 = new to the customer
    last_day: np.ndarray  # datetime64[ns], NaT when new
    usual_interval: np.ndarray  # float days between its orders, NaN unless bought on two days or more


def pair_history(days: pd.DataFrame, customers: Sequence, items: Sequence) -> PairHistory:
    """Return the re-order facts of each (customers[k], items[k]) from ``order_days`` rows."""
    grouped = days.groupby(["customer", "item"], sort=False)["day"].agg(["count", "min", "max"])
    index = pd.MultiIndex.from_arrays([np.asarray(customers), np.asarray(items)])
    joined = grouped.reindex(index)
    times = joined["count"].fillna(0).to_numpy(dtype=np.int64)
    first = pd.to_datetime(joined["min"]).to_numpy()
    last = pd.to_datetime(joined["max"]).to_numpy()
    span = (last - first) / np.timedelta64(1, "D")
    with np.errstate(invalid="ignore", divide="ignore"):
        interval = np.where(times >= 2, span / np.maximum(times - 1, 1), np.nan)
    return PairHistory(times, last, interval.astype(np.float64))


def pair_features(
    lines: pd.DataFrame,
    *,
    as_of: pd.Timestamp,
    customers: Sequence,
    items: Sequence,
    scores: Sequence[float],
    ranks: Sequence[int],
    list_best: Sequence[float] | None = None,
) -> np.ndarray:
    """Return the ``FEATURES`` matrix of recommended pairs from the sale lines before ``as_of``.

    ``lines`` has columns customer, item, quantity, occurred_at (any later lines are ignored).
    ``list_best``: the best score of each pair's list (default: the best among the given pairs).
    """
    as_of = pd.Timestamp(as_of)
    lines = lines.loc[pd.to_datetime(lines["occurred_at"]) < as_of]
    days = order_days(lines)
    customers = np.asarray(customers)
    items = np.asarray(items)
    scores = np.asarray(scores, dtype=np.float64)
    ranks = np.asarray(ranks, dtype=np.float64)
    age = (as_of - days["day"]) / DAY
    recent = days.loc[age <= RECENT_DAYS]
    month = days.loc[age <= 30]

    orders = days[["customer", "day"]].drop_duplicates()
    per_order = days.groupby(["customer", "day"], sort=False).size()
    customer = pd.DataFrame(
        {
            "orders": orders.groupby("customer").size(),
            "orders_recent": recent[["customer", "day"]].drop_duplicates().groupby("customer").size(),
            "orders_month": month[["customer", "day"]].drop_duplicates().groupby("customer").size(),
            "first": orders.groupby("customer")["day"].min(),
            "last": orders.groupby("customer")["day"].max(),
            "basket": per_order.groupby(level=0).mean(),
        }
    ).reindex(customers)
    tenure = ((as_of - customer["first"]) / DAY).to_numpy(dtype=np.float64)
    c_orders = customer["orders"].fillna(0).to_numpy(dtype=np.float64)
    c_since = ((as_of - customer["last"]) / DAY).to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        span = ((customer["last"] - customer["first"]) / DAY).to_numpy(dtype=np.float64)
        c_interval = np.where(c_orders >= 2, span / np.maximum(c_orders - 1, 1), np.nan)
        c_due = c_since / c_interval

    buyers_days = days.groupby(["item", "customer"], sort=False).size()
    item = pd.DataFrame(
        {
            "buyers": buyers_days.groupby(level=0).size(),
            "repeat": (buyers_days > 1).groupby(level=0).sum(),
            "buyers_recent": recent.groupby("item")["customer"].nunique(),
            "buyers_month": month.groupby("item")["customer"].nunique(),
        }
    ).reindex(items)
    i_buyers = item["buyers"].fillna(0).to_numpy(dtype=np.float64)

    history = pair_history(days, customers, items)
    elapsed = (as_of.to_datetime64() - history.last_day) / np.timedelta64(1, "D")
    since = np.where(history.times_bought > 0, elapsed, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        due = since / history.usual_interval
    if list_best is None:
        list_best = pd.Series(scores).groupby(customers).transform("max").to_numpy()
    list_best = np.asarray(list_best, dtype=np.float64)
    columns = {
        "customer_orders_recent": customer["orders_recent"].fillna(0).to_numpy(dtype=np.float64),
        "customer_order_rate": c_orders / np.maximum(np.nan_to_num(tenure, nan=0.0), 30.0) * 30.0,
        "customer_days_since_order": np.nan_to_num(c_since, nan=NEVER),
        "customer_interval": np.nan_to_num(c_interval, nan=NEVER),
        # Capped: one order in years is "long overdue", not an outlier that bends a linear model.
        "customer_due_ratio": np.clip(np.nan_to_num(c_due, nan=0.0, posinf=0.0), 0.0, 20.0),
        "customer_basket": customer["basket"].fillna(0).to_numpy(dtype=np.float64),
        "customer_orders_month": customer["orders_month"].fillna(0).to_numpy(dtype=np.float64),
        "item_buyers_month": item["buyers_month"].fillna(0).to_numpy(dtype=np.float64),
        "item_buyers_recent": item["buyers_recent"].fillna(0).to_numpy(dtype=np.float64),
        "item_repurchase_rate": (item["repeat"].fillna(0).to_numpy(dtype=np.float64) + 1.0)
        / (i_buyers + REPURCHASE_PRIOR_BUYERS),
        "times_bought": history.times_bought.astype(np.float64),
        "days_since_bought": np.nan_to_num(since, nan=NEVER),
        "due_ratio": np.nan_to_num(due, nan=0.0, posinf=0.0),
        "order_share": history.times_bought / np.maximum(c_orders, 1.0),
        "score": scores,
        "score_gap": list_best - scores,
        "rank": ranks,
    }
    return np.column_stack([columns[name] for name in FEATURE_NAMES])


# --------------------------------------------------------------------------- model


LOG_FEATURES = {"customer_orders_recent", "customer_orders_month", "item_buyers_month", "item_buyers_recent",
                "times_bought", "days_since_bought", "customer_days_since_order", "customer_interval"}  # fmt: skip


def _logistic_inputs(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    for col, name in enumerate(FEATURE_NAMES):
        if name in LOG_FEATURES:
            out[:, col] = np.log1p(np.maximum(out[:, col], 0.0))
    new = (x[:, FEATURE_NAMES.index("times_bought")] == 0).astype(np.float64)
    return np.column_stack([out, new])


@dataclass
class FittedConfidence:
    """A fitted classifier plus the calibration map fitted on a later fold."""

    kind: str  # "gradient_boosting" or "logistic"
    params: dict
    estimator: object
    calibrator: Calibrator | None = None
    tag: str = ""  # see version()

    def raw(self, x: np.ndarray) -> np.ndarray:
        inputs = _logistic_inputs(x) if self.kind == "logistic" else x
        with threadpool_limits(1):
            return self.estimator.predict_proba(inputs)[:, 1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        raw = self.raw(x)
        return np.clip(self.calibrator.predict(raw), 0.0, 1.0) if self.calibrator else raw

    def dumps(self) -> bytes:
        return pickle.dumps(self)

    def version(self) -> str:
        """Return ``<kind>@<digest of the model as fitted>``, fixed when it is calibrated (stable once stored)."""
        if not self.tag:
            self.tag = f"{self.kind}@{hashlib.sha256(pickle.dumps((self.estimator, self.calibrator))).hexdigest()[:12]}"
        return self.tag

    @staticmethod
    def loads(blob: bytes) -> FittedConfidence:
        return pickle.loads(blob)  # noqa: S301 - our own model row, written by confidence_model_fit


CANDIDATES: tuple[tuple[str, dict], ...] = (
    ("logistic", {"C": 1.0}),
    ("gradient_boosting", {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 100}),
)


def fit_estimator(kind: str, params: dict, x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> FittedConfidence:
    """Fit one candidate on the fitting folds' pairs."""
    if kind == "logistic":
        estimator = make_pipeline(StandardScaler(), LogisticRegression(C=params["C"], max_iter=2000))
        estimator.fit(_logistic_inputs(x), y)
    else:
        estimator = HistGradientBoostingClassifier(**params, l2_regularization=1.0, random_state=seed)
        with threadpool_limits(1):  # OpenMP threads on a shared, busy machine only slow the fit down
            estimator.fit(x, y)
    return FittedConfidence(kind, dict(params), estimator)


# --------------------------------------------------------------------------- measures


def within_list_auc(groups: np.ndarray, probabilities: np.ndarray, outcomes: np.ndarray) -> float | None:
    """Mean ROC AUC inside each list (customer) that has both a bought and an unbought recommendation.

    Per list, AUC = (sum of the bought pairs' ranks - n1 (n1 + 1) / 2) / (n1 n0), ties at their mean rank.
    """
    frame = pd.DataFrame({"g": groups, "p": probabilities, "y": np.asarray(outcomes, dtype=np.float64)})
    frame["r"] = frame.groupby("g", sort=False)["p"].rank(method="average")
    per = (
        frame.assign(ry=frame["r"] * frame["y"])
        .groupby("g", sort=False)
        .agg(n=("y", "size"), n1=("y", "sum"), ry=("ry", "sum"))
    )
    per = per.loc[(per["n1"] > 0) & (per["n1"] < per["n"])]
    if per.empty:
        return None
    n0 = per["n"] - per["n1"]
    return float(((per["ry"] - per["n1"] * (per["n1"] + 1) / 2) / (per["n1"] * n0)).mean())


def measures(groups, ranks, probabilities, outcomes, *, reorder=None) -> dict:
    """Return AUC, within-list AUC, ECE, and buy rate vs mean confidence per rank (and per kind)."""
    p = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(outcomes, dtype=np.int64)
    ranks = np.asarray(ranks)
    both = 0 < y.sum() < len(y)
    out = {
        "pairs": len(y),
        "buy_rate": float(y.mean()) if len(y) else None,
        "mean_confidence": float(p.mean()) if len(p) else None,
        "auc": float(roc_auc_score(y, p)) if both else None,
        "within_list_auc": within_list_auc(np.asarray(groups), p, y),
        "ece": expected_calibration_error(p, y),
        "by_rank": [_group(p, y, ranks == r, rank=int(r)) for r in np.unique(ranks)],
    }
    if reorder is not None:
        reorder = np.asarray(reorder, dtype=bool)
        kinds = (("reorder", reorder), ("new", ~reorder))
        out["by_kind"] = {kind: _group(p, y, mask, auc=True) for kind, mask in kinds}
    return out


def _group(p: np.ndarray, y: np.ndarray, mask: np.ndarray, *, auc: bool = False, **label) -> dict:
    n = int(mask.sum())
    row = {**label, "pairs": n, "buy_rate": float(y[mask].mean()) if n else None,
           "mean_confidence": float(p[mask].mean()) if n else None}  # fmt: skip
    if auc:
        row["auc"] = float(roc_auc_score(y[mask], p[mask])) if 0 < y[mask].sum() < n else None
    return row


def calibrate(model: FittedConfidence, x: np.ndarray, y: np.ndarray, *, method: str = "isotonic") -> FittedConfidence:
    """Fit the probability map of ``model``'s raw output on a later fold's pairs (never the fitting folds)."""
    model.calibrator = fit_calibrator(model.raw(x), y, method=method)
    model.tag = ""
    model.version()
    return model
