"""The purchase-probability model behind the confidence: features a sales manager recognises, fitted on folds.

Pure pandas / numpy / scikit-learn (no database, no torch): ``explanations.services.confidence`` feeds it
the database's sale lines, the offline report the CSV's. An "order" is a customer's calendar day with a
purchase (the interactions carry no invoice numbers), the same unit as the re-order facts on the cards.

Every feature is measured at a cutoff from the lines strictly before it, so a fold at a past cutoff and the
served recommendations (cutoff = the latest purchase) see the same definitions.
"""

from __future__ import annotations

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

from recommendations.evaluation.calibrator import Calibrator, expected_calibration_error, fit_calibrator
from recommendations.evaluation.training import REPURCHASE_PRIOR_BUYERS

DAY = pd.Timedelta(days=1)
RECENT_DAYS = 90  # "recent" popularity and order counts look back one horizon
NEVER = 9999.0  # days since a purchase that never happened (linear models cannot take NaN)

# (name, what a sales manager reads): the order of the columns of ``pair_features``.
FEATURES: tuple[tuple[str, str], ...] = (
    ("customer_orders", "orders the customer placed (days with a purchase)"),
    ("customer_orders_recent", "orders in the last 90 days"),
    ("customer_order_rate", "orders per 30 days since the first one"),
    ("customer_days_since_order", "days since the customer's last order"),
    ("customer_basket", "mean number of products per order"),
    ("customer_products", "distinct products the customer bought"),
    ("item_buyers", "customers who bought the product"),
    ("item_buyers_recent", "customers who bought it in the last 90 days"),
    ("item_repurchase_rate", "share of its buyers who bought it again on another day"),
    ("times_bought", "orders in which the customer bought this product (0 = new to them)"),
    ("days_since_bought", "days since the customer last bought this product"),
    ("usual_interval", "the customer's usual days between orders of this product"),
    ("due_ratio", "days since bought / usual interval (1 = due now)"),
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
) -> np.ndarray:
    """Return the ``FEATURES`` matrix of recommended pairs from the sale lines before ``as_of``.

    ``lines`` has columns customer, item, quantity, occurred_at (any later lines are ignored).
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

    orders = days[["customer", "day"]].drop_duplicates()
    per_order = days.groupby(["customer", "day"], sort=False).size()
    customer = pd.DataFrame(
        {
            "orders": orders.groupby("customer").size(),
            "orders_recent": recent[["customer", "day"]].drop_duplicates().groupby("customer").size(),
            "first": orders.groupby("customer")["day"].min(),
            "last": orders.groupby("customer")["day"].max(),
            "basket": per_order.groupby(level=0).mean(),
            "products": days.groupby("customer")["item"].nunique(),
        }
    ).reindex(customers)
    tenure = ((as_of - customer["first"]) / DAY).to_numpy(dtype=np.float64)
    c_orders = customer["orders"].fillna(0).to_numpy(dtype=np.float64)

    buyers_days = days.groupby(["item", "customer"], sort=False).size()
    item = pd.DataFrame(
        {
            "buyers": buyers_days.groupby(level=0).size(),
            "repeat": (buyers_days > 1).groupby(level=0).sum(),
            "buyers_recent": recent.groupby("item")["customer"].nunique(),
        }
    ).reindex(items)
    i_buyers = item["buyers"].fillna(0).to_numpy(dtype=np.float64)

    history = pair_history(days, customers, items)
    elapsed = (as_of.to_datetime64() - history.last_day) / np.timedelta64(1, "D")
    since = np.where(history.times_bought > 0, elapsed, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        due = since / history.usual_interval
    list_best = pd.Series(scores).groupby(customers).transform("max").to_numpy()
    columns = {
        "customer_orders": c_orders,
        "customer_orders_recent": customer["orders_recent"].fillna(0).to_numpy(dtype=np.float64),
        "customer_order_rate": c_orders / np.maximum(np.nan_to_num(tenure, nan=0.0), 30.0) * 30.0,
        "customer_days_since_order": ((as_of - customer["last"]) / DAY).fillna(NEVER).to_numpy(dtype=np.float64),
        "customer_basket": customer["basket"].fillna(0).to_numpy(dtype=np.float64),
        "customer_products": customer["products"].fillna(0).to_numpy(dtype=np.float64),
        "item_buyers": i_buyers,
        "item_buyers_recent": item["buyers_recent"].fillna(0).to_numpy(dtype=np.float64),
        "item_repurchase_rate": (item["repeat"].fillna(0).to_numpy(dtype=np.float64) + 1.0)
        / (i_buyers + REPURCHASE_PRIOR_BUYERS),
        "times_bought": history.times_bought.astype(np.float64),
        "days_since_bought": np.nan_to_num(since, nan=NEVER),
        "usual_interval": np.nan_to_num(history.usual_interval, nan=NEVER),
        "due_ratio": np.nan_to_num(due, nan=0.0, posinf=0.0),
        "score": scores,
        "score_gap": list_best - scores,
        "rank": ranks,
    }
    return np.column_stack([columns[name] for name in FEATURE_NAMES])


# --------------------------------------------------------------------------- model


LOG_FEATURES = {"customer_orders", "customer_orders_recent", "customer_products", "item_buyers",
                "item_buyers_recent", "times_bought", "days_since_bought", "usual_interval",
                "customer_days_since_order"}  # fmt: skip


def _logistic_inputs(x: np.ndarray) -> np.ndarray:
    out = x.copy()
    for col, name in enumerate(FEATURE_NAMES):
        if name in LOG_FEATURES:
            out[:, col] = np.log1p(np.maximum(out[:, col], 0.0))
    new = (x[:, FEATURE_NAMES.index("times_bought")] == 0).astype(np.float64)
    return np.column_stack([out, new])


@dataclass
class ConfidenceModel:
    """A fitted classifier plus the calibration map fitted on a later fold."""

    kind: str  # "gradient_boosting" or "logistic"
    params: dict
    estimator: object
    calibrator: Calibrator | None = None

    def raw(self, x: np.ndarray) -> np.ndarray:
        inputs = _logistic_inputs(x) if self.kind == "logistic" else x
        return self.estimator.predict_proba(inputs)[:, 1]

    def predict(self, x: np.ndarray) -> np.ndarray:
        raw = self.raw(x)
        return np.clip(self.calibrator.predict(raw), 0.0, 1.0) if self.calibrator else raw

    def dumps(self) -> bytes:
        return pickle.dumps(self)

    @staticmethod
    def loads(blob: bytes) -> ConfidenceModel:
        return pickle.loads(blob)  # noqa: S301 - our own model row, written by confidence_model_fit


CANDIDATES: tuple[tuple[str, dict], ...] = (
    ("logistic", {"C": 1.0}),
    ("gradient_boosting", {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 100}),
    ("gradient_boosting", {"max_iter": 400, "learning_rate": 0.03, "max_leaf_nodes": 31, "min_samples_leaf": 200}),
)


def fit_estimator(kind: str, params: dict, x: np.ndarray, y: np.ndarray, *, seed: int = 0) -> ConfidenceModel:
    """Fit one candidate on the fitting folds' pairs."""
    if kind == "logistic":
        estimator = make_pipeline(StandardScaler(), LogisticRegression(C=params["C"], max_iter=2000))
        estimator.fit(_logistic_inputs(x), y)
    else:
        estimator = HistGradientBoostingClassifier(**params, l2_regularization=1.0, random_state=seed)
        estimator.fit(x, y)
    return ConfidenceModel(kind, dict(params), estimator)


# --------------------------------------------------------------------------- measures


def within_list_auc(groups: np.ndarray, probabilities: np.ndarray, outcomes: np.ndarray) -> float | None:
    """Mean ROC AUC inside each list (customer) that has both a bought and an unbought recommendation."""
    frame = pd.DataFrame({"g": groups, "p": probabilities, "y": outcomes})
    aucs = []
    for _, part in frame.groupby("g", sort=False):
        y = part["y"].to_numpy()
        if 0 < y.sum() < len(y):
            aucs.append(roc_auc_score(y, part["p"].to_numpy()))
    return float(np.mean(aucs)) if aucs else None


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


def calibrate(model: ConfidenceModel, x: np.ndarray, y: np.ndarray, *, method: str = "isotonic") -> ConfidenceModel:
    """Fit the probability map of ``model``'s raw output on a later fold's pairs (never the fitting folds)."""
    model.calibrator = fit_calibrator(model.raw(x), y, method=method)
    return model


# --------------------------------------------------------------------------- folds


def replay_served(
    interactions: pd.DataFrame,
    *,
    embeddings,
    params: dict,
    cutoff: pd.Timestamp,
    horizon_days: int,
    exclusion_days: int,
    top_n: int,
) -> pd.DataFrame:
    """Return every served pair of the hybrid fitted before ``cutoff``: customer, item, rank, score, bought.

    Every customer with a purchase before the cutoff gets a top-``top_n`` list (the production exclusion
    rule applied); bought = the customer bought the item within ``horizon_days`` after the cutoff.
    """
    from recommendations.evaluation.baselines import rank_customers
    from recommendations.evaluation.hybrid import HybridRecommender
    from recommendations.evaluation.split import recently_bought
    from recommendations.evaluation.training import TrainingData

    cutoff = pd.Timestamp(cutoff)
    when = interactions["occurred_at"]
    train = interactions.loc[when < cutoff]
    data = TrainingData.from_interactions(train, as_of=cutoff, embeddings=embeddings)
    model = HybridRecommender(**dict(params)).fit(data)
    data = model.data
    customers = list(data.customers)
    excluded = recently_bought(train, as_of=cutoff, days=exclusion_days)
    ranked = rank_customers(model, customers, excluded, n=top_n)
    after = interactions.loc[(when >= cutoff) & (when < cutoff + pd.Timedelta(days=horizon_days))]
    bought = set(zip(after["customer"], after["item"], strict=True))
    rows, cols, out_customer, out_item, out_rank = [], [], [], [], []
    for customer, items in zip(customers, ranked, strict=True):
        for rank, item in enumerate(items, start=1):
            rows.append(data.customer_index[customer])
            cols.append(data.item_index[item])
            out_customer.append(customer)
            out_item.append(item)
            out_rank.append(rank)
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    scores = np.empty(len(rows))
    unique_rows, inverse = np.unique(rows, return_inverse=True)
    for start in range(0, len(unique_rows), 1024):
        block = model.score(unique_rows[start : start + 1024])
        mask = (inverse >= start) & (inverse < start + 1024)
        scores[mask] = block[inverse[mask] - start, cols[mask]]
    return pd.DataFrame(
        {
            "customer": out_customer,
            "item": out_item,
            "rank": out_rank,
            "score": scores,
            "bought": [(c, i) in bought for c, i in zip(out_customer, out_item, strict=True)],
        }
    )


def fold_features(interactions: pd.DataFrame, pairs: pd.DataFrame, *, cutoff) -> np.ndarray:
    """Return the feature matrix of a fold's served pairs, from the lines before its cutoff."""
    return pair_features(
        interactions,
        as_of=cutoff,
        customers=pairs["customer"].to_numpy(),
        items=pairs["item"].to_numpy(),
        scores=pairs["score"].to_numpy(),
        ranks=pairs["rank"].to_numpy(),
    )
