"""Index a training window once: customer x item matrices, purchase weights, popularity, item vectors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.sparse as sp

DAY = pd.Timedelta(days=1)
REPURCHASE_PRIOR_BUYERS = 5.0  # smoothing of the repurchase rate towards 1 / 5 for rarely bought items


@dataclass
class TrainingData:
    """Everything a recommender may learn from: purchases strictly before ``as_of``."""

    as_of: pd.Timestamp
    customers: np.ndarray  # customer pseudonyms, sorted
    items: np.ndarray  # stock codes, sorted = the candidate catalogue
    line_customer: np.ndarray  # per sale line: customer row
    line_item: np.ndarray  # per sale line: item column
    line_quantity: np.ndarray
    line_age_days: np.ndarray  # days between the line and ``as_of``
    item_vectors: np.ndarray | None = None  # n_items x d, L2-normalized; zero rows where unknown
    line_day: np.ndarray | None = None  # per sale line: calendar day (days since 1970-01-01, local time)
    customer_index: dict[str, int] = field(init=False)
    item_index: dict[str, int] = field(init=False)
    binary: sp.csr_matrix = field(init=False)  # bought at least once
    popularity: np.ndarray = field(init=False)  # share of training customers who bought the item

    def __post_init__(self):
        self.customer_index = {c: i for i, c in enumerate(self.customers)}
        self.item_index = {c: i for i, c in enumerate(self.items)}
        ones = np.ones(len(self.line_item), dtype=np.float32)
        counts = sp.csr_matrix(
            (ones, (self.line_customer, self.line_item)), shape=(len(self.customers), len(self.items))
        )
        counts.sum_duplicates()
        self.binary = counts.sign().astype(np.float32).tocsr()
        buyers = np.asarray(self.binary.sum(axis=0)).ravel()
        self.popularity = buyers / max(len(self.customers), 1)

    @classmethod
    def from_interactions(
        cls,
        train: pd.DataFrame,
        *,
        as_of: str | pd.Timestamp,
        embeddings: Mapping[str, np.ndarray] | None = None,
    ) -> TrainingData:
        """Index ``train`` (interactions before ``as_of``) and align ``embeddings`` to its items."""
        as_of = pd.Timestamp(as_of)
        customers, line_customer = np.unique(train["customer"].to_numpy(dtype=str), return_inverse=True)
        items, line_item = np.unique(train["item"].to_numpy(dtype=str), return_inverse=True)
        occurred = pd.to_datetime(train["occurred_at"])
        age = (as_of - occurred) / DAY
        day = (occurred.dt.normalize() - pd.Timestamp("1970-01-01")) // DAY
        vectors = None
        if embeddings is not None:
            dim = len(next(iter(embeddings.values()))) if embeddings else 384
            vectors = np.zeros((len(items), dim), dtype=np.float32)
            for row, code in enumerate(items):
                vector = embeddings.get(code)
                if vector is not None:
                    norm = float(np.linalg.norm(vector))
                    vectors[row] = np.asarray(vector, dtype=np.float32) / norm if norm else 0.0
        return cls(
            as_of=as_of,
            customers=customers,
            items=items,
            line_customer=line_customer.astype(np.int64),
            line_item=line_item.astype(np.int64),
            line_quantity=train["quantity"].to_numpy(dtype=np.float64),
            line_age_days=np.maximum(age.to_numpy(dtype=np.float64), 0.0),
            item_vectors=vectors,
            line_day=day.to_numpy(dtype=np.int64),
        )

    @property
    def n_items(self) -> int:
        return len(self.items)

    def purchase_weights(self, *, half_life_days: float | None, quantity: str = "log1p") -> sp.csr_matrix:
        """Return customer x item weights, one per bought product, decayed from its latest purchase.

        ``quantity``: "log1p" = log(1 + total quantity bought), as in ``recommendations.profile`` (which
        also nets out returns; these interactions hold sales only), or "binary" = 1 per bought product.
        The decay is 0.5 ** (days since the latest purchase / ``half_life_days``); None = no decay.
        """
        if quantity not in ("log1p", "binary"):
            raise ValueError(f"unknown quantity transform {quantity!r}")
        per_pair = (
            pd.DataFrame(
                {
                    "r": self.line_customer,
                    "c": self.line_item,
                    "qty": self.line_quantity,
                    "age": self.line_age_days,
                }
            )
            .groupby(["r", "c"], sort=False)
            .agg(qty=("qty", "sum"), age=("age", "min"))
        )
        decay = 1.0 if half_life_days is None else np.power(0.5, per_pair["age"].to_numpy() / half_life_days)
        base = np.log1p(per_pair["qty"].to_numpy()) if quantity == "log1p" else np.ones(len(per_pair))
        rows = per_pair.index.get_level_values(0).to_numpy()
        cols = per_pair.index.get_level_values(1).to_numpy()
        return sp.csr_matrix((base * decay, (rows, cols)), shape=(len(self.customers), len(self.items)))

    def recent_buyers(self, window_days: float | None) -> np.ndarray:
        """Return per item the number of distinct customers who bought it in the last ``window_days``."""
        mask = np.ones(len(self.line_item), dtype=bool) if window_days is None else self.line_age_days <= window_days
        pairs = np.unique(self.line_customer[mask] * self.n_items + self.line_item[mask])
        return np.bincount(pairs % self.n_items, minlength=self.n_items).astype(np.float64)

    def repurchase_rate(self, *, prior_buyers: float = REPURCHASE_PRIOR_BUYERS) -> np.ndarray:
        """Return per item how often its buyers came back for it: a smoothed share of repeat buyers.

        (customers who bought the item on at least two distinct days + 1) / (its buyers + ``prior_buyers``):
        consumables people re-order score high, one-off gifts low, rarely bought items stay near the prior.
        """
        if self.line_day is None:
            raise ValueError("repurchase_rate needs line_day (build the data with from_interactions)")
        triples = np.unique(np.stack([self.line_customer, self.line_item, self.line_day]), axis=1)
        days = sp.csr_matrix(
            (np.ones(triples.shape[1]), (triples[0], triples[1])), shape=(len(self.customers), self.n_items)
        )
        days.sum_duplicates()
        buyers = np.asarray((days > 0).sum(axis=0)).ravel()
        repeat = np.asarray((days > 1).sum(axis=0)).ravel()
        return (repeat + 1.0) / (buyers + prior_buyers)

    def exclusion_mask(self, customers: list[str], excluded: Mapping[str, frozenset[str]]) -> sp.csr_matrix:
        """Return a len(customers) x n_items boolean matrix of items each customer must not be shown."""
        rows, cols = [], []
        for row, customer in enumerate(customers):
            for item in excluded.get(customer, ()):
                col = self.item_index.get(item)
                if col is not None:
                    rows.append(row)
                    cols.append(col)
        return sp.csr_matrix(
            (np.ones(len(rows), dtype=bool), (rows, cols)), shape=(len(customers), self.n_items), dtype=bool
        )
