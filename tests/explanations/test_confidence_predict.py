"""The served confidence: the stored model over the database equals the model over the same lines in pandas."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from django.utils import timezone

from explanations import confidence_model as cm
from explanations.models import ConfidenceCalibration
from explanations.services.confidence import confidence_predict
from recommendations.evaluation.calibrator import fit_calibrator
from recommendations.models import Purchase
from tests.factories import (
    CustomerFactory,
    ProductFactory,
    PurchaseFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
)

pytestmark = pytest.mark.django_db
LONDON = ZoneInfo("Europe/London")


def _fitted() -> cm.FittedConfidence:
    """A model fitted on random pairs whose purchase depends on the re-order facts and the rank."""
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 3, size=(3000, len(cm.FEATURE_NAMES)))
    logit = x[:, cm.FEATURE_NAMES.index("times_bought")] - 0.5 * x[:, cm.FEATURE_NAMES.index("rank")] - 1
    y = (rng.uniform(size=3000) < 1 / (1 + np.exp(-logit))).astype(int)
    return cm.calibrate(cm.fit_estimator("logistic", {"C": 1.0}, x, y), x, y)


def _store(model: cm.FittedConfidence, recommender: str = "hybrid") -> ConfidenceCalibration:
    now = timezone.now()
    return ConfidenceCalibration.objects.create(
        recommender=recommender, method="logistic+isotonic", params={}, version=model.version(),
        artifact=model.dumps(), validation_cutoff=now, test_cutoff=now, horizon_days=90, validation_pairs=1,
        test_pairs=1, base_rate=0.1, ece_before=0.0, ece_after=0.0, reliability=[], reliability_before=[],
    )  # fmt: skip


def test_served_confidence_equals_the_model_over_the_same_history():
    """One vectorized call over the database gives what the fitted model gives over the pandas lines."""
    # Given three customers' purchases (one return, which does not count) and their ranked recommendations
    rng = np.random.default_rng(1)
    customers = [CustomerFactory() for _ in range(3)]
    products = [ProductFactory() for _ in range(5)]
    lines = []
    for _ in range(30):
        c, p = customers[rng.integers(3)], products[rng.integers(5)]
        at = datetime(2011, 6, 1, tzinfo=LONDON) + pd.Timedelta(hours=float(rng.uniform(0, 24 * 150)))
        PurchaseFactory(customer=c, product=p, occurred_at=at, quantity=int(rng.integers(1, 9)))
        lines.append((c.pk, p.pk, 1, at.replace(tzinfo=None)))
    PurchaseFactory(customer=customers[0], product=products[0], kind=Purchase.Kind.RETURN, quantity=-3,
                    occurred_at=datetime(2011, 7, 1, tzinfo=LONDON))  # fmt: skip
    batch = RecommendationBatchFactory(recommender="hybrid")
    recs = [
        RecommendationFactory(batch=batch, customer=c, product=p, rank=rank, score=1.0 - rank / 10)
        for c in customers
        for rank, p in enumerate(products[:4], start=1)
    ]
    model = _fitted()
    _store(model)
    # When the confidence of a part of the batch is asked for (the list's best score comes from the database)
    asked = recs[1:6]
    got = confidence_predict(recommendations=asked)
    # Then it equals the model over the same lines, as of the midnight after the latest purchase
    frame = pd.DataFrame(lines, columns=["customer", "item", "quantity", "occurred_at"])
    as_of = frame["occurred_at"].max().normalize() + pd.Timedelta(days=1)
    x = cm.pair_features(
        frame, as_of=as_of, customers=[r.customer_id for r in asked], items=[r.product_id for r in asked],
        scores=[r.score for r in asked], ranks=[r.rank for r in asked], list_best=[0.9] * len(asked),
    )  # fmt: skip
    np.testing.assert_allclose(got, model.predict(x), atol=1e-12)
    assert all(0.0 <= p <= 1.0 for p in got)


def test_no_calibration_means_no_confidence_and_an_old_row_maps_the_score():
    """Before any calibration every confidence is None; a score-only calibration still serves its map."""
    batch = RecommendationBatchFactory(recommender="embedding-cosine")
    recs = [RecommendationFactory(batch=batch, rank=r, score=s) for r, s in ((1, 0.8), (2, 0.4))]
    assert confidence_predict(recommendations=recs) == [None, None]
    calibrator = fit_calibrator([0.1, 0.4, 0.8, 0.9], [0, 0, 1, 1], method="isotonic")
    row = _store(_fitted(), recommender="embedding-cosine")
    ConfidenceCalibration.objects.filter(pk=row.pk).update(artifact=None, params=calibrator.to_dict())
    assert confidence_predict(recommendations=recs) == pytest.approx(list(calibrator.predict([0.8, 0.4])))


def test_the_admin_shows_a_stored_model_without_its_pickle(client):
    """The change page reads: version and measures, not the model's bytes."""
    from tests.factories import UserFactory

    row = _store(_fitted())
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    response = client.get(f"/admin/explanations/confidencecalibration/{row.pk}/change/")
    assert response.status_code == 200
    assert row.version in response.content.decode() and "artifact" not in response.content.decode()
