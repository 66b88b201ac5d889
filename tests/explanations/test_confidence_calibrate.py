"""The calibrate job on a shop with a year of regular re-orders: it fits, stores and serves the confidence model."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from django.utils import timezone

from explanations.models import ConfidenceCalibration
from explanations.services.confidence import confidence_predict
from jobs import registry
from jobs.models import Job
from recommendations.models import Customer, Product, Purchase, Recommendation
from recommendations.vectors import write_vectors

pytestmark = [pytest.mark.django_db, pytest.mark.slow]
START = datetime(2010, 12, 1, 10, tzinfo=ZoneInfo("Europe/London"))


def _regular_shop() -> None:
    """60 customers, each re-ordering 3 of 12 products every 30 to 80 days for 400 days."""
    rng = np.random.default_rng(0)
    products = Product.objects.bulk_create(
        [Product(stock_code=f"{22000 + i}", description=f"PRODUCT {i}", is_merchandise=True) for i in range(12)]
    )
    vectors = rng.normal(size=(12, 384))
    write_vectors(
        Product._meta.db_table,
        [(p.pk, v / np.linalg.norm(v), "test", f"h{p.pk}") for p, v in zip(products, vectors, strict=True)],
        now=timezone.now(),
    )
    people = Customer.objects.bulk_create([Customer(pseudonym=f"{i:016x}", region="United Kingdom") for i in range(60)])
    lines = []
    for customer in people:
        every = rng.integers(30, 80)
        for product in rng.choice(products, size=3, replace=False):
            day = float(rng.uniform(0, every))
            while day < 400:
                lines.append(
                    Purchase(
                        line_key=f"{len(lines)}", customer=customer, product=product, invoice=f"{len(lines)}",
                        quantity=int(rng.integers(1, 6)), unit_price=Decimal("1.25"),
                        occurred_at=START + timedelta(days=day), kind=Purchase.Kind.SALE,
                    )
                )  # fmt: skip
                day += every * rng.uniform(0.7, 1.3)
    Purchase.objects.bulk_create(lines)


def test_calibrate_fits_stores_and_serves_the_confidence_model(settings, tmp_path):
    """The job stores the model with its test measures; the batch's recommendations then get a confidence."""
    # Given a year of regular re-orders and an active hybrid batch
    settings.ELM_RECOMMENDER = "hybrid"
    settings.ELM_RECOMMENDER_DIR = tmp_path / "recommender"
    settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS = 20
    settings.ELM_RECOMMENDATIONS_PER_CUSTOMER = 5
    _regular_shop()
    from recommendations.services import recommend

    batch = recommend.production_batch_start(encoder_version="test")
    recommend.recommendations_compute(batch_id=batch.pk, customer_ids=recommend.production_customer_ids(batch))
    recommend.recommendation_batch_activate(batch_id=batch.pk)
    # When the calibrate job runs
    job = Job.objects.create(kind="calibrate")
    registry.get("calibrate").run_shard(job, {})
    # Then it stored the model, its version and its test measures, and says so in the job's result
    job.refresh_from_db()
    calibration = ConfidenceCalibration.objects.get()
    assert job.result["calibration_id"] == calibration.pk and job.result["auc"] == calibration.metrics["test"]["auc"]
    assert calibration.artifact and calibration.version.split("@")[0] in {"logistic", "gradient_boosting"}
    assert calibration.metrics["test"]["pairs"] == calibration.test_pairs > 0
    assert calibration.test_cutoff > calibration.validation_cutoff
    # And every recommendation of the batch gets a probability, higher for the products due for re-order
    recs = list(Recommendation.objects.filter(batch=batch).select_related("batch"))
    confidence = np.array(confidence_predict(recommendations=recs))
    assert len(confidence) == len(recs) and np.all((confidence >= 0) & (confidence <= 1))
    reorders = np.array([r.times_bought > 0 for r in recs])
    assert reorders.any() and (~reorders).any()
    assert confidence[reorders].mean() > confidence[~reorders].mean()
