"""Real-data samples for the SIG tests and benchmark: the first rows of the data file, read directly.

Experiment support, not product code: the product reads purchases from the database and builds customer
vectors with ``recommendations.profile``. These pairs only need to look like recommendations (a customer-like
vector and an unbought product close to it) so that word attributions are measured on realistic inputs.
"""

from __future__ import annotations

import csv
import gzip
import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np


def read_retail_rows(path: Path | str, *, limit: int) -> list[dict[str, str]]:
    """Return the first ``limit`` rows of the Online Retail CSV (gzip or plain) as dicts."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    rows = []
    with opener(path, "rt", newline="", encoding="utf-8") as f:
        for i, row in enumerate(csv.DictReader(f)):
            if i >= limit:
                break
            rows.append(row)
    return rows


def _is_sale(row: dict[str, str]) -> bool:
    return (
        bool(row["CustomerID"])
        and bool(row["Description"].strip())
        and not row["InvoiceNo"].startswith(("C", "A"))
        and int(row["Quantity"]) > 0
        and float(row["UnitPrice"]) > 0
    )


def real_descriptions(rows: Sequence[dict[str, str]]) -> list[str]:
    """Return the distinct sold product descriptions (whitespace-normalized) in first-seen order."""
    seen: dict[str, None] = {}
    for row in rows:
        if _is_sale(row):
            seen.setdefault(" ".join(row["Description"].split()), None)
    return list(seen)


def customer_like_pairs(
    rows: Sequence[dict[str, str]], *, n_pairs: int, min_products: int = 3
) -> list[tuple[str, np.ndarray, str]]:
    """Return (description, customer vector, customer id) pairs that look like recommendations.

    A customer vector is the L2-normalized log1p(quantity)-weighted mean of the embeddings of the products
    the customer bought in ``rows`` (the project's profile without recency decay: a few hundred rows
    span about a day). Its product is the sampled description with the highest cosine that the customer
    did not buy, as the recommender would propose. Customers come in first-seen order.
    """
    from recommendations.ml.encoder import encode

    quantities: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for row in rows:
        if _is_sale(row):
            quantities[row["CustomerID"]][" ".join(row["Description"].split())] += int(row["Quantity"])
    catalog = real_descriptions(rows)
    vectors = encode([d.lower() for d in catalog])
    index = {d: i for i, d in enumerate(catalog)}
    pairs = []
    for customer_id, bought in quantities.items():
        if len(bought) < min_products:
            continue
        weights = np.array([math.log1p(q) for q in bought.values()])
        profile = (weights[:, None] * vectors[[index[d] for d in bought]]).sum(axis=0)
        profile = (profile / np.linalg.norm(profile)).astype(np.float32)
        scores = vectors @ profile
        scores[[index[d] for d in bought]] = -np.inf
        pairs.append((catalog[int(np.argmax(scores))], profile, customer_id))
        if len(pairs) == n_pairs:
            break
    return pairs
