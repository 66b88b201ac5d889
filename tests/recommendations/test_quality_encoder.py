"""Encoder tuning: co-purchase pairs, batches without false negatives, search NDCG, the labelled set, a smoke run."""

from __future__ import annotations

import json
import math
import random
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.utils import timezone

from recommendations.evaluation import search_set
from recommendations.ml.tuning import copurchase_pairs, pair_batches, with_settings

DATASET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
T0 = pd.Timestamp("2011-03-01 10:00")


def _lines(baskets: list[tuple[str, int, list[str]]]) -> pd.DataFrame:
    rows = [
        {"customer": c, "item": item, "quantity": 1, "unit_price": 1.0, "occurred_at": T0 + pd.Timedelta(days=day)}
        for c, day, items in baskets
        for item in items
    ]
    return pd.DataFrame(rows)


TEXTS = {"A": "red bag", "B": "red lunch box", "C": "blue bag", "D": "candle", "E": "red bag"}


def test_copurchase_pairs_are_basket_pairs_before_the_cutoff_strongest_first():
    """Pair products bought in the same basket at least min_baskets times, before the cutoff only."""
    # Given A+B together in 3 baskets, A+C in 2, C+D once, and A+D together only after the cutoff
    lines = _lines(
        [("c1", 0, ["A", "B"]), ("c2", 1, ["A", "B", "C"]), ("c3", 2, ["A", "B"]), ("c4", 3, ["A", "C"]),
         ("c5", 4, ["C", "D"]), ("c6", 40, ["A", "D"]), ("c7", 41, ["A", "D"]), ("c8", 42, ["A", "D"])]
    )  # fmt: skip
    settings = with_settings("cpu", min_baskets=2)
    # When pairs are built with the cutoff between
    pairs = copurchase_pairs(lines, TEXTS, before=T0 + pd.Timedelta(days=30), settings=settings)
    # Then A-B comes first (3 shared baskets), A-C second; C-D (1 basket) and the later A-D are left out
    assert pairs == [("red bag", "red lunch box"), ("red bag", "blue bag")]
    # And the per-product cap holds
    capped = copurchase_pairs(lines, TEXTS, before=T0 + pd.Timedelta(days=30), settings=with_settings(
        "cpu", min_baskets=1, per_item=1))  # fmt: skip
    assert capped == [("red bag", "red lunch box"), ("blue bag", "candle")]


def test_identical_texts_are_never_a_pair():
    """Skip pairs of two products with the same text (the encoder cannot tell them apart anyway)."""
    lines = _lines([("c1", 0, ["A", "E"]), ("c2", 1, ["A", "E"])])
    assert copurchase_pairs(lines, TEXTS, before=T0 + pd.Timedelta(days=9), settings=with_settings("smoke")) == []


def test_batches_hold_no_text_twice():
    """Batch pairs so that no text repeats within a batch (it would be its own false negative)."""
    pairs = [(f"t{i}", f"t{(i + 1) % 30}") for i in range(30)] + [("t0", "t5"), ("t0", "t7")]
    batches = pair_batches(pairs, 8, random.Random(0))
    for batch in batches:
        texts = [t for pair in batch for t in pair]
        assert len(texts) == len(set(texts)) and 2 <= len(batch) <= 8
    # And every pair is used once, except a last lone pair (no in-batch negative to learn from)
    used = sorted(p for b in batches for p in b)
    assert len(used) == len(set(used)) and set(used) <= set(pairs) and len(used) >= len(pairs) - 1


def test_search_ndcg_known_answer():
    """Rank products by cosine to the query: hits at ranks 1 and 3 of 2 relevant = (1 + 1/2) / (1 + 1/log2 3)."""
    query = np.array([[1.0, 0.0]])
    products = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, 0.8], [0.0, 1.0]])
    mean, per_query = search_set.search_ndcg(query, products, ["a", "b", "c", "d"], [["a", "c"]])
    assert mean == pytest.approx((1 + 0.5) / (1 + 1 / math.log2(3)))
    assert per_query == [pytest.approx(mean)]


def test_labelled_search_set_has_fifty_queries_with_relevant_products():
    """Keep at least 50 natural-language queries, each with relevant products and its rule."""
    data = search_set.load()
    assert len(data["queries"]) >= 50
    assert all(q["relevant"] and q["pattern"] for q in data["queries"])
    assert len({q["query"] for q in data["queries"]}) == len(data["queries"])


@pytest.mark.skipif(not DATASET.exists(), reason="the Online Retail data set is not available")
def test_labelled_search_set_is_what_its_rules_give_on_the_catalogue():
    """Rebuild the labels from the real catalogue's descriptions: the stored JSON is exactly that."""
    from recommendations.evaluation.data import descriptions_from_csv

    assert search_set.build(descriptions_from_csv(DATASET)) == search_set.load()


# --------------------------------------------------------------------------------------------- smoke run


@pytest.fixture
def encoder_dirs(settings, tmp_path):
    from recommendations.ml import encoder

    settings.ELM_ENCODER_DIR = tmp_path / "encoder"
    yield settings.ELM_ENCODER_DIR
    encoder.encoder_version.cache_clear()
    encoder.get_encoder.cache_clear()


@pytest.mark.django_db
def test_smoke_tuning_saves_a_versioned_encoder_and_stages_vectors_until_the_switch(encoder_dirs, settings):
    """Tune two steps, save under a version, stage the catalogue's vectors; the switch writes them."""
    from recommendations.ml import encoder
    from recommendations.models import Product, Purchase
    from recommendations.services import embeddings
    from recommendations.services.encoder_tuning import encoder_activate, encoder_tune, tuned_encoders
    from tests.shop import build_shop

    # Given the shop embedded with the bundled encoder, and baskets of three products bought together
    products, customers = build_shop(customers=8, per_customer=2)
    when = timezone.now() - timedelta(days=20)
    for i, c in enumerate(customers):
        for p in products[i % 4 * 3 : i % 4 * 3 + 3]:
            Purchase.objects.create(
                line_key=f"b:{c.pk}:{p.pk}", customer=c, product=p, invoice=f"B{i}", quantity=1,
                unit_price=Decimal(1), occurred_at=when, kind=Purchase.Kind.SALE,
            )  # fmt: skip
    embeddings.products_embed(product_ids=list(Product.objects.values_list("id", flat=True)))
    before = dict(Product.objects.exclude(description="POSTAGE").values_list("stock_code", "embedding_version"))
    # When the smoke preset tunes (pairs from everything so far)
    report = encoder_tune(preset="smoke", cutoff="2100-01-01", evaluate=False)
    # Then a versioned model and the staged vectors exist; the database still has the old vectors
    directory = encoder_dirs / report["version"]
    assert report["version"].startswith("minilm-copurchase-") and report["training"]["steps"] >= 1
    assert (directory / "model.safetensors").exists() and json.loads((directory / "metrics.json").read_text())
    staged = np.load(directory / "product_vectors.npz")
    assert staged["vectors"].shape == (len(staged["codes"]), 384)
    assert np.allclose(np.linalg.norm(staged["vectors"], axis=1), 1.0, atol=1e-4)
    assert dict(Product.objects.exclude(description="POSTAGE").values_list("stock_code", "embedding_version")) == before
    assert [e["version"] for e in tuned_encoders()] == [report["version"]]
    # And re-running with the same data and settings reuses it
    assert encoder_tune(preset="smoke", cutoff="2100-01-01", evaluate=False)["version"] == report["version"]
    # And the switch is refused while the processes still use the bundled encoder
    with pytest.raises(RuntimeError, match="ELM_ENCODER=tuned"):
        encoder_activate(version=report["version"])
    # When every process uses the tuned encoder, the switch writes the staged vectors
    settings.ELM_ENCODER = "tuned"
    assert encoder_activate(version=report["version"]) == len(staged["codes"])
    assert encoder.encoder_version().startswith(report["version"] + "@")
    versions = set(
        Product.objects.filter(stock_code__in=staged["codes"].tolist()).values_list("embedding_version", flat=True)
    )
    assert versions == {encoder.encoder_version()}
    # And nothing is left to re-embed: the stored hashes match the tuned encoder
    assert embeddings.products_needing_embedding(model_version=encoder.encoder_version()) == []
