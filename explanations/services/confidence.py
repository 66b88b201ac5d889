"""Fit the confidence calibration by replaying the recommender at past cutoffs of the real data.

Validation cutoff = latest purchase - 2 x horizon, test cutoff = latest purchase - horizon: the
map is fitted on what customers really bought in the validation window and judged on the test
window, which it never saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

import numpy as np
import pandas as pd
import scipy.sparse as sp
from django.conf import settings
from django.db import connection
from django.utils import timezone

from explanations.confidence_model import FEATURE_NAMES, FittedConfidence, pair_features
from explanations.models import ConfidenceCalibration
from explanations.selectors import calibration_latest
from recommendations import profile
from recommendations.evaluation.calibrator import expected_calibration_error, fit_calibrator, reliability_table
from recommendations.models import Product, Purchase, Recommendation
from recommendations.services.recommend import RECOMMENDER
from recommendations.vectors import fetch_vectors


@dataclass
class Replay:
    scores: np.ndarray
    outcomes: np.ndarray
    customers: int


def _purchases() -> pd.DataFrame:
    rows = Purchase.objects.filter(
        customer__isnull=False, kind__in=[Purchase.Kind.SALE, Purchase.Kind.RETURN]
    ).values_list("customer_id", "product_id", "quantity", "occurred_at", "kind")
    return pd.DataFrame.from_records(list(rows), columns=["customer", "product", "quantity", "at", "kind"])


def replay(
    purchases: pd.DataFrame, products: np.ndarray, matrix: np.ndarray, *, cutoff: datetime, horizon_days: int,
    exclusion_days: int, top_n: int, half_life_days: float,
) -> Replay:  # fmt: skip
    """Recommend as of ``cutoff`` from purchases before it; label what was bought in the horizon after."""
    before = purchases[purchases["at"] < cutoff]
    qty = before.groupby(["customer", "product"])["quantity"].sum().rename("qty")
    last = before[before["kind"] == "sale"].groupby(["customer", "product"])["at"].max().rename("last")
    net = pd.concat([qty, last], axis=1, join="inner")
    net = net[net["qty"] > 0]
    age = (cutoff - net["last"]).dt.total_seconds() / 86400
    net["w"] = np.log1p(net["qty"]) * 0.5 ** (age.clip(lower=0) / half_life_days)
    col = {pid: j for j, pid in enumerate(products)}
    net = net.reset_index()
    net = net[net["product"].isin(col)]
    customers = np.sort(net["customer"].unique())
    row = {cid: i for i, cid in enumerate(customers)}
    weights = sp.coo_matrix(
        (net["w"].to_numpy(), (net["customer"].map(row).to_numpy(), net["product"].map(col).to_numpy())),
        shape=(len(customers), len(products)),
    ).tocsr()  # duplicate (customer, product) entries add up, as the per-row sum does
    vectors, _ = profile.customer_vectors(weights, matrix)
    scores = vectors @ matrix.T
    recent = before[(before["at"] >= cutoff - timedelta(days=exclusion_days)) & (before["kind"] == "sale")]
    recent = recent[recent["customer"].isin(row) & recent["product"].isin(col)]
    scores[recent["customer"].map(row).to_numpy(), recent["product"].map(col).to_numpy()] = -np.inf
    top = np.argpartition(-scores, top_n, axis=1)[:, :top_n]
    after = purchases[(purchases["at"] >= cutoff) & (purchases["at"] < cutoff + timedelta(days=horizon_days))]
    after = after[(after["kind"] == "sale") & after["customer"].isin(row) & after["product"].isin(col)]
    bought = set(zip(after["customer"].map(row), after["product"].map(col), strict=True))
    picked = scores[np.arange(len(customers))[:, None], top]
    outcomes = np.array([[(i, j) in bought for j in top[i]] for i in range(len(customers))])
    return Replay(picked.ravel(), outcomes.ravel().astype(int), len(customers))


def confidence_calibrate(*, horizon_days: int = 90, method: str = "isotonic") -> ConfidenceCalibration:
    """Fit score -> P(bought within the horizon) on the validation window; report ECE on the test window.

    Calibrates the production recommender's scores: the hybrid's when it serves, else the embedding cosine.
    """
    from recommendations.services.production import HYBRID, production_choice

    choice = production_choice()
    if choice.recommender == HYBRID:
        return hybrid_confidence_calibrate(params=choice.params, horizon_days=horizon_days)
    from recommendations.evaluation.calibration import TooLittleData, require_pairs

    purchases = _purchases()
    if purchases.empty:
        raise TooLittleData("too little data: no purchases imported yet")
    vectors = fetch_vectors(Product._meta.db_table, where="is_merchandise")
    products = np.array(list(vectors))
    matrix = np.stack([vectors[pid].astype(np.float64) for pid in products])
    latest = profile.reference_time()
    test_cutoff = latest - timedelta(days=horizon_days)
    val_cutoff = test_cutoff - timedelta(days=horizon_days)
    common = {
        "horizon_days": horizon_days,
        "exclusion_days": settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS,
        "top_n": settings.ELM_RECOMMENDATIONS_PER_CUSTOMER,
        "half_life_days": settings.ELM_RECENCY_HALF_LIFE_DAYS,
    }
    if (purchases["at"] < val_cutoff).sum() == 0:
        raise TooLittleData(f"too little data: no purchase before the validation cutoff {val_cutoff:%Y-%m-%d}")
    val = replay(purchases, products, matrix, cutoff=val_cutoff, **common)
    test = replay(purchases, products, matrix, cutoff=test_cutoff, **common)
    require_pairs("validation", val.scores, val.outcomes)
    require_pairs("test", test.scores, test.outcomes)
    calibrator = fit_calibrator(val.scores, val.outcomes, method=method)
    calibrated = calibrator.predict(test.scores)
    raw = np.clip(test.scores, 0, 1)
    return ConfidenceCalibration.objects.create(
        recommender=RECOMMENDER,
        method=method,
        params=calibrator.to_dict(),
        validation_cutoff=val_cutoff,
        test_cutoff=test_cutoff,
        horizon_days=horizon_days,
        validation_pairs=len(val.scores),
        test_pairs=len(test.scores),
        base_rate=float(test.outcomes.mean()),
        ece_before=expected_calibration_error(raw, test.outcomes),
        ece_after=expected_calibration_error(calibrated, test.outcomes),
        reliability=reliability_table(calibrated, test.outcomes),
        reliability_before=reliability_table(raw, test.outcomes),
    )


def hybrid_confidence_calibrate(*, params: Mapping, horizon_days: int = 90) -> ConfidenceCalibration:
    """Fit the hybrid's purchase-probability model on temporal folds and store it with its test measures.

    The folds, the candidates (chosen on validation only) and the calibration on a later fold are
    :func:`explanations.confidence_folds.confidence_fit_report`'s; the stored model is the one the test window
    measured. Too little data raises TooLittleData (the job reports a skip).
    """
    from explanations.confidence_folds import TooLittleData as FoldsTooSmall
    from explanations.confidence_folds import confidence_fit_report
    from recommendations.evaluation.calibration import TooLittleData
    from recommendations.evaluation.data import embeddings_from_db
    from recommendations.services.production import HYBRID, interactions_for_fit, timezone_aware

    interactions, _ = interactions_for_fit()
    if interactions.empty:
        raise TooLittleData("too little data: no purchases imported yet")
    try:
        served, report = confidence_fit_report(
            interactions,
            embeddings=embeddings_from_db(),
            params=params,
            horizon_days=horizon_days,
            exclusion_days=settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS,
            top_n=settings.ELM_RECOMMENDATIONS_PER_CUSTOMER,
        )
    except FoldsTooSmall as exc:
        raise TooLittleData(str(exc)) from exc
    test = report["test"]
    return ConfidenceCalibration.objects.create(
        recommender=HYBRID,
        method=f"{served.kind}+{served.calibrator.method}",
        params={"model": served.kind, "params": served.params, "features": list(FEATURE_NAMES)},
        version=served.version(),
        artifact=served.dumps(),
        metrics=report,
        validation_cutoff=timezone_aware(pd.Timestamp(report["cutoffs"]["validation"])),
        test_cutoff=timezone_aware(pd.Timestamp(report["cutoffs"]["test"])),
        horizon_days=horizon_days,
        validation_pairs=report["validation_pairs"],
        test_pairs=test["pairs"],
        base_rate=test["buy_rate"],
        ece_before=report["test_uncalibrated_ece"],
        ece_after=test["ece"],
        reliability=report["test_reliability"],
        reliability_before=report["test_reliability_uncalibrated"],
    )


# --------------------------------------------------------------------------- served confidence

SERVED_LINES_SQL = """
    SELECT p.customer_id, p.product_id, p.quantity, (p.occurred_at AT TIME ZONE %(tz)s) AS occurred_at
    FROM recommendations_purchase p JOIN recommendations_product pr ON pr.id = p.product_id
    WHERE p.kind = 'sale' AND p.customer_id IS NOT NULL AND pr.is_merchandise AND p.quantity > 0
          AND p.unit_price > 0 AND p.occurred_at <= %(reference)s
"""


_lines_cache: dict[tuple, pd.DataFrame] = {}


def _served_lines(reference) -> pd.DataFrame:
    """Return the sale lines the fit counts (the evaluation's interactions), keyed by database ids.

    Kept per process while the purchases are unchanged (count, newest id, lines with a customer: an erasure
    detaches lines): each explain shard asks again.
    """
    with connection.cursor() as cur:
        cur.execute("SELECT count(*), max(id), count(customer_id) FROM recommendations_purchase")
        key = (reference, *cur.fetchone())
        if key not in _lines_cache:
            cur.execute(SERVED_LINES_SQL, {"tz": settings.TIME_ZONE, "reference": reference})
            rows = cur.fetchall()
            _lines_cache.clear()
            _lines_cache[key] = pd.DataFrame.from_records(rows, columns=["customer", "item", "quantity", "occurred_at"])
    return _lines_cache[key]


def confidence_predict(*, recommendations: list[Recommendation]) -> list[float | None]:
    """Return the calibrated P(bought within the horizon) of each recommendation (None: not calibrated).

    Vectorized: one read of the sale lines and one model call for the whole list. Each batch reads the
    newest calibration of its own recommender; a row without a model artifact maps the score alone.
    """
    out: list[float | None] = [None] * len(recommendations)
    by_recommender: dict[str, list[int]] = {}
    for k, rec in enumerate(recommendations):
        by_recommender.setdefault(rec.batch.recommender, []).append(k)
    for recommender, positions in by_recommender.items():
        calibration = calibration_latest(recommender=recommender)
        if calibration is None:
            continue
        recs = [recommendations[k] for k in positions]
        if calibration.artifact is None:
            from recommendations.evaluation.calibrator import Calibrator

            values = Calibrator.from_dict(calibration.params).predict([r.score for r in recs])
        else:
            values = _model_predict(calibration, recs)
        for k, value in zip(positions, values, strict=True):
            out[k] = float(value)
    return out


def _model_predict(calibration: ConfidenceCalibration, recs: list[Recommendation]) -> np.ndarray:
    model = _loaded_model(calibration.pk, bytes(calibration.artifact))
    reference = profile.reference_time()
    local = timezone.localtime(reference, timezone.get_default_timezone()).replace(tzinfo=None)
    # The folds' cutoffs are midnights with the lines before them; the served one is the midnight after
    # the latest purchase, so its whole last day counts and ages are measured alike.
    as_of = pd.Timestamp(local).normalize() + pd.Timedelta(days=1)
    best = dict(
        Recommendation.objects.filter(
            batch_id__in={r.batch_id for r in recs}, customer_id__in={r.customer_id for r in recs}, rank=1
        ).values_list("customer_id", "score")
    )
    features = pair_features(
        _served_lines(reference),
        as_of=as_of,
        customers=[r.customer_id for r in recs],
        items=[r.product_id for r in recs],
        scores=[r.score for r in recs],
        ranks=[r.rank for r in recs],
        list_best=[best.get(r.customer_id, r.score) for r in recs],
    )
    return model.predict(features)


@lru_cache(maxsize=2)
def _loaded_model(pk: int, blob: bytes) -> FittedConfidence:
    return FittedConfidence.loads(blob)
