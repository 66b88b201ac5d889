"""Jobs run in a real Celery worker process through the embedded Valkey broker."""

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from jobs.models import Job, JobShard
from jobs.services import job_create
from recommendations.models import Customer, Product, Purchase, Recommendation, RecommendationBatch
from tests.conftest import wait_for_job

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

DESCRIPTIONS = [
    "WHITE HANGING HEART T-LIGHT HOLDER", "WHITE METAL LANTERN", "CREAM CUPID HEARTS COAT HANGER",
    "KNITTED UNION FLAG HOT WATER BOTTLE", "RED WOOLLY HOTTIE WHITE HEART.", "SET 7 BABUSHKA NESTING BOXES",
    "GLASS STAR FROSTED T-LIGHT HOLDER", "HAND WARMER UNION JACK", "HAND WARMER RED POLKA DOT",
    "ASSORTED COLOUR BIRD ORNAMENT", "POPPY'S PLAYHOUSE BEDROOM", "POPPY'S PLAYHOUSE KITCHEN",
    "FELTCRAFT PRINCESS CHARLOTTE DOLL", "IVORY KNITTED MUG COSY", "BOX OF 6 ASSORTED COLOUR TEASPOONS",
    "BOX OF VINTAGE JIGSAW BLOCKS", "BOX OF VINTAGE ALPHABET BLOCKS", "HOME BUILDING BLOCK WORD",
    "LOVE BUILDING BLOCK WORD", "RECIPE BOX WITH METAL HEART", "DOORMAT NEW ENGLAND",
    "JAM MAKING SET WITH JARS", "RED COAT RACK PARIS FASHION", "YELLOW COAT RACK PARIS FASHION",
]  # fmt: skip


def given_a_small_shop(now):
    products = [
        Product.objects.create(stock_code=f"{21000 + i}", description=d, is_merchandise=True)
        for i, d in enumerate(DESCRIPTIONS)
    ]
    Product.objects.create(stock_code="POST", description="POSTAGE", is_merchandise=False)
    customers = [Customer.objects.create(pseudonym=f"cust{i:02d}", region="United Kingdom") for i in range(6)]
    for i, c in enumerate(customers):
        for j in range(4):
            p = products[(i * 3 + j) % len(products)]
            Purchase.objects.create(
                line_key=f"{c.pk}:{p.pk}", customer=c, product=p, invoice=f"5{i}{j}", quantity=j + 1,
                unit_price=Decimal("2.10"), occurred_at=now - timedelta(days=30 * j + i), kind=Purchase.Kind.SALE,
            )  # fmt: skip
    return products, customers


def test_embedding_and_recommendation_pipeline_runs_in_a_real_worker(celery_worker_process):
    """Embed products (gpu queue), then customers, then recommend, all in a separate worker process."""
    # Given products, customers and purchases in the database (the worker uses shards of 8)
    now = timezone.now()
    _, customers = given_a_small_shop(now)
    # When the embedding pipeline is queued (as `manage.py embed --then-recommend` does)
    job = job_create(kind="embed_products", then=["embed_customers", "recommend"])
    chain = wait_for_job(job, timeout=240)
    # Then every job succeeded in order, each shard counted once
    assert [j.kind for j in chain] == ["embed_products", "embed_customers", "recommend"]
    assert all(j.status == Job.Status.SUCCEEDED for j in chain)
    assert chain[0].items_done == Product.objects.exclude(description="").count()
    assert chain[0].shards_total == 4
    assert not JobShard.objects.exclude(status=JobShard.Status.DONE).exists()
    # And every product and customer has a unit vector computed by the worker
    for obj in [*Product.objects.all(), *Customer.objects.all()]:
        assert obj.embedding is not None
        assert abs(np.linalg.norm(np.asarray(obj.embedding)) - 1) < 1e-4
    # And the new batch is active, with N merchandise items per customer, never POST
    batch = RecommendationBatch.objects.get(status=RecommendationBatch.Status.ACTIVE)
    assert batch.pk == chain[2].result["batch_id"]
    recs = Recommendation.objects.filter(batch=batch)
    assert recs.count() == len(customers) * 10
    assert not recs.filter(product__is_merchandise=False).exists()
    # And a second run finds nothing to embed (incremental): no model work at all
    again = wait_for_job(job_create(kind="embed_products", then=["embed_customers"]), timeout=120)
    assert [j.items_total for j in again] == [0, 0]
