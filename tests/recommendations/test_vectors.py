"""Pipelined vector writes (VectorWriter) and the order of the product embedding plan."""

import numpy as np
import psycopg
import pytest
from django.db import transaction
from django.utils import timezone

from recommendations.models import Product
from recommendations.services import embeddings
from recommendations.vectors import VectorWriter, fetch_vectors

pytestmark = pytest.mark.django_db


def unit(seed: int) -> np.ndarray:
    vec = np.random.default_rng(seed).standard_normal(384).astype(np.float32)
    return vec / np.linalg.norm(vec)


def test_vector_writer_writes_every_batch_and_leaves_other_rows_alone():
    """Write several batches without waiting; all of them are stored when the writer closes."""
    # Given three products without vectors
    a, b, c = (Product.objects.create(stock_code=code, description=code) for code in ("A1", "B2", "C3"))
    now = timezone.now()
    # When two of them are written in two separate batches
    with transaction.atomic(), VectorWriter(Product._meta.db_table, now=now) as writer:
        writer.write([(a.pk, unit(1), "v1", "h-a")])
        writer.write([(b.pk, unit(2), "v1", "h-b")])
        writer.write([])
    # Then both batches are stored with version, hash and time, and the third product is untouched
    assert writer.rows == 2
    stored = fetch_vectors(Product._meta.db_table)
    assert set(stored) == {a.pk, b.pk}
    assert np.allclose(stored[a.pk], unit(1)) and np.allclose(stored[b.pk], unit(2))
    a.refresh_from_db()
    assert (a.embedding_version, a.embedding_input_hash, a.embedded_at) == ("v1", "h-a", now)
    c.refresh_from_db()
    assert c.embedding is None and c.embedding_input_hash == ""


def test_vector_writer_raises_at_exit_and_the_transaction_rolls_back():
    """A failing batch surfaces as an error when the writer closes, and nothing of the transaction stays."""
    # Given two products
    a, b = (Product.objects.create(stock_code=code, description=code) for code in ("A1", "B2"))
    # When one good batch and one with a vector of the wrong dimension are written
    with (
        pytest.raises(psycopg.Error),
        transaction.atomic(),
        VectorWriter(Product._meta.db_table, now=timezone.now()) as writer,
    ):
        writer.write([(a.pk, unit(1), "v1", "h-a")])
        writer.write([(b.pk, np.ones(3, dtype=np.float32), "v1", "h-b")])
    # Then neither is stored
    assert fetch_vectors(Product._meta.db_table) == {}


def test_vector_writer_refuses_other_tables():
    with pytest.raises(ValueError, match="not a vector table"):
        VectorWriter("auth_user", now=timezone.now())


def test_products_needing_embedding_plans_shortest_texts_first():
    """Order the plan by text length, so a shard's encoder batches hold texts of similar length."""
    # Given products with long, short and middle-length descriptions (created in that order)
    long_ = Product.objects.create(stock_code="L1", description="SET OF 3 REGENCY CAKE TINS WITH LIDS")
    short = Product.objects.create(stock_code="S1", description="RED MUG")
    middle = Product.objects.create(stock_code="M1", description="WHITE METAL LANTERN")
    # When the plan is made
    plan = embeddings.products_needing_embedding(model_version="test@1")
    # Then the shortest text comes first
    assert plan == [short.pk, middle.pk, long_.pk]
