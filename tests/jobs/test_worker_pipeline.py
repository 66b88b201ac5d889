"""Jobs run in a real Celery worker process through the embedded Valkey broker."""

import numpy as np
import pytest
from django.utils import timezone

from jobs.models import Job, JobShard
from jobs.services import job_create
from recommendations.models import Customer, Product, Recommendation, RecommendationBatch
from tests.conftest import wait_for_job
from tests.shop import build_shop

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def test_embedding_and_recommendation_pipeline_runs_in_a_real_worker(celery_worker_process):
    """Embed products (gpu queue), then customers, then recommend, all in a separate worker process."""
    # Given products, customers and purchases in the database (the worker uses shards of 8)
    now = timezone.now()
    _, customers = build_shop(now=now)
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
