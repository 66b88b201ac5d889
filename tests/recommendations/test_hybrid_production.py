"""The hybrid in production: frozen artifact = evaluated model, exact evidence, batches, explanations."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest
from django.utils import timezone

from recommendations.evaluation.hybrid import HybridRecommender
from recommendations.evaluation.served import ServedHybrid
from recommendations.evaluation.training import TrainingData
from recommendations.models import EvaluationRun, Purchase, Recommendation, RecommendationBatch
from recommendations.services import production, recommend
from tests.shop import build_shop

AS_OF = pd.Timestamp("2011-09-01")
ITEMS = [f"{30000 + i}" for i in range(9)]
PARAMS = {
    "alpha": 0.7,
    "delta": 0.5,
    "rho": 1.5,
    "rho_rate": 3.0,
    "beta": 0.2,
    "gamma": 0.05,
    "neighbours": 4,
    "shrinkage": 1.0,
    "ease_l2": 5.0,
    "half_life_days": 60.0,
    "pop_window_days": 60,
}


@pytest.fixture
def data() -> TrainingData:
    """Fifteen customers buying from nine products on random days, with random unit embeddings."""
    rng = np.random.default_rng(3)
    rows = [
        {
            "customer": f"c{c:02d}",
            "item": str(item),
            "quantity": int(rng.integers(1, 12)),
            "unit_price": 1.0,
            "occurred_at": AS_OF - pd.Timedelta(days=float(rng.uniform(0.5, 250))),
            "region": "United Kingdom",
        }
        for c in range(15)
        for item in rng.choice(ITEMS, size=rng.integers(2, 7), replace=True)
    ]
    vectors = rng.normal(size=(len(ITEMS), 12))
    embeddings = {code: v / np.linalg.norm(v) for code, v in zip(ITEMS, vectors, strict=True)}
    return TrainingData.from_interactions(pd.DataFrame(rows), as_of=AS_OF, embeddings=embeddings)


def _weights(model, row):
    return dict(zip(model.data.items[model.weights[row].indices], model.weights[row].data, strict=True))


def test_served_scores_equal_the_evaluated_model(data, tmp_path):
    """Score every customer exactly as the evaluated hybrid did, also after a save/load round trip."""
    # Given a fitted hybrid and its frozen, saved and reloaded form
    model = HybridRecommender(**PARAMS).fit(data)
    served = ServedHybrid.load(ServedHybrid.from_model(model, version="v1").save(tmp_path / "v1"))
    rows = np.arange(len(data.customers))
    # When both score all customers from the same purchase weights
    expected = model.score(rows)
    got = served.score(served.weight_matrix([_weights(model, r) for r in rows]))
    # Then the scores agree to rounding
    np.testing.assert_allclose(got, expected, atol=1e-12)
    assert served.version == "v1" and served.params == model.params


def test_served_evidence_adds_up_to_the_batch_score(data):
    """Split every served score into purchase contributions + popularity base term that add up to it."""
    model = HybridRecommender(**PARAMS).fit(data)
    served = ServedHybrid.from_model(model, version="v1")
    for row in range(len(data.customers)):
        weights = _weights(model, row)
        batch = served.score(served.weight_matrix([weights]))[0]
        for col, item in enumerate(data.items):
            score, contributions, base = served.evidence(weights, item)
            assert sum(contributions.values()) + base == pytest.approx(score, abs=1e-9)
            assert score == pytest.approx(batch[col], abs=1e-9)
            # And the evidence is the evaluated model's, term by term
            m_score, m_contributions, m_base = model.hybrid_score_with_evidence(weights, item)
            assert score == pytest.approx(m_score, abs=1e-9) and base == pytest.approx(m_base)
            assert contributions == pytest.approx(m_contributions, abs=1e-9)


def test_repurchase_rate_counts_distinct_days(data):
    """Rate an item by its buyers who came back on another day, smoothed towards 1/5."""
    rate = data.repurchase_rate()
    frame = pd.DataFrame({"c": data.line_customer, "i": data.line_item, "d": data.line_day}).drop_duplicates()
    days = frame.groupby(["i", "c"]).size()
    for col in range(data.n_items):
        per_buyer = days.loc[col] if col in days.index.get_level_values(0) else pd.Series(dtype=int)
        expected = ((per_buyer > 1).sum() + 1) / (len(per_buyer) + 5)
        assert rate[col] == pytest.approx(expected)


def test_rank_skips_excluded_products_and_orders_by_score(data):
    """Rank one customer's products best first, never an excluded one."""
    served = ServedHybrid.from_model(HybridRecommender(**PARAMS).fit(data), version="v1")
    weights = {ITEMS[0]: 1.0, ITEMS[3]: 0.5}
    full = served.rank(weights, top_n=len(ITEMS))
    assert [s for _, s in full] == sorted((s for _, s in full), reverse=True)
    without = served.rank(weights, excluded=[full[0][0]], top_n=3)
    assert [c for c, _ in without] == [c for c, _ in full[1:4]]


# --------------------------------------------------------------------------------------------- database


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ELM_RECOMMENDER_DIR = tmp_path / "recommender"
    production._cache.clear()
    yield settings.ELM_RECOMMENDER_DIR
    production._cache.clear()


def _shop_with_history():
    """The test shop plus a second, older purchase round, so co-purchases and repeats exist."""
    from recommendations.services import embeddings

    products, customers = build_shop(customers=8, per_customer=5)
    now = timezone.now()
    for i, c in enumerate(customers):
        for j, p in enumerate(products[i : i + 3]):
            Purchase.objects.create(
                line_key=f"old:{c.pk}:{p.pk}", customer=c, product=p, invoice=f"9{i}{j}", quantity=2,
                unit_price=Decimal("1.50"), occurred_at=now - timedelta(days=200 + j), kind=Purchase.Kind.SALE,
            )  # fmt: skip
    embeddings.products_embed(product_ids=[p.pk for p in products])
    embeddings.customers_embed(customer_ids=[c.pk for c in customers])
    return products, customers


@pytest.mark.django_db
def test_production_batch_serves_the_evaluation_choice_with_exact_evidence(artifacts):
    """Serve the hybrid chosen by the latest full evaluation; stored scores split exactly into evidence."""
    from explanations.services.evidence import hybrid_evidence

    # Given a shop and a full evaluation run that chose the hybrid
    _, customers = _shop_with_history()
    run = EvaluationRun.objects.create(
        source="db", status=EvaluationRun.Status.SUCCEEDED, chosen_model="hybrid", chosen_params=PARAMS
    )
    # When a production batch is started and computed (as the recommend job does)
    batch = recommend.production_batch_start(encoder_version="test")
    ids = recommend.production_customer_ids(batch)
    recommend.recommendations_compute(batch_id=batch.pk, customer_ids=ids)
    # Then the batch records the hybrid, its version and the run that chose it
    assert batch.recommender == production.HYBRID and batch.evaluation_run_id == run.pk
    assert batch.model_version == production.hybrid_version(PARAMS)
    assert (
        batch.params["model"] == PARAMS
        and (artifacts / batch.model_version.replace("@", "-").replace("+", "_")).exists()
    )
    assert set(ids) == {c.pk for c in customers}
    recs = list(Recommendation.objects.filter(batch=batch).select_related("product", "batch"))
    assert len(recs) == 10 * len(customers)
    # And no recommendation is a product the customer bought in the exclusion window
    for rec in recs[:20]:
        recent = Purchase.objects.filter(
            customer_id=rec.customer_id, product_id=rec.product_id,
            occurred_at__gte=timezone.now() - timedelta(days=90),
        )  # fmt: skip
        assert not recent.exists()
        # And its re-order facts count the customer's earlier orders of the product
        earlier = Purchase.objects.filter(customer_id=rec.customer_id, product_id=rec.product_id, kind="sale")
        assert rec.times_bought == len({timezone.localdate(p.occurred_at) for p in earlier})
        # And each score is the sum of its per-purchase contributions and the popularity term
        evidence, necessity = hybrid_evidence(rec, reference=None)
        assert sum(e.share for e in evidence.items) + evidence.base == pytest.approx(rec.score, abs=1e-6)
        served = production.hybrid_artifact(PARAMS, version=batch.model_version)
        code = rec.product.stock_code
        assert evidence.base == pytest.approx(PARAMS["gamma"] * served.popularity[served.index[code]])
        assert set(necessity) >= {"removed", "drops_out", "new_rank"}
    # And the same data and parameters give the same version: the batch is reusable
    assert recommend.production_batch_version(encoder_version="test") == batch.model_version


@pytest.mark.django_db
def test_reduced_or_failed_runs_never_choose_production(artifacts, settings):
    """Fall back to the recorded default when only reduced or failed evaluations exist."""
    EvaluationRun.objects.create(source="db", status="succeeded", reduced=True, chosen_model="embedding")
    EvaluationRun.objects.create(source="db", status="failed", chosen_model="embedding")
    choice = production.production_choice()
    default = json.loads(production.DEFAULT_CHOICE_FILE.read_text())
    assert (choice.model, choice.params, choice.evaluation_run_id) == (default["model"], default["params"], None)
    # And an operator can pin the embedding recommender
    settings.ELM_RECOMMENDER = "embedding"
    assert production.production_choice().recommender == production.EMBEDDING


@pytest.mark.django_db
def test_embedding_choice_keeps_the_hnsw_recommender(artifacts):
    """Serve the embedding recommender when a full evaluation chose it."""
    _shop_with_history()
    EvaluationRun.objects.create(source="db", status="succeeded", chosen_model="embedding", chosen_params={})
    batch = recommend.production_batch_start(encoder_version="enc@1")
    assert batch.recommender == recommend.RECOMMENDER
    assert batch.model_version == recommend.recommendation_batch_version(model_version="enc@1")
    assert RecommendationBatch.objects.filter(pk=batch.pk, evaluation_run__isnull=False).exists()


@pytest.mark.django_db
def test_explanations_of_hybrid_recommendations_hold_its_exact_evidence(artifacts, settings):
    """Store the hybrid's evidence (+ its popularity row) on explanations: the rows add up to the score."""
    from explanations.models import Explanation
    from explanations.services import explain

    settings.ELM_SIG_STEPS = 4
    _, customers = _shop_with_history()
    # (a popularity window reaching back to the shop's purchases, which are 100+ days old)
    params = {**PARAMS, "pop_window_days": 365}
    EvaluationRun.objects.create(source="db", status="succeeded", chosen_model="hybrid", chosen_params=params)
    batch = recommend.production_batch_start(encoder_version="test")
    recommend.recommendations_compute(batch_id=batch.pk, customer_ids=[customers[0].pk])
    recommend.recommendation_batch_activate(batch_id=batch.pk)
    ids = list(Recommendation.objects.filter(batch=batch, rank__lte=2).values_list("id", flat=True))
    # When they are explained (template reasons only)
    assert explain.explanations_generate(recommendation_ids=ids, use_lm=False) == 2
    for exp in Explanation.objects.filter(recommendation_id__in=ids).select_related("recommendation"):
        # Then the stored rows add up to the stored score, the popularity row labelled as not personal
        assert sum(row["share"] for row in exp.evidence) == pytest.approx(exp.recommendation.score, abs=1e-6)
        assert abs(exp.evidence_residual) < 1e-6
        base = [row for row in exp.evidence if row.get("kind") == "popularity"]
        assert len(base) == 1 and base[0]["product_id"] is None
        assert exp.versions["recommender"] == batch.model_version
