"""One customer-vector formula (recommendations.profile): the batch and the single form agree."""

from __future__ import annotations

import datetime as dt

import numpy as np
import scipy.sparse as sp

from recommendations.profile import PurchaseWeight, customer_vector, customer_vectors

WHEN = dt.datetime(2011, 11, 1, tzinfo=dt.UTC)


def test_customer_vectors_are_the_normalized_weighted_sums_and_empty_rows_stay_zero():
    # Given two customers' weights over three products (the second bought nothing)
    rng = np.random.default_rng(0)
    products = rng.normal(size=(3, 8))
    weights = np.array([[0.5, 0.0, 2.0], [0.0, 0.0, 0.0]])
    # When computed dense and sparse
    dense, norms = customer_vectors(weights, products)
    sparse, _ = customer_vectors(sp.csr_matrix(weights), products)
    # Then row 0 is the unit weighted sum with its length, and row 1 is zero
    expected = 0.5 * products[0] + 2.0 * products[2]
    np.testing.assert_allclose(dense[0], expected / np.linalg.norm(expected))
    assert norms[0] == np.linalg.norm(expected) and norms[1] == 0.0
    assert not dense[1].any()
    np.testing.assert_allclose(sparse, dense)


def test_one_customers_vector_is_the_batch_formula_and_skips_products_without_a_vector():
    rng = np.random.default_rng(1)
    vectors = {1: rng.normal(size=8).astype(np.float32), 2: rng.normal(size=8).astype(np.float32)}
    weights = [PurchaseWeight(1, 3, WHEN, 0.7), PurchaseWeight(2, 1, WHEN, 0.2), PurchaseWeight(9, 5, WHEN, 9.0)]
    # When the single form is asked (product 9 has no vector)
    vec, norm = customer_vector(weights, vectors)
    # Then it equals the batch form over the products that have one
    unit, norms = customer_vectors(np.array([[0.7, 0.2]]), np.stack([vectors[1], vectors[2]]).astype(np.float64))
    np.testing.assert_allclose(vec, unit[0], rtol=1e-6)
    assert abs(norm - norms[0]) < 1e-9
    # And a customer with no usable product has no vector
    assert customer_vector([PurchaseWeight(9, 5, WHEN, 9.0)], vectors) == (None, 0.0)
