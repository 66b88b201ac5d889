"""Recommendation batches: exclusions, non-merchandise, atomic activation, HNSW index use."""

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection, transaction
from django.utils import timezone

from recommendations.models import Customer, Product, Purchase, Recommendation, RecommendationBatch
from recommendations.services import recommend
from recommendations.vectors import write_vectors

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def set_vectors(model, vectors: dict[int, np.ndarray]) -> None:
    write_vectors(model._meta.db_table, [(pk, v, "test", "h") for pk, v in vectors.items()], now=NOW)


def catalogue(n: int, rng, *, merch_every: int = 0) -> list[Product]:
    products = Product.objects.bulk_create(
        [
            Product(
                stock_code=f"{10000 + i}",
                description=f"ITEM {i}",
                is_merchandise=not (merch_every and i % merch_every == 0),
            )
            for i in range(n)
        ]
    )
    set_vectors(Product, {p.pk: unit(rng.normal(size=384)) for p in products})
    return products


def test_top_n_excludes_recent_purchases_and_non_merchandise():
    """Recommend the nearest merchandise the customer has not bought in the exclusion window."""
    # Given products along one direction with decreasing similarity to the customer
    rng = np.random.default_rng(0)
    axis = unit(rng.normal(size=384))
    products = Product.objects.bulk_create(
        [Product(stock_code=f"2{i:04d}", description=f"P{i}", is_merchandise=(i != 1)) for i in range(30)]
    )
    set_vectors(Product, {p.pk: unit(axis + 0.05 * i * unit(rng.normal(size=384))) for i, p in enumerate(products)})
    c = Customer.objects.create(pseudonym="x", region="France")
    set_vectors(Customer, {c.pk: axis})
    # And the customer bought the nearest product recently and the 3rd nearest long ago
    for product, days in [(products[0], 10), (products[2], 400)]:
        Purchase.objects.create(
            line_key=f"k{product.pk}", customer=c, product=product, invoice="1", quantity=1,
            unit_price=Decimal(1), occurred_at=NOW - timedelta(days=days), kind=Purchase.Kind.SALE,
        )  # fmt: skip
    batch = recommend.recommendation_batch_start(model_version="test")
    # When recommendations are computed
    recommend.recommendations_compute(batch_id=batch.pk, customer_ids=[c.pk])
    # Then the recent purchase and the non-merchandise item are skipped, the old purchase is allowed
    recs = list(Recommendation.objects.filter(batch=batch).order_by("rank"))
    assert len(recs) == 10
    assert [r.product_id for r in recs[:2]] == [products[2].pk, products[3].pk]
    assert products[0].pk not in {r.product_id for r in recs}
    assert products[1].pk not in {r.product_id for r in recs}
    scores = [r.score for r in recs]
    assert scores == sorted(scores, reverse=True)
    # And the product bought long ago is marked a re-order (once, on its day), the others new
    assert (recs[0].times_bought, recs[0].last_bought) == (1, timezone.localdate(NOW - timedelta(days=400)))
    assert all(r.times_bought == 0 and r.last_bought is None for r in recs[1:])


def test_recompute_of_a_shard_replaces_its_rows():
    """Re-running a shard (a redelivered task) leaves exactly one set of rows."""
    rng = np.random.default_rng(1)
    catalogue(40, rng)
    c = Customer.objects.create(pseudonym="y", region="Spain")
    set_vectors(Customer, {c.pk: unit(rng.normal(size=384))})
    batch = recommend.recommendation_batch_start(model_version="test")
    recommend.recommendations_compute(batch_id=batch.pk, customer_ids=[c.pk])
    recommend.recommendations_compute(batch_id=batch.pk, customer_ids=[c.pk])
    assert Recommendation.objects.filter(batch=batch, customer=c).count() == 10


def test_activation_supersedes_the_previous_batch_atomically():
    """Keep exactly one active batch: activating a new one supersedes the old in one transaction."""
    old = recommend.recommendation_batch_start(model_version="v1")
    recommend.recommendation_batch_activate(batch_id=old.pk)
    new = recommend.recommendation_batch_start(model_version="v2")
    recommend.recommendation_batch_activate(batch_id=new.pk)
    assert RecommendationBatch.objects.get(pk=old.pk).status == RecommendationBatch.Status.SUPERSEDED
    assert list(RecommendationBatch.objects.filter(status="active").values_list("pk", flat=True)) == [new.pk]
    # And the database itself refuses a second active batch
    from django.db import IntegrityError

    with pytest.raises(IntegrityError), transaction.atomic():
        RecommendationBatch.objects.filter(pk=old.pk).update(status="active")


@pytest.mark.parametrize(("ef_search", "scans"), [(40, {"index"}), (None, {"index", "exact"})])
def test_search_uses_the_hnsw_index_where_it_pays(settings, ef_search, scans):
    """Plan the production search query as an HNSW index scan once the index is the cheaper plan."""
    # Given a catalogue of realistic size (the real one has ~3,900 merchandise products). The planner
    # prices an HNSW scan by ef_search: at a small ef_search the index is cheaper than sorting 4,000
    # vectors; at the default (400, for recall 1.0) an exact scan may cost the same, and is exact.
    if ef_search is not None:
        settings.ELM_HNSW_EF_SEARCH = ef_search
    rng = np.random.default_rng(2)
    catalogue(4000, rng)
    with connection.cursor() as cur:
        cur.execute("ANALYZE recommendations_product")
        recommend.configure_search(cur)
        # When the planner explains the query the batch job runs
        vector = recommend.vector_literal(unit(rng.normal(size=384)))
        cur.execute("EXPLAIN " + recommend.SEARCH_SQL, {"vector": vector, "excluded": [1, 2], "top_n": 10})
        plan = "\n".join(row[0] for row in cur.fetchall())
    # Then it walks the HNSW index, or (where allowed) scans exactly
    scan = "index" if "product_embedding_hnsw" in plan else "exact" if "Seq Scan" in plan else "other"
    assert scan in scans, plan
