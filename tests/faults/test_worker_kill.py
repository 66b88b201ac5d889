"""SIGKILL a Celery worker in the middle of the embedding and of the explanation batch.

acks_late keeps the message of the shard in flight unacknowledged; after the visibility timeout
(8 s here) the broker hands it to the next worker, which re-runs the shard idempotently. Both the
embedded Valkey (unix socket) and a Redis server over TCP are tested.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from django.db.models import Count
from django.utils import timezone

from explanations.models import Explanation
from jobs.models import Job, JobShard
from jobs.services import job_create
from recommendations.models import Customer, Product, Recommendation, RecommendationBatch
from tests.conftest import wait_for_job
from tests.faults.conftest import REDIS_URL, Worker, broker, record, redis_available, valkey_url, wait_until
from tests.shop import build_shop

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(600)]

# Small shards (so a batch has many), few recommendations and SIG steps (so the test stays short).
RECOMMENDATIONS = 4
WORKER_ENV = {
    "ELM_SHARD_SIZE": 2,
    "ELM_EXPLAIN_SHARD_SIZE": 2,
    "ELM_SIG_STEPS": 4,
    "ELM_RECOMMENDATIONS_PER_CUSTOMER": RECOMMENDATIONS,
}
SLOW_MODEL = {"encode_delay": 0.5}  # every shard spends >= 0.6 s in the model, so a kill lands inside one


def kill_inside_a_shard(job: Job, worker: Worker) -> dict:
    """Kill the worker right after one of ``job``'s shards finished, i.e. while the next one runs."""

    def progressed():
        shards = JobShard.objects.filter(job=job)
        done = shards.filter(status=JobShard.Status.DONE).count()
        pending = shards.filter(status=JobShard.Status.PENDING).count()
        return done >= 1 and pending >= 2 and (done, pending)

    done, pending = wait_until(progressed, timeout=240, poll=0.05, what=f"{job.kind} half done")
    time.sleep(0.3)  # the next shard is now inside its (slowed) model call
    worker.kill()
    return {"kind": job.kind, "shards_done_at_kill": done, "shards_pending_at_kill": pending}


def duplicates() -> dict[str, int]:
    """Count rows that repeat a natural key (each must be 0)."""

    def repeated(qs, *fields) -> int:
        return sum(r["n"] - 1 for r in qs.values(*fields).annotate(n=Count("id")).filter(n__gt=1))

    return {
        "recommendation (batch, customer, rank)": repeated(Recommendation.objects, "batch", "customer", "rank"),
        "recommendation (batch, customer, product)": repeated(Recommendation.objects, "batch", "customer", "product"),
        "explanation per recommendation": repeated(Explanation.objects, "recommendation"),
        "job shard (job, index)": repeated(JobShard.objects, "job", "index"),
        "child job per parent": repeated(Job.objects.exclude(parent=None), "parent"),
        "active batch": max(RecommendationBatch.objects.filter(status="active").count() - 1, 0),
    }


def half_written_explanations() -> int:
    """Count explanations missing a part that the batch writes together with the reason."""
    bad = 0
    for e in Explanation.objects.all():
        complete = (
            e.status != Explanation.Status.FAILED
            and e.evidence
            and e.reason_text
            and e.template_text
            and "product" in e.word_attributions
            and e.consistency is not None
            and e.versions.get("encoder")
        )
        bad += not complete
    return bad


@pytest.mark.parametrize("broker_name", ["valkey", "redis"])
def test_a_worker_killed_mid_batch_loses_no_task_and_duplicates_nothing(broker_name, spawn_worker):
    """Kill -9 the worker inside an embedding shard and inside an explanation shard; a new worker completes all."""
    if broker_name == "redis" and not redis_available():
        pytest.skip(f"no Redis server answers at {REDIS_URL}")
    url = valkey_url() if broker_name == "valkey" else REDIS_URL
    # Given a shop and the whole pipeline queued, with small shards and a slowed model
    build_shop(customers=4, now=timezone.now())
    started = time.monotonic()
    with broker(url):
        first = spawn_worker(name="first", broker_url=url, faults=SLOW_MODEL, **WORKER_ENV)
        pipeline = ["embed_customers", "recommend", "explain"]
        job = job_create(kind="embed_products", then=pipeline, params={"use_lm": False})

        # When the worker is killed inside an embedding shard, and a second one inside an explanation shard
        kills = [kill_inside_a_shard(job, first)]
        phases = {"first kill": time.monotonic() - started}
        second = spawn_worker(name="second", broker_url=url, faults=SLOW_MODEL, **WORKER_ENV)
        phases["second worker ready"] = time.monotonic() - started
        explain = wait_until(lambda: Job.objects.filter(kind="explain").first(), timeout=240, what="explain job")
        phases["explain job created"] = time.monotonic() - started
        kills.append(kill_inside_a_shard(explain, second))
        phases["second kill"] = time.monotonic() - started
        spawn_worker(name="third", broker_url=url, **WORKER_ENV)
        phases["third worker ready"] = time.monotonic() - started
        chain = wait_for_job(job, timeout=300)
        phases["done"] = time.monotonic() - started

    # Then every job succeeded and every shard is done: no task was lost
    lost = JobShard.objects.exclude(status=JobShard.Status.DONE).count() + sum(
        j.status != Job.Status.SUCCEEDED for j in chain
    )
    assert [j.kind for j in chain] == ["embed_products", "embed_customers", "recommend", "explain"]
    assert lost == 0
    for j in chain:
        assert j.items_done == j.items_total and j.shards_done == j.shards_total, j
    # And every product and customer has its vector, every recommendation one complete explanation
    for obj in [*Product.objects.exclude(description=""), *Customer.objects.all()]:
        assert abs(np.linalg.norm(np.asarray(obj.embedding)) - 1) < 1e-4
    recommendations = Recommendation.objects.filter(batch__status="active").count()
    assert recommendations == Customer.objects.count() * RECOMMENDATIONS
    assert Explanation.objects.count() == recommendations
    assert half_written_explanations() == 0
    # And nothing was written twice
    dupes = duplicates()
    assert not any(dupes.values()), dupes
    record(
        f"worker_kill[{broker_name}]",
        kills=kills,
        shards=sum(j.shards_total for j in chain),
        tasks_lost=lost,
        duplicates=sum(dupes.values()),
        half_written=0,
        explanations=recommendations,
        seconds={k: round(v, 1) for k, v in phases.items()},
    )
