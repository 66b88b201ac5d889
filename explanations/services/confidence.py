"""Fit the confidence calibration by replaying the recommender at past cutoffs of the real data.

Validation cutoff = latest purchase - 2 x horizon, test cutoff = latest purchase - horizon: the
map is fitted on what customers really bought in the validation window and judged on the test
window, which it never saw.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
import scipy.sparse as sp
from django.conf import settings

from explanations.models import ConfidenceCalibration
from recommendations import profile
from recommendations.evaluation.calibrator import expected_calibration_error, fit_calibrator, reliability_table
from recommendations.models import Product, Purchase
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


def hybrid_confidence_calibrate(*, params: Mapping, horizon_days: int = 90, method: str = "platt"):
    """Fit score -> P(bought within the horizon) for the hybrid on the validation window; ECE on the test window.

    The same windows as the embedding recommender's calibration: validation cutoff = latest purchase - 2
    horizons, test cutoff = latest purchase - 1 horizon (midnight). Platt by default: the hybrid's score is a
    per-customer weighted mean, nearly flat against the purchase rate across customers, and isotonic
    regression over-fits its sparse low tail (it mapped the heaviest buyers' scores to 0%).
    """
    from recommendations.evaluation.calibration import TooLittleData, calibration_report, replay_pairs, require_pairs
    from recommendations.evaluation.data import embeddings_from_db
    from recommendations.evaluation.hybrid import HybridRecommender
    from recommendations.evaluation.training import TrainingData
    from recommendations.services.production import HYBRID, interactions_for_fit, timezone_aware

    interactions, as_of = interactions_for_fit()
    if interactions.empty:
        raise TooLittleData("too little data: no purchases imported yet")
    embeddings = embeddings_from_db()
    test_cutoff = (as_of - pd.Timedelta(days=horizon_days)).normalize()
    val_cutoff = test_cutoff - pd.Timedelta(days=horizon_days)
    pairs = []
    for cutoff in (val_cutoff, test_cutoff):
        train = interactions.loc[interactions["occurred_at"] < cutoff]
        if train["customer"].nunique() < 2:
            raise TooLittleData(f"too little data: purchases of {train['customer'].nunique()} customers before "
                                f"the cutoff {cutoff:%Y-%m-%d} (two horizons before the latest purchase)")  # fmt: skip
        model = HybridRecommender(**dict(params)).fit(
            TrainingData.from_interactions(train, as_of=cutoff, embeddings=embeddings)
        )
        pairs.append(
            replay_pairs(
                model,
                interactions,
                cutoff=cutoff,
                horizon_days=horizon_days,
                exclusion_days=settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS,
                top_n=settings.ELM_RECOMMENDATIONS_PER_CUSTOMER,
            )
        )
    for window, (scores, outcomes) in zip(("validation", "test"), pairs, strict=True):
        require_pairs(window, scores, outcomes)
    report = calibration_report(pairs[0], pairs[1], method=method)
    return ConfidenceCalibration.objects.create(
        recommender=HYBRID,
        method=method,
        params=report["params"],
        validation_cutoff=timezone_aware(val_cutoff),
        test_cutoff=timezone_aware(test_cutoff),
        horizon_days=horizon_days,
        validation_pairs=report["validation_pairs"],
        test_pairs=report["test_pairs"],
        base_rate=report["base_rate"],
        ece_before=report["ece_before"],
        ece_after=report["ece_after"],
        reliability=report["reliability_after"],
        reliability_before=report["reliability_before"],
    )


def confidence_predict(*, recommendations: list) -> list[float | None]:
    """Return each recommendation's calibrated purchase probability (None where its recommender has no calibration).

    A thin wrapper over the score calibration: one calibrator per recommender, one vectorized predict.
    """
    from explanations.selectors import calibration_latest
    from recommendations.evaluation.calibrator import Calibrator

    out: list[float | None] = [None] * len(recommendations)
    by_recommender: dict[str, list[int]] = {}
    for i, rec in enumerate(recommendations):
        by_recommender.setdefault(rec.batch.recommender, []).append(i)
    for recommender, members in by_recommender.items():
        calibration = calibration_latest(recommender=recommender)
        if calibration is None:
            continue
        predicted = Calibrator.from_dict(calibration.params).predict([recommendations[i].score for i in members])
        for i, p in zip(members, predicted, strict=True):
            out[i] = float(p)
    return out
