"""Load interactions (sale lines of merchandise bought by known customers) and product descriptions.

The CSV path needs no Django. Customer ids are replaced by keyed pseudonyms right after reading, so
raw ids never leave this module (and are never printed).
"""

from __future__ import annotations

import hashlib
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from core.pseudonyms import pseudonymize
from core.regions import generalize

INTERACTION_COLUMNS = ["customer", "item", "quantity", "unit_price", "occurred_at", "region"]
MERCHANDISE_CODE = r"^\d{5}[A-Z]{0,4}$"
DEFAULT_REGION_K = 5  # same default as settings.ELM_REGION_MIN_K
DEFAULT_CACHE_DIR = Path(tempfile.gettempdir()) / "elm_evaluation_cache"


def interactions_from_csv(
    path: str | Path, *, nrows: int | None = None, key: bytes | None = None, region_k: int = DEFAULT_REGION_K
) -> pd.DataFrame:
    """Return the clean sale lines of the UCI Online Retail CSV as an interactions DataFrame.

    ``key`` keys the customer pseudonyms (HMAC-SHA256); without one a random per-call key is used,
    so pseudonyms are stable within one load only.
    """
    interactions, _ = load_csv(path, nrows=nrows, key=key, region_k=region_k)
    return interactions


def descriptions_from_csv(path: str | Path, *, nrows: int | None = None) -> dict[str, str]:
    """Return the most frequent clean description of every merchandise stock code in the CSV."""
    _, descriptions = load_csv(path, nrows=nrows)
    return descriptions


def load_csv(
    path: str | Path, *, nrows: int | None = None, key: bytes | None = None, region_k: int = DEFAULT_REGION_K
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Return (interactions, descriptions) from one read of the CSV."""
    raw = pd.read_csv(
        path,
        nrows=nrows,
        dtype={
            "InvoiceNo": str,
            "StockCode": str,
            "Description": str,
            "CustomerID": str,
            "Country": str,
            "Quantity": "int64",
            "UnitPrice": "float64",
        },
        keep_default_na=False,
        na_values={"CustomerID": [""], "Description": [""]},
    )
    # Exact duplicate lines are one line counted twice (the importer dedupes them on the line key).
    raw = raw.drop_duplicates()
    keep = (
        raw["CustomerID"].notna()
        & ~raw["InvoiceNo"].str.startswith(("C", "A"))
        & (raw["Quantity"] > 0)
        & (raw["UnitPrice"] > 0)
    )
    df = raw.loc[keep].copy()
    df["item"] = df["StockCode"].str.strip().str.upper()
    df = df.loc[df["item"].str.match(MERCHANDISE_CODE)]
    descriptions = _most_frequent_descriptions(df["item"], df["Description"])

    key = key if key is not None else secrets.token_bytes(32)
    # The same keyed pseudonyms as the importer's, so a run with the production key matches the DB.
    pseudonym_of = {sid: pseudonymize(sid, key=key) for sid in df["CustomerID"].unique()}
    customer = df["CustomerID"].map(pseudonym_of)

    # A customer's country is the one on most of their lines; countries are generalized to regions.
    country = (
        pd.DataFrame({"customer": customer, "country": df["Country"].fillna("Unspecified")})
        .groupby(["customer", "country"])
        .size()
        .reset_index(name="n")
        .sort_values(["customer", "n", "country"], ascending=[True, False, True])
        .drop_duplicates("customer")
        .set_index("customer")["country"]
    )
    generalization = generalize(country.value_counts().to_dict(), k=region_k)
    region_of_customer = country.map(generalization.region_of)

    interactions = pd.DataFrame(
        {
            "customer": customer.to_numpy(),
            "item": df["item"].to_numpy(),
            "quantity": df["Quantity"].to_numpy(dtype=np.int64),
            "unit_price": df["UnitPrice"].to_numpy(dtype=np.float64),
            "occurred_at": pd.to_datetime(df["InvoiceDate"]).to_numpy(),
            "region": customer.map(region_of_customer).to_numpy(),
        }
    )
    return interactions.reset_index(drop=True), descriptions


def interactions_from_db() -> pd.DataFrame:
    """Return the sale lines of merchandise bought by known customers, from the database."""
    from django.conf import settings

    from recommendations.models import Purchase

    rows = (
        Purchase.objects.filter(
            kind=Purchase.Kind.SALE,
            customer__isnull=False,
            product__is_merchandise=True,
            quantity__gt=0,
            unit_price__gt=0,
        )
        .order_by("occurred_at", "id")
        .values_list(
            "customer__pseudonym",
            "product__stock_code",
            "quantity",
            "unit_price",
            "occurred_at",
            "customer__region",
        )
    )
    df = pd.DataFrame.from_records(list(rows.iterator(chunk_size=20_000)), columns=INTERACTION_COLUMNS)
    df["quantity"] = df["quantity"].astype(np.int64)
    df["unit_price"] = df["unit_price"].astype(np.float64)
    # Stored aware; the evaluation works in the data's own (UK local) wall-clock time, like the CSV.
    occurred = pd.to_datetime(df["occurred_at"], utc=True)
    df["occurred_at"] = occurred.dt.tz_convert(settings.TIME_ZONE).dt.tz_localize(None)
    return df


def descriptions_from_db() -> dict[str, str]:
    """Return stock code -> description of every merchandise product in the database."""
    from recommendations.models import Product

    return dict(Product.objects.filter(is_merchandise=True).values_list("stock_code", "description"))


def embeddings_from_db() -> dict[str, np.ndarray]:
    """Return stock code -> stored 384-d embedding of every embedded merchandise product."""
    from recommendations.models import Product

    rows = Product.objects.filter(is_merchandise=True, embedding__isnull=False).values_list("stock_code", "embedding")
    return {code: np.asarray(vector, dtype=np.float32) for code, vector in rows.iterator(chunk_size=2_000)}


def product_embeddings(
    descriptions: Mapping[str, str], *, cache_dir: str | Path | None = DEFAULT_CACHE_DIR
) -> dict[str, np.ndarray]:
    """Return stock code -> L2-normalized description embedding, encoded once and cached on disk.

    Needs Django settings configured (the encoder reads them); the cache key covers the encoder
    version and every (code, description) pair, so a stale cache is never reused.
    """
    from recommendations.ml.encoder import encode, encoder_version

    codes = sorted(descriptions)
    texts = [descriptions[c] or c for c in codes]
    digest = hashlib.sha256(encoder_version().encode())
    for code, text in zip(codes, texts, strict=True):
        digest.update(f"{code}\x1f{text}\x1e".encode())
    cache = Path(cache_dir) / f"embeddings-{digest.hexdigest()[:20]}.npz" if cache_dir else None
    if cache is not None and cache.exists():
        stored = np.load(cache, allow_pickle=False)
        if stored["codes"].tolist() == codes and stored["vectors"].shape == (len(codes), stored["vectors"].shape[1]):
            return dict(zip(codes, stored["vectors"], strict=True))
    vectors = encode(texts) if texts else np.zeros((0, 384), dtype=np.float32)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.savez(cache, codes=np.asarray(codes), vectors=vectors)
    return dict(zip(codes, vectors, strict=True))


def _most_frequent_descriptions(items: pd.Series, descriptions: pd.Series) -> dict[str, str]:
    clean = descriptions.fillna("").str.strip().str.replace(r"\s+", " ", regex=True)
    counts = (
        pd.DataFrame({"item": items.to_numpy(), "description": clean.to_numpy()})
        .query("description != ''")
        .groupby(["item", "description"])
        .size()
        .reset_index(name="n")
        .sort_values(["item", "n", "description"], ascending=[True, False, True])
        .drop_duplicates("item")
    )
    return dict(zip(counts["item"], counts["description"], strict=True))
