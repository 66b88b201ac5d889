"""Baseline recommenders: recent popularity, item-kNN, ALS, BPR and the pure embedding recommender.

Each model is fitted on a :class:`TrainingData` and returns a dense score row per customer over the
training catalogue; :func:`rank_customers` applies the exclusion rule and cuts the top-N lists.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

import numpy as np
import scipy.sparse as sp

from recommendations.evaluation.training import TrainingData

THREADS = 2  # the team's machine has 2 cores


class Recommender:
    name = "recommender"

    def __init__(self, **params):
        self.params = params
        self.data: TrainingData | None = None

    def fit(self, data: TrainingData) -> Recommender:
        self.data = data
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        """Return a len(rows) x n_items score matrix for the customers at ``rows`` of ``self.data``."""
        raise NotImplementedError

    def config(self) -> dict:
        return {"model": self.name, "params": self.params}

    def version(self) -> str:
        """Return a short stable id of this model's name and hyper-parameters."""
        blob = json.dumps(self.config(), sort_keys=True, default=str).encode()
        return f"{self.name}@{hashlib.sha256(blob).hexdigest()[:12]}"


class PopularityRecommender(Recommender):
    """Most distinct buyers in the last ``window_days`` (None = all training); ties by all-time buyers."""

    name = "popularity"

    def __init__(self, *, window_days: int | None = 30):
        super().__init__(window_days=window_days)

    def fit(self, data: TrainingData) -> PopularityRecommender:
        super().fit(data)
        all_time = data.recent_buyers(None)
        self.item_scores = data.recent_buyers(self.params["window_days"]) + all_time / (all_time.max() + 1.0)
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.item_scores, (len(rows), len(self.item_scores))).copy()


def cosine_item_similarity(binary: sp.csr_matrix, *, shrinkage: float) -> np.ndarray:
    """Return the dense item x item cosine of the binarized customer x item matrix, shrunk, zero diagonal."""
    co = (binary.T @ binary).toarray().astype(np.float64)
    counts = np.diag(co).copy()
    sim = co / (np.sqrt(np.outer(counts, counts)) + shrinkage + 1e-12)
    np.fill_diagonal(sim, 0.0)
    return sim


def keep_top_neighbours(sim: np.ndarray, k: int | None) -> np.ndarray:
    """Zero all but the ``k`` largest entries of every column (each target item keeps its k nearest items)."""
    if k is None or k >= sim.shape[0]:
        return sim
    threshold = -np.partition(-sim, k - 1, axis=0)[k - 1]
    pruned = np.where(sim >= threshold[None, :], sim, 0.0)
    return pruned


class ItemKNNRecommender(Recommender):
    """Item-kNN: score(c, i) = sum of cosine(p, i) over the items p that c bought, among i's k nearest."""

    name = "item_knn"

    def __init__(self, *, neighbours: int | None = 100, shrinkage: float = 10.0):
        super().__init__(neighbours=neighbours, shrinkage=shrinkage)

    def fit(self, data: TrainingData, *, similarity: np.ndarray | None = None) -> ItemKNNRecommender:
        """Fit; ``similarity`` (the unpruned shrunk cosine for these params) may be passed to save recomputing it."""
        super().fit(data)
        if similarity is None:
            similarity = cosine_item_similarity(data.binary, shrinkage=self.params["shrinkage"])
        self.similarity = keep_top_neighbours(similarity, self.params["neighbours"])
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.data.binary[rows] @ self.similarity)


def ease_item_weights(binary: sp.csr_matrix, *, l2: float) -> np.ndarray:
    """Return EASE's item x item weights B = -P / diag(P), P = (X'X + l2 I)^-1, with a zero diagonal."""
    gram = (binary.T @ binary).toarray().astype(np.float64)
    gram[np.diag_indices_from(gram)] += l2
    inverse = np.linalg.inv(gram)
    weights = -inverse / np.diag(inverse)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


class EASERecommender(Recommender):
    """EASE (Steck 2019): closed-form ridge regression of each item on all others, zero diagonal.

    Not in the brief's list; included because it is a strong item-item baseline on data like this.
    """

    name = "ease"

    def __init__(self, *, l2: float = 300.0):
        super().__init__(l2=l2)

    def fit(self, data: TrainingData, *, weights: np.ndarray | None = None) -> EASERecommender:
        """Fit; ``weights`` (from :func:`ease_item_weights` with the same l2) may be passed to save the inverse."""
        super().fit(data)
        self.weights = weights if weights is not None else ease_item_weights(data.binary, l2=self.params["l2"])
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        return np.asarray(self.data.binary[rows] @ self.weights)


class _ImplicitRecommender(Recommender):
    def _fit_factors(self, make_model, data: TrainingData):
        from threadpoolctl import threadpool_limits

        # implicit parallelizes itself; nested BLAS threads would only oversubscribe the 2 cores.
        with threadpool_limits(1, "blas"):
            model = make_model()
            model.fit(data.binary, show_progress=False)
        self.user_factors = np.asarray(model.user_factors)
        self.item_factors = np.asarray(model.item_factors)

    def score(self, rows: np.ndarray) -> np.ndarray:
        return self.user_factors[rows] @ self.item_factors.T


class ALSRecommender(_ImplicitRecommender):
    """Implicit-feedback ALS (Hu, Koren & Volinsky) on the binarized matrix, confidence 1 + alpha."""

    name = "als"

    def __init__(
        self, *, factors: int = 64, regularization: float = 0.1, alpha: float = 10.0, iterations: int = 15, seed=0
    ):
        super().__init__(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations, seed=seed)

    def fit(self, data: TrainingData) -> ALSRecommender:
        from implicit.cpu.als import AlternatingLeastSquares

        super().fit(data)
        p = self.params
        self._fit_factors(
            lambda: AlternatingLeastSquares(
                factors=p["factors"],
                regularization=p["regularization"],
                alpha=p["alpha"],
                iterations=p["iterations"],
                num_threads=THREADS,
                random_state=p["seed"],
            ),
            data,
        )
        return self


class BPRRecommender(_ImplicitRecommender):
    """Bayesian personalized ranking (Rendle et al.) by SGD on the binarized matrix."""

    name = "bpr"

    def __init__(
        self,
        *,
        factors: int = 64,
        learning_rate: float = 0.05,
        regularization: float = 0.01,
        iterations: int = 100,
        seed=0,
    ):
        super().__init__(
            factors=factors,
            learning_rate=learning_rate,
            regularization=regularization,
            iterations=iterations,
            seed=seed,
        )

    def fit(self, data: TrainingData) -> BPRRecommender:
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        super().fit(data)
        p = self.params
        self._fit_factors(
            lambda: BayesianPersonalizedRanking(
                factors=p["factors"],
                learning_rate=p["learning_rate"],
                regularization=p["regularization"],
                iterations=p["iterations"],
                num_threads=THREADS,
                random_state=p["seed"],
            ),
            data,
        )
        return self


class EmbeddingRecommender(Recommender):
    """Cosine between the product's description embedding and the customer vector.

    Customer vector = L2-normalized sum over bought products of log1p(total qty) * 0.5 ** (days since
    the latest purchase / half-life) times the product embedding: the weighted mean (up to a scale the
    normalization removes), with the weights of ``recommendations.profile``.
    """

    name = "embedding"

    def __init__(self, *, half_life_days: float = 180.0):
        super().__init__(half_life_days=half_life_days)

    def fit(self, data: TrainingData) -> EmbeddingRecommender:
        if data.item_vectors is None:
            raise ValueError("the embedding recommender needs item_vectors")
        super().fit(data)
        self.weights = data.purchase_weights(half_life_days=self.params["half_life_days"], quantity="log1p")
        return self

    def score(self, rows: np.ndarray) -> np.ndarray:
        from recommendations.profile import customer_vectors

        vectors, _ = customer_vectors(self.weights[rows], self.data.item_vectors)
        return vectors @ self.data.item_vectors.T


def top_n(scores: np.ndarray, exclude: sp.csr_matrix | None, n: int) -> list[np.ndarray]:
    """Return per row the column indices of the ``n`` best scores, best first; excluded columns never appear."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    if exclude is not None and exclude.nnz:
        coo = exclude.tocoo()
        scores[coo.row, coo.col] = -np.inf
    n = min(n, scores.shape[1])
    part = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    part_scores = np.take_along_axis(scores, part, axis=1)
    # Ties broken by column index, so lists are deterministic.
    order = np.lexsort((part, -part_scores), axis=1)
    best = np.take_along_axis(part, order, axis=1)
    allowed = np.isfinite(np.take_along_axis(part_scores, order, axis=1))
    return [row[keep] for row, keep in zip(best, allowed, strict=True)]


def rank_customers(
    model: Recommender,
    customers: list[str],
    excluded: Mapping[str, frozenset[str]],
    *,
    n: int = 100,
    chunk: int = 1024,
) -> list[list[str]]:
    """Return each customer's top-``n`` stock codes from ``model``, minus their recently bought items."""
    data = model.data
    rows = np.array([data.customer_index[c] for c in customers], dtype=np.int64)
    exclude = data.exclusion_mask(customers, excluded)
    ranked: list[list[str]] = []
    for start in range(0, len(rows), chunk):
        scores = model.score(rows[start : start + chunk])
        for picks in top_n(scores, exclude[start : start + chunk], n):
            ranked.append(data.items[picks].tolist())
    return ranked
