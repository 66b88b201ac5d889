"""The hybrid as production serves it: a fitted model frozen into a few arrays, scored and explained exactly.

A :class:`ServedHybrid` holds what scoring needs (the blended item-item table, the per-item repeat weight,
the description vectors, the scaled popularity) and nothing else. Batch scoring and the evidence of one
recommendation use the same arrays, so each stored score equals the sum of its per-purchase contributions
plus the popularity base term (to float rounding), and equals the evaluated :class:`HybridRecommender`'s.

    score(c, i) = sum_p e_p(i) + base(i)
    e_p(i) = w_p (T[p, i] + R[i] [p == i]) / Z  +  beta w_p cos(v_p, v_i) / |sum_q w_q v_q|
    base(i) = gamma pop(i)

with T = alpha knn + delta ease and R = rho + rho_rate r (see :mod:`recommendations.evaluation.hybrid`).
Numpy only: no Django, no torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from recommendations.evaluation.hybrid import HybridRecommender

ARRAYS = ("items", "item_item", "repeat", "vectors", "popularity")


@dataclass
class ServedHybrid:
    version: str
    params: dict
    items: np.ndarray  # stock codes, column order
    item_item: np.ndarray  # n x n float64: alpha * knn + delta * ease
    repeat: np.ndarray  # n float64: weight of "bought this item before" (rho + rho_rate * repurchase rate)
    vectors: np.ndarray  # n x d float64, unit rows (zero where a product has no description vector)
    popularity: np.ndarray  # n float64, scaled to [0, 1] (gamma not applied)
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.index = {code: col for col, code in enumerate(self.items.tolist())}

    @classmethod
    def from_model(cls, model: HybridRecommender, *, version: str, meta: Mapping | None = None) -> ServedHybrid:
        """Freeze a fitted hybrid."""
        p = model.params
        table = p["alpha"] * np.asarray(model.similarity, dtype=np.float64)
        if model.ease is not None:
            table = table + p["delta"] * np.asarray(model.ease, dtype=np.float64)
        return cls(
            version=version,
            params=dict(p),
            items=np.asarray(model.data.items),
            item_item=table,
            repeat=p["rho"] + p["rho_rate"] * np.asarray(model.repurchase, dtype=np.float64),
            vectors=np.asarray(model.vectors, dtype=np.float64),
            popularity=np.asarray(model.popularity, dtype=np.float64),
            meta=dict(meta or {}),
        )

    # ------------------------------------------------------------------ persistence
    def save(self, directory: str | Path) -> Path:
        """Write ``arrays.npz`` and ``config.json`` into ``directory`` (created)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.savez(directory / "arrays.npz", **{name: getattr(self, name) for name in ARRAYS})
        config = {"version": self.version, "params": self.params, "meta": self.meta}
        (directory / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> ServedHybrid:
        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        with np.load(directory / "arrays.npz", allow_pickle=False) as arrays:
            loaded = {name: arrays[name] for name in ARRAYS}
        return cls(version=config["version"], params=config["params"], meta=config.get("meta", {}), **loaded)

    # ------------------------------------------------------------------ scoring
    @property
    def gamma(self) -> float:
        return float(self.params["gamma"])

    @property
    def beta(self) -> float:
        return float(self.params["beta"])

    def weight_matrix(self, customers: Sequence[Mapping[str, float]]) -> sp.csr_matrix:
        """Return a customers x items matrix of purchase weights; products outside the catalogue are dropped."""
        rows, cols, values = [], [], []
        for row, weights in enumerate(customers):
            for code, w in weights.items():
                col = self.index.get(code)
                if col is not None and w > 0:
                    rows.append(row)
                    cols.append(col)
                    values.append(float(w))
        return sp.csr_matrix((values, (rows, cols)), shape=(len(customers), len(self.items)), dtype=np.float64)

    def score(self, weights: sp.csr_matrix) -> np.ndarray:
        """Return the customers x items score matrix for a purchase-weight matrix (see the module docstring)."""
        total = np.asarray(weights.sum(axis=1), dtype=np.float64).reshape(-1, 1)
        total = np.where(total > 0, total, 1.0)
        personal = (np.asarray(weights @ self.item_item) + weights.multiply(self.repeat[None, :]).toarray()) / total
        if self.beta:
            profile = np.asarray(weights @ self.vectors)
            norm = np.linalg.norm(profile, axis=1, keepdims=True)
            personal = personal + self.beta * (profile / np.where(norm > 0, norm, 1.0)) @ self.vectors.T
        return personal + self.gamma * self.popularity[None, :]

    def evidence(self, weights: Mapping[str, float], item: str) -> tuple[float, dict[str, float], float]:
        """Return (score, contribution of each purchased product, popularity base term) of ``item``.

        The contributions plus the base term add up to the score, which is the batch score.
        """
        target = self.index[item]
        bought = [code for code, w in weights.items() if code in self.index and w > 0]
        cols = np.array([self.index[code] for code in bought], dtype=np.int64)
        w = np.array([weights[code] for code in bought], dtype=np.float64)
        base = self.gamma * float(self.popularity[target])
        if not len(cols):
            return base, {}, base
        item_item = self.item_item[cols, target] + self.repeat[target] * (cols == target)
        contributions = w * item_item / w.sum()
        if self.beta:
            norm = float(np.linalg.norm(w @ self.vectors[cols]))
            if norm > 0:
                contributions = contributions + self.beta * w * (self.vectors[cols] @ self.vectors[target]) / norm
        return float(contributions.sum() + base), dict(zip(bought, contributions.tolist(), strict=True)), base

    def rank(
        self, weights: Mapping[str, float], *, excluded: Sequence[str] = (), top_n: int = 10
    ) -> list[tuple[str, float]]:
        """Return one customer's top-``top_n`` (stock code, score), never an ``excluded`` product."""
        scores = self.score(self.weight_matrix([weights]))[0]
        for code in excluded:
            col = self.index.get(code)
            if col is not None:
                scores[col] = -np.inf
        n = min(top_n, len(scores))
        best = np.argpartition(-scores, n - 1)[:n]
        best = best[np.lexsort((best, -scores[best]))]  # ties by column: deterministic, as in evaluation
        return [(str(self.items[col]), float(scores[col])) for col in best if np.isfinite(scores[col])]
