"""A run stopped mid-batch: at the next start its job is marked interrupted, then resumed in a new worker.

The demo's rule: the run's only worker is gone (SIGKILL, as when the machine stops), so the next start
marks every queued or running job interrupted before it starts workers of its own. The stopped run's
messages (the queued shards, and the killed shard's after the visibility timeout, 8 s here) still come
back from the broker: they run nothing. Resume queues the unfinished shards only, and the shards done
before the stop are not run again.
"""

from __future__ import annotations

import io
import time

import pytest
from django.core.management import call_command
from django.utils import timezone

from jobs.models import Job, JobShard
from jobs.services import job_create, job_resume
from recommendations.models import Product
from tests.conftest import wait_for_job
from tests.faults.conftest import broker, record, valkey_url, wait_until
from tests.faults.test_worker_kill import SLOW_MODEL, duplicates, kill_inside_a_shard
from tests.shop import build_shop

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.timeout(600)]


def broker_drained() -> bool:
    """No message left in the gpu queue, none delivered and unacknowledged."""
    from elmsite.celery import app

    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        return client.llen("gpu") == 0 and client.hlen("unacked") == 0


def test_a_stopped_runs_job_is_interrupted_at_the_next_start_and_a_resume_finishes_it(spawn_worker):
    # Given a shop and an embedding job in shards of 2 products, run by one worker with a slowed model
    build_shop(customers=4, now=timezone.now())
    started = time.monotonic()
    with broker(valkey_url()) as url:
        first = spawn_worker(name="first", broker_url=url, faults=SLOW_MODEL, ELM_SHARD_SIZE=2)
        job = job_create(kind="embed_products")
        # When the run stops inside a shard (its only worker killed)
        kill = kill_inside_a_shard(job, first)
        # And the next start marks what the stopped run left before starting a worker of its own
        out = io.StringIO()
        call_command("jobs_recover", "--all", stdout=out)
        job.refresh_from_db()
        # Then the job is interrupted: the shards done before the stop stay done, the others are interrupted
        assert job.status == Job.Status.INTERRUPTED and f"job #{job.pk}" in out.getvalue()
        shards = {s.index: s for s in JobShard.objects.filter(job=job)}
        done = sorted(i for i, s in shards.items() if s.status == JobShard.Status.DONE)
        assert done and all(s.status == JobShard.Status.INTERRUPTED for i, s in shards.items() if i not in done)
        done_ids = [pid for i in done for pid in shards[i].payload["ids"]]
        embedded_before = dict(Product.objects.filter(pk__in=done_ids).values_list("pk", "embedded_at"))
        marked_at = time.monotonic() - started
        # And when a new worker starts, the stopped run's messages (the killed shard's included) run nothing
        spawn_worker(name="second", broker_url=url, ELM_SHARD_SIZE=2)
        wait_until(broker_drained, timeout=120, poll=0.5, what="the stopped run's messages consumed")
        drained_at = time.monotonic() - started
        job.refresh_from_db()
        assert (job.status, job.shards_done) == (Job.Status.INTERRUPTED, len(done))
        assert not Product.objects.exclude(pk__in=done_ids).filter(embedding__isnull=False).exists()
        # And when the job is resumed, the new worker finishes it
        job_resume(job_id=job.pk)
        wait_for_job(job, timeout=240)
        finished_at = time.monotonic() - started

    job.refresh_from_db()
    lost = JobShard.objects.filter(job=job).exclude(status=JobShard.Status.DONE).count()
    assert job.status == Job.Status.SUCCEEDED and lost == 0
    assert (job.shards_done, job.items_done) == (job.shards_total, job.items_total)
    assert not Product.objects.exclude(description="").filter(embedding__isnull=True).exists()
    # And the shards done before the stop were not run again
    assert dict(Product.objects.filter(pk__in=done_ids).values_list("pk", "embedded_at")) == embedded_before
    dupes = duplicates()
    assert not any(dupes.values()), dupes
    record(
        "interrupted_run",
        kill=kill,
        shards=job.shards_total,
        shards_done_before_stop=len(done),
        redone=0,
        tasks_lost=lost,
        duplicates=sum(dupes.values()),
        seconds={
            "marked": round(marked_at, 1),
            "old messages consumed": round(drained_at, 1),
            "done": round(finished_at, 1),
        },
    )
