"""The quality page, its reliability diagram, and the segmentation job (grounded descriptions, k by silhouette)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.urls import reverse
from django.utils import timezone

from dashboard import quality
from explanations.models import ConfidenceCalibration
from recommendations.models import Customer, EvaluationRun, Product, Purchase, RecommendationBatch, SegmentRun
from recommendations.vectors import write_vectors
from tests.factories import UserFactory

RELIABILITY = [
    {"low": 0.0, "high": 0.1, "count": 300, "predicted": 0.05, "observed": 0.04},
    {"low": 0.1, "high": 0.2, "count": 0, "predicted": None, "observed": None},
    {"low": 0.9, "high": 1.0, "count": 100, "predicted": 0.95, "observed": 0.5},
]


def test_reliability_diagram_places_bins_in_the_plot():
    """Map (predicted, observed) of non-empty bins into the square plot, larger dots for fuller bins."""
    diagram = quality.reliability_diagram([("after", "Calibrated", RELIABILITY)], size=200, margin=20)
    (series,) = diagram.series
    assert [(p.predicted, p.observed) for p in series.points] == [(0.05, 0.04), (0.95, 0.5)]
    first, last = series.points
    # x grows with predicted, y (SVG, downwards) shrinks with observed, inside the 160 px plot
    assert first.x == pytest.approx(20 + 0.05 * 160) and first.y == pytest.approx(200 - 20 - 0.04 * 160)
    assert last.x == pytest.approx(20 + 0.95 * 160) and last.y == pytest.approx(200 - 20 - 0.5 * 160)
    assert first.r > last.r
    assert series.polyline.count(",") == 2


def test_metric_rows_put_the_best_test_ndcg_first_and_mark_production():
    """Order models by test NDCG@10 and flag the chosen one; coverage has no interval."""
    rows = quality.metric_rows(_metrics(), production="hybrid")
    assert [r.name for r in rows] == ["als", "hybrid", "popularity"]
    assert [r.is_production for r in rows] == [False, True, False]
    assert (rows[0].cells[0].mean, rows[0].cells[0].low, rows[0].cells[0].high) == pytest.approx((0.24, 0.23, 0.25))
    assert rows[0].cells[quality.METRICS.index("coverage@10")].low is None


def _metrics() -> dict:
    def test(ndcg):
        entry = {m: {"mean": ndcg, "ci95": [ndcg - 0.01, ndcg + 0.01]} for m in quality.METRICS}
        entry["coverage@10"] = {"mean": 0.3}
        return entry

    return {
        "popularity": {"test": test(0.08), "baseline": True, "validation_ndcg@10_mean_over_folds": 0.1},
        "als": {"test": test(0.24), "baseline": True, "validation_ndcg@10_mean_over_folds": 0.2},
        "hybrid": {"test": test(0.23), "baseline": False, "validation_ndcg@10_mean_over_folds": 0.23},
    }


# --------------------------------------------------------------------------------------------- the page


@pytest.fixture
def stored(db):
    run = EvaluationRun.objects.create(
        source="db",
        status=EvaluationRun.Status.SUCCEEDED,
        config={"cutoff": "2011-09-01T00:00:00", "horizon_days": 90},
        metrics=_metrics(),
        by_region={
            "hybrid": {"United Kingdom": {"customers": 1600, "ndcg@10": {"mean": 0.22, "ci95": [0.21, 0.23]}}},
            "als": {"United Kingdom": {"customers": 1600, "ndcg@10": {"mean": 0.23, "ci95": [0.22, 0.24]}}},
        },
        goal={"ratio": 0.958, "best_baseline": "als", "met": False, "paired_bootstrap_ratio_ci95": [0.93, 0.98]},
        chosen_model="hybrid",
        chosen_version="hybrid@abc",
        customers_active_both=1859,
        customers_evaluated=1821,
        calibration={"ece_before": 0.2, "ece_after": 0.01, "test_pairs": 100,
                     "reliability_before": RELIABILITY, "reliability_after": RELIABILITY},
        wall_seconds=900.0,
    )  # fmt: skip
    RecommendationBatch.objects.create(status="active", recommender="hybrid", model_version="hybrid@abc+data@1")
    ConfidenceCalibration.objects.create(
        recommender="hybrid", method="isotonic", params={}, validation_cutoff=timezone.now(),
        test_cutoff=timezone.now(), horizon_days=90, validation_pairs=10, test_pairs=20, base_rate=0.1,
        ece_before=0.3123, ece_after=0.0211, reliability=RELIABILITY, reliability_before=RELIABILITY,
    )  # fmt: skip
    return run


def _client_for(client, role):
    user = UserFactory(is_superuser=True) if role == "admin" else UserFactory(groups=[role])
    client.force_login(user)
    return client


@pytest.mark.parametrize(("role", "status"), [("sales", 403), ("reviewer", 403), ("manager", 200), ("admin", 200)])
def test_quality_page_is_for_managers_and_admins(client, stored, role, status):
    """Serve the page to managers and admins only."""
    assert _client_for(client, role).get("/quality/").status_code == status


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    response = client.get("/quality/")
    assert response.status_code == 302 and "/login" in response["Location"]


def test_quality_page_shows_the_table_calibration_and_verdict(client, stored):
    """Show every model's test metrics with intervals, the goal verdict, ECE and the reliability diagram."""
    html = _client_for(client, "manager").get("/quality/").content.decode()
    for text in ("als", "popularity", "hybrid", "0.2400", "[0.230, 0.250]", "0.958×", "not met", "1,821"):
        assert text in html, text
    assert "0.312 → 0.021" in html  # served ECE before -> after
    assert html.count("<svg") >= 2 and 'class="reliability__dot reliability__dot--after"' in html
    assert "United Kingdom" in html
    assert "No segmentation yet" in html


# --------------------------------------------------------------------------------------------- segments


def _two_groups(n_per_group: int = 15):
    """Customers in two tight groups of vectors, each group buying its own products."""
    rng = np.random.default_rng(0)
    axes = [rng.normal(size=384), rng.normal(size=384)]
    now = timezone.now()
    products = [Product.objects.create(stock_code=f"4{i:04d}", description=f"ITEM {i} LANTERN") for i in range(6)]
    write_vectors(
        Product._meta.db_table,
        [(p.pk, (v := rng.normal(size=384)) / np.linalg.norm(v), "t", "h") for p in products],
        now=now,
    )
    rows = []
    for group, axis in enumerate(axes):
        for i in range(n_per_group):
            c = Customer.objects.create(pseudonym=f"{group}{i:015x}", region="United Kingdom")
            v = axis + 0.3 * rng.normal(size=384)
            rows.append((c.pk, v / np.linalg.norm(v), "profile-v", "h"))
            for j, p in enumerate(products[group * 3 : group * 3 + 3]):
                Purchase.objects.create(
                    line_key=f"{c.pk}:{p.pk}", customer=c, product=p, invoice=f"{c.pk}{j}", quantity=1,
                    unit_price=Decimal(1), occurred_at=now - timedelta(days=10), kind=Purchase.Kind.SALE,
                )  # fmt: skip
    write_vectors(Customer._meta.db_table, rows, now=now)
    return products


@pytest.mark.django_db
def test_segments_find_the_two_groups_and_describe_them_from_their_facts(settings, tmp_path):
    """Choose k = 2 by silhouette, describe each segment by its products (no adapter), interpolate."""
    from explanations.services.segments import segments_compute

    settings.ELM_ADAPTER_DIR = tmp_path / "no-adapter"
    products = _two_groups()
    run = segments_compute(k_max=5)
    assert run.status == SegmentRun.Status.SUCCEEDED
    assert run.k == 2 and run.silhouette == max(run.silhouette_by_k.values()) and run.silhouette > 0.5
    assert run.customers == 30 and run.description_source == "grounded"
    segments = list(run.segments.order_by("index"))
    assert sorted(s.size for s in segments) == [15, 15]
    for segment in segments:
        codes = {p["stock_code"] for p in segment.top_products}
        # each segment's top products are exactly its group's products, bought by all of its members
        assert codes in ({p.stock_code for p in products[:3]}, {p.stock_code for p in products[3:]})
        assert all(p["share"] == 1.0 for p in segment.top_products)
        assert segment.description == segment.facts and segment.description.startswith("15 customers who often buy")
        assert segment.consistency is not None
    points = run.interpolation["points"]
    assert len(points) == 5 and points[0]["t"] == 0.0 and points[-1]["t"] == 1.0
    assert all(p["text"].startswith("Closest products:") for p in points)


@pytest.mark.django_db
def test_the_quality_page_says_segments_are_described_from_purchase_facts_without_a_reading_adapter(
    settings, tmp_path, client
):
    """Without an adapter that met the held-out goals, the page says plainly where segment words come from."""
    from explanations.services.segments import segments_compute
    from tests.factories import UserFactory

    settings.ELM_ADAPTER_DIR = tmp_path / "no-adapter"
    _two_groups()
    segments_compute(k_max=3)
    client.force_login(UserFactory(groups=["manager"]))
    page = client.get(reverse("quality")).content.decode()
    assert "Descriptions are written from purchase facts" in page
    assert "No ELM adapter reads customer vectors reliably yet." in page


def test_quality_page_shows_the_confidence_models_test_measures(client, stored):
    """AUC, within-list AUC and ECE against their goals, and bought vs mean confidence per rank and kind."""
    # Given the served calibration carries the confidence model's test measures
    metrics = {
        "chosen": {"kind": "logistic"},
        "test_rank_only_auc": 0.571,
        "test": {
            "pairs": 33680, "auc": 0.7218, "within_list_auc": 0.6247, "ece": 0.0166,
            "by_rank": [{"rank": 1, "pairs": 3368, "buy_rate": 0.177, "mean_confidence": 0.187}],
            "by_kind": {"reorder": {"pairs": 22610, "buy_rate": 0.148, "mean_confidence": 0.131}},
        },
    }  # fmt: skip
    ConfidenceCalibration.objects.update(metrics=metrics)
    # When a manager opens the page
    html = _client_for(client, "manager").get("/quality/").content.decode()
    # Then the measures and their goals are shown
    assert 'id="confidence-model"' in html and "33,680 served recommendations" in html
    assert "<td>0.722</td><td>≥ 0.75</td>" in html and "<td>0.625</td><td>≥ 0.60</td>" in html
    assert "<td>0.0166</td><td>≤ 0.02</td>" in html
    assert "<td>0.177</td><td>0.187</td>" in html and "Re-orders" in html
