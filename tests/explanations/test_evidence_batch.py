"""The array evidence pass: exact shares for every (recommendation, purchase) pair, necessity by re-ranking,
and concise grouped lines that still sum to the score (numpy only, no database)."""

import numpy as np
import pytest
import scipy.sparse as sp

from explanations.services.evidence import decompose
from explanations.services.evidence_batch import (
    BatchArrays,
    ScoringModel,
    evidence_arrays,
    necessity_arrays,
)
from explanations.services.families import co_buyer_counts, group_evidence, product_families
from recommendations.evaluation.served import ServedHybrid
from recommendations.profile import PurchaseWeight


def hybrid_like(n: int, d: int = 16, seed: int = 0) -> ScoringModel:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, d))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ScoringModel(
        product_ids=np.arange(100, 100 + n),
        vectors=vectors,
        beta=0.03,
        base=0.04 * rng.uniform(size=n),
        blocked=np.zeros(n, dtype=bool),
        table=rng.normal(scale=0.1, size=(n, n)),
        repeat=rng.uniform(1, 5, size=n),
    )


def batch(model: ScoringModel, customers: int, seed: int = 1, top_n: int = 5) -> BatchArrays:
    rng = np.random.default_rng(seed)
    n = len(model.product_ids)
    weights = sp.random(customers, n, density=0.3, random_state=seed, data_rvs=lambda k: rng.uniform(0.1, 1, k))
    weights = weights.tolil()
    weights[0, :] = 0  # a customer with no purchase at all
    weights = weights.tocsr()
    weights.eliminate_zeros()
    rows = np.repeat(np.arange(customers), 3)
    return BatchArrays(
        model=model,
        weights=weights,
        excluded=sp.csr_matrix((customers, n), dtype=bool),
        row=rows,
        target=rng.integers(0, n, size=len(rows)),
        top_n=top_n,
    )


@pytest.mark.parametrize("customers", [1, 7, 40])
def test_shares_and_base_add_up_to_the_batch_score(customers):
    """Split every recommendation's hybrid score into per-purchase shares + the base term, exactly."""
    # Given a hybrid-like model and recommendations of customers with random purchases
    model = hybrid_like(30)
    arrays = batch(model, customers)
    # When the evidence of the whole batch is computed at once
    evidence = evidence_arrays(arrays)
    # Then shares + base equal the score the model gives each (customer, item)
    scores = model.scores(arrays.weights)[arrays.row, arrays.target]
    assert evidence.score == pytest.approx(scores, abs=1e-9)
    # And every purchase of the customer is one pair, largest share first within each recommendation
    assert np.array_equal(np.diff(evidence.start), np.diff(arrays.weights.indptr)[arrays.row])
    for r in range(len(arrays.row)):
        shares = evidence.share[evidence.start[r] : evidence.start[r + 1]]
        assert list(shares) == sorted(shares, reverse=True)


def test_the_served_hybrid_and_the_batch_pass_agree():
    """Give the same per-purchase contributions as ServedHybrid.evidence, the one-recommendation path."""
    model = hybrid_like(12, seed=3)
    served = ServedHybrid(
        version="t", params={"gamma": 1.0, "beta": model.beta}, items=np.array([f"c{i}" for i in range(12)]),
        item_item=model.table, repeat=model.repeat, vectors=model.vectors, popularity=model.base,
    )  # fmt: skip
    arrays = batch(model, 5, seed=4)
    evidence = evidence_arrays(arrays)
    for r in range(len(arrays.row)):
        row = arrays.weights[arrays.row[r]]
        weights = {f"c{c}": w for c, w in zip(row.indices, row.data, strict=True)}
        score, contributions, base = served.evidence(weights, f"c{arrays.target[r]}")
        pairs = slice(evidence.start[r], evidence.start[r + 1])
        got = {f"c{c}": s for c, s in zip(evidence.col[pairs], evidence.share[pairs], strict=True)}
        assert got == pytest.approx(contributions, abs=1e-12)
        assert evidence.base[r] == pytest.approx(base) and evidence.score[r] == pytest.approx(score)


def test_the_embedding_recommender_is_the_beta_only_case():
    """Give the embedding recommender's shares (explanations.services.evidence.decompose) for the cosine model."""
    rng = np.random.default_rng(5)
    vectors = rng.normal(size=(9, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    model = ScoringModel(np.arange(9), vectors, 1.0, np.zeros(9), np.zeros(9, dtype=bool))
    weights = sp.csr_matrix(np.array([[0.5, 0, 2.0, 0, 0, 1.0, 0, 0, 0.2]]))
    arrays = BatchArrays(model, weights, sp.csr_matrix((1, 9), dtype=bool), np.array([0]), np.array([3]), 3)
    evidence = evidence_arrays(arrays)
    profile = [PurchaseWeight(int(c), 1, None, float(w)) for c, w in zip(weights.indices, weights.data, strict=True)]
    expected = decompose(profile, dict(enumerate(vectors)), vectors[3])
    assert evidence.score[0] == pytest.approx(expected.score, abs=1e-12)
    assert list(evidence.col) == [e.product_id for e in expected.items]


def test_necessity_reads_the_rank_without_the_top_purchases():
    """Re-rank each recommendation without its top-k purchases as the batch ranks (excluded and blocked never)."""
    model = hybrid_like(25, seed=6)
    model.blocked[[2, 7]] = True
    arrays = batch(model, 12, seed=7, top_n=8)
    arrays.excluded = sp.csr_matrix(np.random.default_rng(8).uniform(size=(12, 25)) < 0.2)
    evidence = evidence_arrays(arrays)
    # When the necessity of every recommendation is computed in blocks
    found = necessity_arrays(arrays, evidence, removed_count=2)
    for r in range(len(arrays.row)):
        # Then it equals scoring the profile without the removed purchases and ranking by hand
        weights = arrays.weights[arrays.row[r]].toarray()[0]
        assert found.removed[r] == list(evidence.col[evidence.start[r] : evidence.start[r + 1]][:2])
        weights[found.removed[r]] = 0
        if not weights.any():
            assert found.new_rank[r] == 0 and np.isnan(found.counterfactual_score[r])
            continue
        scores = model.scores(sp.csr_matrix(weights[None, :]))[0]
        scores[model.blocked | arrays.excluded[arrays.row[r]].toarray()[0]] = -np.inf
        order = sorted(range(25), key=lambda c: (-scores[c], c))[: arrays.top_n]
        order = [c for c in order if np.isfinite(scores[c])]
        target = arrays.target[r]
        assert found.new_rank[r] == (order.index(target) + 1 if target in order else 0)
        assert found.counterfactual_score[r] == pytest.approx(scores[target])


def test_grouped_lines_sum_to_the_score_and_name_families():
    """Group purchases into families: at most three group lines, the rest and the base still sum to the score."""
    # Given products of one design line (stock codes 85123A/B), colour variants and unrelated ones
    codes = ["85123A", "85123B", "22001", "22002", "30000", "40000"]
    descriptions = ["HEART T-LIGHT HOLDER", "HEART T-LIGHT HOLDER LARGE", "RED SPOT MUG", "BLUE SPOT MUG", "DOORMAT",
                    "JAM SET"]  # fmt: skip
    rng = np.random.default_rng(9)
    vectors = rng.normal(size=(6, 16))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    families = product_families(codes, descriptions, vectors)
    # Then the design line and the colour variants are families
    assert families.family[0] == families.family[1] and families.family[2] == families.family[3]
    model = hybrid_like(6, seed=10)
    weights = sp.csr_matrix(np.array([[1.0, 0.8, 0.5, 0.4, 0.3, 0.2]]))
    arrays = BatchArrays(model, weights, sp.csr_matrix((1, 6), dtype=bool), np.array([0, 0]), np.array([5, 4]), 3)
    evidence = evidence_arrays(arrays)
    buyers = sp.csr_matrix(np.array([[1, 1, 0, 0, 0, 1]] * 6 + [[1, 0, 0, 0, 0, 0]] * 4))
    groups = group_evidence(evidence, arrays.target, families, co_buyer_counts(buyers), shown=3)
    for r in range(2):
        lines = groups.share[groups.rec == r]
        assert len(lines) <= 3
        total = lines.sum() + groups.rest_share[r] + evidence.base[r]
        assert total == pytest.approx(evidence.score[r], abs=1e-12)
        # And the item itself, bought before, is a line of its own
        assert "self" in set(groups.kind[groups.rec == r])
    # And the co-purchase fact of the design line's top purchase: 6 of the 10 buyers of 85123A bought item 5
    line = np.flatnonzero((groups.rec == 0) & (groups.top_col == 0))
    if len(line):
        assert groups.co_rate[line[0]] == pytest.approx(0.6)
