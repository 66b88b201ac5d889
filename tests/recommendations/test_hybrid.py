"""The hybrid recommender: exact per-purchase evidence, agreement with batch scoring, purchase weights."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from recommendations.evaluation.hybrid import BLEND, HybridRecommender, blend, hybrid_score_with_evidence
from recommendations.evaluation.training import TrainingData

AS_OF = pd.Timestamp("2011-09-01")
ITEMS = ["10001", "10002", "10003", "10004", "10005", "10006A", "10007"]


@pytest.fixture
def data() -> TrainingData:
    """Twelve customers buying from seven products at random dates, with random unit embeddings."""
    rng = np.random.default_rng(42)
    rows = []
    for customer in range(12):
        for item in rng.choice(ITEMS, size=rng.integers(2, 6), replace=False):
            for _ in range(rng.integers(1, 3)):
                rows.append(
                    {
                        "customer": f"c{customer:02d}",
                        "item": str(item),
                        "quantity": int(rng.integers(1, 24)),
                        "unit_price": 1.0,
                        "occurred_at": AS_OF - pd.Timedelta(days=float(rng.uniform(1, 300))),
                        "region": "United Kingdom",
                    }
                )
    vectors = rng.normal(size=(len(ITEMS), 16))
    embeddings = {code: v / np.linalg.norm(v) for code, v in zip(ITEMS, vectors, strict=True)}
    return TrainingData.from_interactions(pd.DataFrame(rows), as_of=AS_OF, embeddings=embeddings)


PARAMS = {
    "alpha": 1.0,
    "delta": 0.7,
    "rho": 2.0,
    "beta": 0.3,
    "gamma": 0.05,
    "neighbours": 3,
    "shrinkage": 1.0,
    "ease_l2": 5.0,
    "half_life_days": 90.0,
    "pop_window_days": 60,
}


def test_evidence_sums_to_the_score(data):
    """Split every customer-item score exactly into purchase contributions plus the base term."""
    # Given a fitted hybrid with every component switched on
    model = HybridRecommender(**PARAMS).fit(data)
    for row, customer in enumerate(data.customers):
        weights = dict(zip(data.items[model.weights[row].indices], model.weights[row].data, strict=True))
        batch = model.score(np.array([row]))[0]
        for col, item in enumerate(data.items):
            # When one score is explained
            score, contributions, base = hybrid_score_with_evidence(model, weights, item)
            # Then the parts add up to it, and it is the batch score
            assert sum(contributions.values()) + base == pytest.approx(score, abs=1e-6)
            assert score == pytest.approx(batch[col], abs=1e-6)
            assert set(contributions) == set(weights), customer
            assert base == pytest.approx(PARAMS["gamma"] * model.popularity[col])


def test_evidence_of_a_rebought_item_includes_the_repeat_term(data):
    """Credit an earlier purchase of the same product with rho * w / Z on top of its similarities."""
    # Given a customer who bought the target item before, and the same model without the repeat term
    with_repeat = HybridRecommender(**PARAMS).fit(data)
    without = HybridRecommender(**{**PARAMS, "rho": 0.0}).fit(data)
    weights = dict(zip(data.items[with_repeat.weights[0].indices], with_repeat.weights[0].data, strict=True))
    item = next(iter(weights))
    # When the item is explained under both
    _, with_parts, _ = with_repeat.hybrid_score_with_evidence(weights, item)
    _, without_parts, _ = without.hybrid_score_with_evidence(weights, item)
    # Then only that purchase's contribution differs, by rho * w / sum(w)
    expected = PARAMS["rho"] * weights[item] / sum(weights.values())
    assert with_parts[item] - without_parts[item] == pytest.approx(expected)
    assert all(with_parts[p] == pytest.approx(without_parts[p]) for p in weights if p != item)


def test_embedding_part_is_the_customer_vector_cosine(data):
    """Make the beta part equal cos(sum_p w_p v_p, v_i) of the customer vector."""
    # Given only the embedding part switched on
    model = HybridRecommender(**{**PARAMS, "alpha": 0.0, "delta": 0.0, "rho": 0.0, "gamma": 0.0, "beta": 1.0})
    model.fit(data)
    weights = {ITEMS[0]: 1.0, ITEMS[2]: 0.25}
    customer = data.item_vectors[0] * 1.0 + data.item_vectors[2] * 0.25
    for col, item in enumerate(data.items):
        # When the item is scored
        score, _, base = model.hybrid_score_with_evidence(weights, item)
        # Then it is the cosine to the weighted mean of the bought products' vectors
        expected = customer @ data.item_vectors[col] / np.linalg.norm(customer)
        assert score == pytest.approx(expected)
        assert base == 0.0


def test_score_is_the_blend_of_its_components(data):
    """Score customers as the weighted sum of the components the tuner blends."""
    model = HybridRecommender(**PARAMS).fit(data)
    rows = np.arange(len(data.customers))
    parts = model.components(model.weights[rows])
    assert set(parts) == set(BLEND.values())
    np.testing.assert_allclose(blend(parts, model.params), model.score(rows), atol=1e-12)


def test_purchase_weights_decay_from_the_latest_purchase(data):
    """Weigh a product by 0.5 ** (days since its latest purchase / half-life); drop unknown products."""
    # Given one customer's lines: a product bought 90 and 30 days ago, one 180 days ago, one unknown
    model = HybridRecommender(**PARAMS).fit(data)
    lines = pd.DataFrame(
        {
            "item": [ITEMS[0], ITEMS[0], ITEMS[1], "99999"],
            "occurred_at": [AS_OF - pd.Timedelta(days=d) for d in (90, 30, 180, 1)],
        }
    )
    # When the weights are computed at the model's as-of date
    weights = model.purchase_weights(lines)
    # Then they follow the 90-day half-life from each product's latest purchase
    assert weights == pytest.approx({ITEMS[0]: 2 ** (-30 / 90), ITEMS[1]: 0.25})
    # And they match the weights the model scored its training customers with
    row = 0
    customer_lines = pd.DataFrame(
        {
            "item": data.items[data.line_item[data.line_customer == row]],
            "occurred_at": AS_OF - pd.to_timedelta(data.line_age_days[data.line_customer == row], unit="D"),
        }
    )
    expected = dict(zip(data.items[model.weights[row].indices], model.weights[row].data, strict=True))
    assert model.purchase_weights(customer_lines) == pytest.approx(expected)


def test_customer_without_known_purchases_gets_the_base_term_only(data):
    """Explain a score with no purchase evidence as the popularity base term alone."""
    model = HybridRecommender(**PARAMS).fit(data)
    score, contributions, base = model.hybrid_score_with_evidence({"99999": 1.0}, ITEMS[1])
    assert contributions == {}
    assert score == base == pytest.approx(PARAMS["gamma"] * model.popularity[1])


def test_unknown_parameters_are_rejected():
    """Refuse a misspelled hyper-parameter instead of silently using a default."""
    with pytest.raises(TypeError, match="halflife"):
        HybridRecommender(halflife=3)


def test_version_changes_with_parameters():
    """Give different configurations different version strings, equal ones the same."""
    a = HybridRecommender(**PARAMS).version()
    assert a == HybridRecommender(**PARAMS).version()
    assert a != HybridRecommender(**{**PARAMS, "rho": 3.0}).version()
    assert a.startswith("hybrid@") and len(a) == len("hybrid@") + 12


def test_tuner_scores_match_a_fitted_model():
    """Score hybrid parameters in the tuner exactly as a fitted model scores on the same fold."""
    from recommendations.evaluation.split import temporal_split, validation_splits
    from recommendations.evaluation.tuning import Fold, tune_hybrid, validation_ndcg

    # Given 80 customers buying 25 products over 200 days, and two validation folds
    rng = np.random.default_rng(5)
    start = pd.Timestamp("2011-01-01")
    codes = [f"{20000 + i}" for i in range(25)]
    favourites = {c: rng.choice(codes, size=6, replace=False) for c in range(80)}
    rows = [
        {
            "customer": f"c{c:02d}",
            "item": str(rng.choice(favourites[c]) if rng.random() < 0.7 else rng.choice(codes)),
            "quantity": 1,
            "unit_price": 1.0,
            "occurred_at": start + pd.Timedelta(days=float(rng.uniform(0, 200))),
            "region": "United Kingdom",
        }
        for c in range(80)
        for _ in range(25)
    ]
    vectors = rng.normal(size=(len(codes), 8))
    embeddings = {code: v / np.linalg.norm(v) for code, v in zip(codes, vectors, strict=True)}
    split = temporal_split(
        pd.DataFrame(rows), cutoff=start + pd.Timedelta(days=160), horizon_days=20, exclusion_days=20
    )
    folds = [
        Fold(v, TrainingData.from_interactions(v.train, as_of=v.cutoff, embeddings=embeddings))
        for v in validation_splits(split, folds=2)
    ]
    axes = {
        "knn": [{"neighbours": 5, "shrinkage": 1.0}, {"neighbours": 10, "shrinkage": 5.0}],
        "item_item": [{"alpha": 1.0, "delta": 1.0, "ease_l2": 10.0}],
        "blend": [{"rho": 1.0, "beta": 0.1, "gamma": 0.02}, {"rho": 0.0, "beta": 0.0, "gamma": 0.5}],
    }
    # When the tuner runs
    trials, best = tune_hybrid(folds, axes)
    # Then every trial's per-fold value is what the fitted model scores on that fold
    for trial in trials[:: max(1, len(trials) // 4)] + [t for t in trials if t["params"] == best][:1]:
        direct = [validation_ndcg(fold.fit("hybrid", trial["params"]), fold.split) for fold in folds]
        assert trial["per_fold"] == pytest.approx(direct, abs=1e-12)
    assert max(t["validation_ndcg@10"] for t in trials) == pytest.approx(
        np.mean([validation_ndcg(fold.fit("hybrid", best), fold.split) for fold in folds])
    )
