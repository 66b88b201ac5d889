"""Evidence decomposition is exact, and the counterfactual uses the same profile definition."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from explanations.services.evidence import counterfactual_vector, decompose
from recommendations.profile import PurchaseWeight, customer_vector

NOW = datetime(2011, 12, 9, tzinfo=UTC)


def unit(v):
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def weights_and_vectors(n: int, seed: int):
    rng = np.random.default_rng(seed)
    vectors = {pid: unit(rng.normal(size=384)) for pid in range(1, n + 1)}
    weights = [
        PurchaseWeight(pid, int(rng.integers(1, 50)), NOW - timedelta(days=int(rng.integers(0, 300))), float(w))
        for pid, w in zip(vectors, rng.uniform(0.1, 3.0, size=n), strict=True)
    ]
    return weights, vectors, rng


@pytest.mark.parametrize("n", [1, 3, 40, 400])
def test_shares_add_up_to_the_score(n):
    """Decompose cos(customer, item) into per-purchase shares that sum to it within 1e-6."""
    # Given a customer built from n weighted purchases and some item
    weights, vectors, rng = weights_and_vectors(n, seed=n)
    item = unit(rng.normal(size=384))
    c, _ = customer_vector(weights, vectors)
    # When the score is decomposed
    evidence = decompose(weights, vectors, item)
    # Then the shares add up to the cosine the recommender computed
    assert abs(sum(e.share for e in evidence.items) - float(np.dot(c, item))) < 1e-6
    assert abs(evidence.score - float(np.dot(c, item))) < 1e-6
    # And they are sorted, largest first
    shares = [e.share for e in evidence.items]
    assert shares == sorted(shares, reverse=True)


def test_the_dominant_purchase_is_the_top_evidence():
    """Put the purchase that is nearly the item itself, with a large weight, at the top."""
    weights, vectors, rng = weights_and_vectors(30, seed=7)
    item = unit(vectors[5] + 0.05 * rng.normal(size=384))
    weights = [PurchaseWeight(w.product_id, w.net_quantity, w.last_bought_at, 5.0 if w.product_id == 5 else 0.5)
               for w in weights]  # fmt: skip
    evidence = decompose(weights, vectors, item)
    assert evidence.items[0].product_id == 5
    assert evidence.items[0].share > 0.5 * evidence.score


def test_counterfactual_drops_the_removed_purchases():
    """Rebuild the customer vector without the removed purchases, and nothing else."""
    weights, vectors, _ = weights_and_vectors(10, seed=3)
    cf = counterfactual_vector(weights, vectors, {1, 2})
    expected, _ = customer_vector([w for w in weights if w.product_id not in {1, 2}], vectors)
    assert np.allclose(cf, expected)
    assert counterfactual_vector(weights, vectors, set(vectors)) is None
