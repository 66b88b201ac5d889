"""Embedding services with the real encoder: dimension, normalization, incremental behaviour."""

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from recommendations import profile
from recommendations.models import Customer, Product, Purchase
from recommendations.services import embeddings

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def make_product(code: str, description: str, merch: bool = True) -> Product:
    return Product.objects.create(stock_code=code, description=description, is_merchandise=merch)


def buy(customer, product, qty: int, days_ago: float, kind=Purchase.Kind.SALE, invoice="536365") -> Purchase:
    return Purchase.objects.create(
        line_key=f"{customer.pk}-{product.pk}-{qty}-{days_ago}-{kind}",
        customer=customer,
        product=product,
        invoice=invoice,
        quantity=qty,
        unit_price=Decimal("1.25"),
        occurred_at=NOW - timedelta(days=days_ago),
        kind=kind,
    )


def test_products_embed_writes_unit_vectors_of_384_dims():
    """Embed products into L2-normalized 384-d vectors tagged with the model version."""
    # Given two products with descriptions and one without
    a = make_product("85123A", "WHITE HANGING HEART T-LIGHT HOLDER")
    b = make_product("71053", "WHITE METAL LANTERN")
    blank = make_product("99999", "")
    # When they are embedded
    done = embeddings.products_embed(product_ids=[a.pk, b.pk, blank.pk])
    # Then the described ones have unit vectors and the blank one none
    assert done == 2
    for p in Product.objects.filter(pk__in=[a.pk, b.pk]):
        vec = np.asarray(p.embedding)
        assert vec.shape == (384,)
        assert abs(np.linalg.norm(vec) - 1) < 1e-5
        assert p.embedding_version.startswith("all-MiniLM-L6-v2@")
    assert Product.objects.get(pk=blank.pk).embedding is None


def test_products_embed_is_incremental():
    """Re-encode only products whose description changed."""
    # Given embedded products
    a = make_product("22423", "REGENCY CAKESTAND 3 TIER")
    b = make_product("47566", "PARTY BUNTING")
    embeddings.products_embed(product_ids=[a.pk, b.pk])
    before_b = np.asarray(Product.objects.get(pk=b.pk).embedding)
    # When nothing changed, then nothing is encoded and nothing is planned
    assert embeddings.products_embed(product_ids=[a.pk, b.pk]) == 0
    version = Product.objects.get(pk=a.pk).embedding_version
    assert embeddings.products_needing_embedding(model_version=version) == []
    # When one description changes, then only that product is planned and re-encoded
    Product.objects.filter(pk=a.pk).update(description="JUMBO BAG RED RETROSPOT")
    assert embeddings.products_needing_embedding(model_version=version) == [a.pk]
    assert embeddings.products_embed(product_ids=[a.pk, b.pk]) == 1
    assert np.allclose(np.asarray(Product.objects.get(pk=b.pk).embedding), before_b)


def test_customer_vector_is_weighted_mean_of_purchases_net_of_returns():
    """Build the customer vector from quantity- and recency-weighted product vectors, net of returns."""
    # Given a customer who bought three products and returned all of one of them
    c = Customer.objects.create(pseudonym="c1", region="United Kingdom")
    p1 = make_product("20725", "LUNCH BAG RED RETROSPOT")
    p2 = make_product("21212", "PACK OF 72 RETROSPOT CAKE CASES")
    p3 = make_product("84879", "ASSORTED COLOUR BIRD ORNAMENT")
    embeddings.products_embed(product_ids=[p1.pk, p2.pk, p3.pk])
    buy(c, p1, 10, days_ago=0)
    buy(c, p2, 3, days_ago=180)
    buy(c, p3, 5, days_ago=10)
    buy(c, p3, -5, days_ago=5, kind=Purchase.Kind.RETURN, invoice="C536379")
    # When the customer is embedded
    assert embeddings.customers_embed(customer_ids=[c.pk]) == 1
    # Then its vector is the normalized log1p-quantity, half-life-weighted mean of p1 and p2 only
    vecs = {p.pk: np.asarray(p.embedding, dtype=np.float64) for p in Product.objects.all()}
    half_life = 180.0
    expected = np.log1p(10) * vecs[p1.pk] + np.log1p(3) * 0.5 ** (180 / half_life) * vecs[p2.pk]
    expected /= np.linalg.norm(expected)
    got = np.asarray(Customer.objects.get(pk=c.pk).embedding)
    assert np.allclose(got, expected, atol=1e-5)
    weights = profile.purchase_weights([c.pk], reference=profile.reference_time())[c.pk]
    assert {w.product_id for w in weights} == {p1.pk, p2.pk}
    # And a second run does no work
    assert embeddings.customers_embed(customer_ids=[c.pk]) == 0
    assert embeddings.customers_needing_embedding() == []


def test_customer_reembedded_when_a_purchase_arrives():
    """Recompute a customer vector when its purchases change, and only that customer."""
    # Given two embedded customers
    p1 = make_product("22720", "SET OF 3 CAKE TINS PANTRY DESIGN")
    p2 = make_product("23084", "RABBIT NIGHT LIGHT")
    embeddings.products_embed(product_ids=[p1.pk, p2.pk])
    c1 = Customer.objects.create(pseudonym="a", region="France")
    c2 = Customer.objects.create(pseudonym="b", region="France")
    buy(c1, p1, 2, days_ago=3)
    buy(c2, p1, 2, days_ago=3)
    embeddings.customers_embed(customer_ids=[c1.pk, c2.pk])
    # When c1 buys something new (not later than the latest purchase, which would age everybody)
    buy(c1, p2, 4, days_ago=5, invoice="536999")
    # Then only c1 needs a new vector
    assert embeddings.customers_needing_embedding() == [c1.pk]
