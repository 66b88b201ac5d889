"""Exact evidence and necessity of many recommendations at once: array work over one batch's model.

The per-recommendation path (:mod:`explanations.services.evidence`) splits one score at a time; here the
same formulas run over every (recommendation, purchase) pair of a shard in a few numpy operations:

    score(c, i) = sum_p e_p(i) + base(i)
    e_p(i) = w_p (T[p, i] + R[i] [p == i]) / Z  +  beta w_p <v_p, v_i / |v_i|> / |sum_q w_q v_q|

The hybrid (:mod:`recommendations.evaluation.served`) uses all of it; the embedding recommender is the
special case T = R = 0, beta = 1, base = 0 with its own purchase weights (:mod:`recommendations.profile`),
where the sum is exactly ``cos(customer, item)``. Necessity re-scores every candidate for the profile
without the recommendation's top purchases, in blocks of rows, and reads the item's new rank.

``evidence_arrays`` and ``necessity_arrays`` take arrays only (no database): the benchmark times them on
the same arrays as the floor of the whole numbers pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import scipy.sparse as sp
from django.db import connection

ROWS_PER_BLOCK = 2048  # recommendations re-scored together: 2048 x 3,800 float64 is ~60 MB


@dataclass
class ScoringModel:
    """The arrays one batch's scores come from; columns are products (``product_ids``)."""

    product_ids: np.ndarray  # n product ids, column order
    vectors: np.ndarray  # n x d, the profile's product vectors (zero rows: no vector)
    beta: float  # weight of the description-vector part
    base: np.ndarray  # n, the non-personal term (the hybrid's popularity), zeros for the embedding recommender
    blocked: np.ndarray  # n bool: never recommended (not merchandise, quarantined)
    table: np.ndarray | None = None  # n x n item-item weights (hybrid), None: no item-item part
    repeat: np.ndarray | None = None  # n, weight of having bought the item itself (hybrid)

    def __post_init__(self):
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        self.targets = self.vectors / np.where(norms > 0, norms, 1.0)  # unit rows: the item side of the cosine
        self.column = {int(pid): col for col, pid in enumerate(self.product_ids.tolist())}

    def scores(self, weights: sp.csr_matrix) -> np.ndarray:
        """Return the rows x items score matrix of a purchase-weight matrix (the batch's own formula)."""
        total = np.asarray(weights.sum(axis=1), dtype=np.float64).reshape(-1, 1)
        total = np.where(total > 0, total, 1.0)
        out = np.broadcast_to(self.base, (weights.shape[0], len(self.base))).copy()
        if self.table is not None:
            out += np.asarray(weights @ self.table) / total
        if self.repeat is not None:
            out += weights.multiply(self.repeat[None, :]).toarray() / total
        if self.beta:
            profile = np.asarray(weights @ self.vectors)
            norm = np.linalg.norm(profile, axis=1, keepdims=True)
            out += self.beta * (profile / np.where(norm > 0, norm, 1.0)) @ self.targets.T
        return out


@dataclass
class BatchArrays:
    """One shard's inputs: the model, its customers' purchase weights and the recommendations to explain."""

    model: ScoringModel
    weights: sp.csr_matrix  # customers x n
    excluded: sp.csr_matrix  # customers x n, True where recently bought (never recommended to them)
    row: np.ndarray  # R: each recommendation's customer row
    target: np.ndarray  # R: each recommendation's product column
    top_n: int


@dataclass
class EvidenceArrays:
    """Every (recommendation, purchase) share, grouped by recommendation, largest share first."""

    rec: np.ndarray  # pair -> recommendation index
    col: np.ndarray  # pair -> purchased product column
    weight: np.ndarray  # pair -> w_p
    share: np.ndarray  # pair -> e_p(i)
    base: np.ndarray  # R: the non-personal term
    score: np.ndarray  # R: sum of shares + base
    start: np.ndarray  # R + 1: pairs of recommendation r are start[r]:start[r + 1]


def _pairs(weights: sp.csr_matrix, row: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (recommendation index, position in weights.indices) of every purchase of each recommendation."""
    counts = np.diff(weights.indptr)[row]
    rec = np.repeat(np.arange(len(row)), counts)
    offsets = np.cumsum(counts) - counts
    position = np.arange(counts.sum()) - np.repeat(offsets, counts) + np.repeat(weights.indptr[row], counts)
    return rec, position


def evidence_arrays(arrays: BatchArrays) -> EvidenceArrays:
    """Split every recommendation's score into one exact share per purchased product (numpy only)."""
    model, weights = arrays.model, arrays.weights
    rec, position = _pairs(weights, arrays.row)
    col, w = weights.indices[position], weights.data[position]
    target = arrays.target[rec]
    total = np.asarray(weights.sum(axis=1), dtype=np.float64).ravel()
    total = np.where(total > 0, total, 1.0)[arrays.row][rec]
    share = np.zeros(len(rec))
    if model.table is not None:
        share += w * model.table[col, target] / total
    if model.repeat is not None:
        share += w * model.repeat[target] * (col == target) / total
    if model.beta:
        norm = np.linalg.norm(np.asarray(weights @ model.vectors), axis=1)[arrays.row][rec]
        # One matrix product against the shard's distinct items, then a gather: no (pairs x d) temporaries.
        items, item_of = np.unique(arrays.target, return_inverse=True)
        dots = (model.vectors @ model.targets[items].T)[col, item_of[rec]]
        share += model.beta * w * np.divide(dots, norm, out=np.zeros_like(dots), where=norm > 0)
    order = np.lexsort((col, -share, rec))  # by recommendation, largest share first, ties by column
    rec, col, w, share = rec[order], col[order], w[order], share[order]
    base = model.base[arrays.target]
    start = np.searchsorted(rec, np.arange(len(arrays.row) + 1))
    sums = np.add.reduceat(share, start[:-1]) if len(share) else np.zeros(len(arrays.row))
    sums = np.where(np.diff(start) > 0, sums, 0.0)  # reduceat repeats a value for an empty group
    return EvidenceArrays(rec, col, w, share, base, sums + base, start)


def top_pairs(evidence: EvidenceArrays, k: int) -> np.ndarray:
    """Return the indices of each recommendation's ``k`` largest shares (pairs are sorted already)."""
    rank_in_rec = np.arange(len(evidence.rec)) - evidence.start[evidence.rec]
    return np.flatnonzero(rank_in_rec < k)


@dataclass
class NecessityArrays:
    removed: list[list[int]]  # per recommendation, the removed product columns (its top shares)
    new_rank: np.ndarray  # R, 0 where the item leaves the top N
    counterfactual_score: np.ndarray  # R, nan where nothing is left of the profile


def necessity_arrays(arrays: BatchArrays, evidence: EvidenceArrays, *, removed_count: int) -> NecessityArrays:
    """Re-rank every candidate for each profile without its recommendation's top purchases (numpy only).

    The customer's full item-item and profile sums are computed once per customer; each recommendation's
    counterfactual subtracts its removed purchases' rows (``ScoringModel.scores`` of the reduced weights).
    """
    model, weights = arrays.model, arrays.weights
    top = top_pairs(evidence, removed_count)
    removed = [[] for _ in arrays.row]
    for r, c in zip(evidence.rec[top].tolist(), evidence.col[top].tolist(), strict=True):
        removed[r].append(c)
    # (R x k) removed columns and weights, padded with column 0 and weight 0.
    slot = top - evidence.start[evidence.rec[top]]
    cut_col = np.zeros((len(arrays.row), removed_count), dtype=np.int64)
    cut_w = np.zeros((len(arrays.row), removed_count))
    cut_col[evidence.rec[top], slot] = evidence.col[top]
    cut_w[evidence.rec[top], slot] = evidence.weight[top]
    customers, customer_of = np.unique(arrays.row, return_inverse=True)
    held = weights[customers]
    table_sums = np.asarray(held @ model.table) if model.table is not None else None
    profiles = np.asarray(held @ model.vectors)
    totals = np.asarray(held.sum(axis=1)).ravel()
    left = np.diff(held.indptr)[customer_of] - (cut_w > 0).sum(axis=1)
    new_rank = np.zeros(len(arrays.row), dtype=np.int64)
    cf_score = np.full(len(arrays.row), np.nan)
    for lo in range(0, len(arrays.row), ROWS_PER_BLOCK):
        block = slice(lo, lo + ROWS_PER_BLOCK)
        cols, ws, mine_c = cut_col[block], cut_w[block], customer_of[block]
        local = np.arange(len(cols))
        total = totals[mine_c] - ws.sum(axis=1)
        total = np.where(total > 0, total, 1.0)[:, None]
        scores = np.broadcast_to(model.base, (len(cols), len(model.base))).copy()
        if table_sums is not None:
            part = table_sums[mine_c] - np.einsum("rk,rkn->rn", ws, model.table[cols])
            scores += part / total
        if model.repeat is not None:
            bought = weights[arrays.row[block]].toarray()
            bought[local[:, None], cols] = 0.0
            scores += bought * model.repeat[None, :] / total
        if model.beta:
            profile = profiles[mine_c] - np.einsum("rk,rkd->rd", ws, model.vectors[cols])
            norm = np.linalg.norm(profile, axis=1, keepdims=True)
            scores += model.beta * (profile / np.where(norm > 0, norm, 1.0)) @ model.targets.T
        scores[:, model.blocked] = -np.inf
        excluded = arrays.excluded[arrays.row[block]].tocoo()
        scores[excluded.row, excluded.col] = -np.inf
        target = arrays.target[block]
        mine = scores[local, target]
        columns = np.arange(scores.shape[1])[None, :]
        # Rank as the batch ranks: higher scores first, ties by column.
        ahead = (scores > mine[:, None]) | ((scores == mine[:, None]) & (columns < target[:, None]))
        rank = ahead.sum(axis=1) + 1
        has_rest = left[block] > 0
        kept = has_rest & np.isfinite(mine) & (rank <= arrays.top_n)
        new_rank[block] = np.where(kept, rank, 0)
        cf_score[block] = np.where(has_rest, mine, np.nan)
    return NecessityArrays(removed, new_rank, cf_score)


# --------------------------------------------------------------------------- loading (database)


def scoring_model(batch) -> ScoringModel:
    """Return the arrays that scored ``batch``: the served hybrid's, or the product vectors for the embedding."""
    from recommendations.models import Product
    from recommendations.services.production import HYBRID, hybrid_artifact
    from recommendations.vectors import fetch_vectors

    products = list(Product.objects.values_list("id", "stock_code", "is_merchandise", "pii_quarantined"))
    if batch.recommender == HYBRID:
        served = hybrid_artifact(batch.params["model"], version=batch.model_version)
        by_code = {code: (pid, merch, quarantined) for pid, code, merch, quarantined in products}
        known = [str(code) in by_code for code in served.items]
        # A column whose product is gone from the catalogue can still be a purchase; its id is -1.
        ids = np.array([by_code[str(code)][0] if k else -1 for code, k in zip(served.items, known, strict=True)])
        blocked = np.array([not k or by_code[str(code)][2] for code, k in zip(served.items, known, strict=True)])
        return ScoringModel(
            product_ids=ids,
            vectors=served.vectors,
            beta=served.beta,
            base=served.gamma * served.popularity,
            blocked=blocked,
            table=served.item_item,
            repeat=served.repeat,
        )
    vectors = fetch_vectors(Product._meta.db_table)
    flags = {pid: (merch, quarantined) for pid, _, merch, quarantined in products}
    ids = np.array(sorted(vectors), dtype=np.int64)
    return ScoringModel(
        product_ids=ids,
        vectors=np.stack([vectors[pid].astype(np.float64) for pid in ids]) if len(ids) else np.zeros((0, 1)),
        beta=1.0,
        base=np.zeros(len(ids)),
        blocked=np.array([not flags[pid][0] or flags[pid][1] for pid in ids], dtype=bool),
    )


def _hybrid_weight_rows(customer_ids, *, reference: datetime, half_life_days: float | None):
    """(customer, product id, w_p) of the hybrid's purchase weights: the lines of production.customer_weights."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT p.customer_id, p.product_id, extract(epoch FROM (%s - max(p.occurred_at))) / 86400
            FROM recommendations_purchase p JOIN recommendations_product pr ON pr.id = p.product_id
            WHERE p.customer_id = ANY(%s) AND p.kind = 'sale' AND p.quantity > 0 AND p.unit_price > 0
                  AND pr.is_merchandise AND p.occurred_at <= %s
            GROUP BY p.customer_id, p.product_id
            """,
            [reference, list(customer_ids), reference],
        )
        rows = np.array(cur.fetchall(), dtype=np.float64).reshape(-1, 3)
    age = np.maximum(rows[:, 2], 0.0)
    weight = np.ones(len(rows)) if half_life_days is None else 0.5 ** (age / half_life_days)
    return rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), weight


def _profile_weight_rows(customer_ids, *, reference: datetime):
    """(customer, product id, w_p) of the embedding recommender's profile weights."""
    from recommendations import profile

    found = profile.purchase_weights(customer_ids, reference=reference)
    triples = [(cid, pw.product_id, pw.weight) for cid, ws in found.items() for pw in ws]
    rows = np.array(triples, dtype=np.float64).reshape(-1, 3)
    return rows[:, 0].astype(np.int64), rows[:, 1].astype(np.int64), rows[:, 2]


def _lookup(keys: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Return an array mapping each non-negative key to its value (-1 elsewhere): vectorized dict lookup."""
    out = np.full(int(keys.max(initial=0)) + 2, -1, dtype=np.int64)
    keep = keys >= 0
    out[keys[keep]] = values[keep]
    return out


def triples_matrix(model: ScoringModel, customer_ids: np.ndarray, customers, products, values) -> sp.csr_matrix:
    """Return the customers x columns matrix of (customer id, product id, value) triples (unknown products dropped)."""
    column = _lookup(model.product_ids, np.arange(len(model.product_ids)))
    products = np.asarray(products, dtype=np.int64)
    cols = np.where(products < len(column) - 1, column[np.minimum(products, len(column) - 1)], -1)
    rows = np.searchsorted(customer_ids, np.asarray(customers, dtype=np.int64))
    values = np.asarray(values, dtype=np.float64)
    keep = (cols >= 0) & (values > 0)
    shape = (len(customer_ids), len(model.product_ids))
    matrix = sp.csr_matrix((values[keep], (rows[keep], cols[keep])), shape=shape, dtype=np.float64)
    matrix.sum_duplicates()
    matrix.sort_indices()
    return matrix


def batch_arrays(batch, recommendations: list[tuple[int, int]], *, model: ScoringModel, reference) -> BatchArrays:
    """Load the purchase weights and recent purchases behind ``recommendations`` [(customer id, product id)]."""
    from django.conf import settings

    from recommendations.services.production import HYBRID
    from recommendations.services.recommend import recently_bought

    customer_ids = np.array(sorted({cid for cid, _ in recommendations}), dtype=np.int64)
    if batch.recommender == HYBRID:
        half_life = batch.params["model"].get("half_life_days")
        found = _hybrid_weight_rows(customer_ids.tolist(), reference=reference, half_life_days=half_life)
    else:
        found = _profile_weight_rows(customer_ids.tolist(), reference=reference)
    weights = triples_matrix(model, customer_ids, *found)
    exclude_days = int(batch.params.get("exclude_days", settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS))
    recent = recently_bought(customer_ids=customer_ids.tolist(), since=reference - timedelta(days=exclude_days))
    pairs = [(cid, pid) for cid, pids in recent.items() for pid in pids]
    excluded = triples_matrix(model, customer_ids, [c for c, _ in pairs], [p for _, p in pairs], np.ones(len(pairs)))
    return BatchArrays(
        model=model,
        weights=weights,
        excluded=excluded.astype(bool),
        row=np.searchsorted(customer_ids, np.array([cid for cid, _ in recommendations], dtype=np.int64)),
        target=np.array([model.column[pid] for _, pid in recommendations], dtype=np.int64),
        top_n=int(batch.params.get("top_n", settings.ELM_RECOMMENDATIONS_PER_CUSTOMER)),
    )
