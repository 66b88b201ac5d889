"""The encoder or the language model fails to load or raises in the middle of the explanation batch.

A shard whose model call raises is retried with backoff (ELM_JOB_RETRY_BACKOFF x 4^n); after its
last retry its explanations are marked failed with the error, the other shards go on, and the job
ends failed naming the shard; ``job_retry`` re-runs only that shard. A language model that cannot
be used fails its shard's attempts the same way, but the last attempt keeps the reason built from
the evidence (the template), flagged ``template_fallback`` with the error, so no explanation is lost.
"""

from __future__ import annotations

import logging

import pytest
from django.utils import timezone

from explanations.models import Explanation
from jobs import services, tasks
from jobs.models import Job, JobShard
from jobs.services import job_create, job_plan, job_retry
from recommendations.ml import encoder
from recommendations.models import Product, Recommendation
from tests.conftest import wait_for_job
from tests.faults.conftest import broker, record, valkey_url, wait_until
from tests.shop import build_shop, embed_and_recommend


@pytest.fixture
def explained_shop(settings):
    """A shop with an active batch of 4 recommendations per customer, explained in shards of 4."""
    settings.ELM_RECOMMENDATIONS_PER_CUSTOMER = 4
    settings.ELM_EXPLAIN_SHARD_SIZE = 4
    settings.ELM_SIG_STEPS = 4
    build_shop(customers=4, now=timezone.now())
    embed_and_recommend()
    return Recommendation.objects.count()


@pytest.fixture
def queued(monkeypatch) -> list[int]:
    """Record the shards the job services queue instead of sending them (the tests run shards by direct calls)."""
    indexes: list[int] = []
    monkeypatch.setattr(services, "_enqueue_shard", lambda job_id, index, kind: indexes.append(index))
    return indexes


def planned_explain_job(*, use_lm: bool = False) -> Job:
    """Create and plan an explain job (its shards are recorded by ``queued``, not sent)."""
    job = Job.objects.create(kind="explain", params={"use_lm": use_lm})
    return job_plan(job_id=job.pk)


def run_all_shards(job: Job) -> None:
    for index in job.shards.order_by("index").values_list("index", flat=True):
        tasks.run_shard.apply(args=[job.pk, index])


def _template(rec: Recommendation) -> str:
    from explanations.services.explain import explanation_facts, template_reason

    return template_reason(explanation_facts(recommendation=rec)).lower()


def failing_word() -> str:
    """A word of a product name that the fewest recommendations' template reasons contain (at least one).

    The reasons name the customer's strongest evidence, so which product names appear depends on the shop;
    the rarest one makes some shards' encode calls fail and leaves the others sound.
    """
    from collections import Counter

    names = {
        w for d in Recommendation.objects.values_list("product__description", flat=True) for w in d.lower().split()
    }
    names = {w for d in Product.objects.values_list("description", flat=True) for w in d.lower().split()}
    counts = Counter(
        word
        for rec in Recommendation.objects.select_related("customer", "product")
        for word in set(_template(rec).replace(".", " ").replace(",", " ").split())
        if word in names and len(word) >= 5 and word.isalpha()
    )
    return min(counts, key=lambda w: (counts[w], w))


def shards_with(word: str, job: Job) -> set[int]:
    """Indexes of the shards whose template reasons mention ``word`` (their encode call will fail)."""
    out = set()
    for shard in job.shards.all():
        for rec in Recommendation.objects.filter(pk__in=shard.payload["ids"]).select_related("customer", "product"):
            if word in _template(rec):
                out.add(shard.index)
                break
    return out


def failing_encode(word: str, *, times: int | None):
    """Return an ``encode`` that raises for texts with ``word`` (the first ``times`` times; None: always)."""
    original = encoder.encode
    calls = {"failed": 0}

    def encode(texts, **kwargs):
        if any(word in t.lower() for t in texts) and (times is None or calls["failed"] < times):
            calls["failed"] += 1
            raise RuntimeError("injected encoder failure mid-batch")
        return original(texts, **kwargs)

    return encode, calls


@pytest.mark.django_db(transaction=True)  # run_shard closes a connection left in a transaction
@pytest.mark.slow
def test_a_transient_encoder_failure_is_retried_with_backoff_and_the_shard_succeeds(
    explained_shop, monkeypatch, caplog, queued
):
    """Retry a shard whose encoder call raised twice; the third attempt writes its explanations."""
    # Given an explain job and an encoder that fails twice on one product's reasons
    job = planned_explain_job()
    word = failing_word()
    encode, calls = failing_encode(word, times=2)
    monkeypatch.setattr(encoder, "encode", encode)

    # When every shard runs
    with caplog.at_level(logging.WARNING, logger="jobs.tasks"):
        run_all_shards(job)

    # Then the job succeeded, the failing shard after 2 retries spaced 5 s then 20 s
    job.refresh_from_db()
    assert calls["failed"] == 2
    assert job.status == Job.Status.SUCCEEDED
    assert sum(job.shards.values_list("attempts", flat=True)) == 2
    index = min(shards_with(word, job))
    assert [m for m in caplog.messages if "retrying in" in m] == [
        f"job {job.pk} shard {index}: attempt 1 failed, retrying in 5.0 s",
        f"job {job.pk} shard {index}: attempt 2 failed, retrying in 20.0 s",
    ]
    # And every recommendation has a complete explanation
    written = Explanation.objects.exclude(status=Explanation.Status.FAILED)
    assert written.count() == explained_shop
    assert all(e.reason_text and e.evidence and not e.error for e in written)


@pytest.mark.django_db(transaction=True)  # run_shard closes a connection left in a transaction
@pytest.mark.slow
def test_an_encoder_raising_for_good_fails_only_its_shards_and_a_retry_completes_the_job(
    explained_shop, monkeypatch, queued
):
    """Mark the failing shards' explanations failed with the error; the rest are written; retry finishes."""
    # Given an explain job and an encoder that always fails on one product's reasons
    job = planned_explain_job()
    word = failing_word()
    failing = shards_with(word, job)
    assert 0 < len(failing) < job.shards_total
    encode, _ = failing_encode(word, times=None)
    monkeypatch.setattr(encoder, "encode", encode)

    # When every shard runs
    run_all_shards(job)

    # Then the failing shards were tried 1 + 3 times and failed; the others are done
    job.refresh_from_db()
    shards = {s.index: s for s in job.shards.all()}
    for index, shard in shards.items():
        if index in failing:
            assert (shard.status, shard.attempts) == (JobShard.Status.FAILED, tasks.MAX_RETRIES + 1)
            assert "injected encoder failure mid-batch" in shard.error
        else:
            assert (shard.status, shard.attempts) == (JobShard.Status.DONE, 0)
    # And the job failed, saying how many shards failed and why
    assert job.status == Job.Status.FAILED
    assert job.error.startswith(f"{len(failing)} of {job.shards_total} shards failed; shard {min(failing)}: ")
    assert "injected encoder failure mid-batch" in job.error
    # And exactly the failing shards' explanations are marked failed, with the error; the rest are complete
    failed_ids = {i for s in failing for i in shards[s].payload["ids"]}
    failed = Explanation.objects.filter(status=Explanation.Status.FAILED)
    assert set(failed.values_list("recommendation_id", flat=True)) == failed_ids
    assert all("injected encoder failure mid-batch" in e.error and not e.reason_text for e in failed)
    generated = Explanation.objects.exclude(status=Explanation.Status.FAILED)
    assert generated.count() == explained_shop - len(failed_ids)
    assert all(e.reason_text and e.evidence for e in generated)

    # When the encoder works again and the job is retried
    monkeypatch.undo()
    monkeypatch.setattr(services, "_enqueue_shard", lambda job_id, index, kind: queued.append(index))
    queued.clear()
    job_retry(job_id=job.pk)
    assert sorted(queued) == sorted(failing)  # only the failed shards are queued again
    for index in failing:
        tasks.run_shard.apply(args=[job.pk, index])

    # Then the job succeeded and no explanation is failed any more
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    assert Explanation.objects.filter(status=Explanation.Status.FAILED).count() == 0
    assert Explanation.objects.count() == explained_shop


@pytest.mark.django_db(transaction=True)  # run_shard closes a connection left in a transaction
@pytest.mark.slow
def test_an_encoder_that_fails_to_load_fails_every_shard_with_the_load_error(explained_shop, monkeypatch, queued):
    """Fail every shard (after retries) and mark every explanation failed when the encoder cannot load."""
    # Given an encoder whose weights cannot be loaded
    job = planned_explain_job()

    def get_encoder():
        raise OSError("injected: model.safetensors is missing")

    monkeypatch.setattr(encoder, "get_encoder", get_encoder)

    # When every shard runs
    run_all_shards(job)

    # Then every shard and every explanation failed with the load error, and the job says so
    job.refresh_from_db()
    assert job.status == Job.Status.FAILED
    assert job.error.startswith(f"{job.shards_total} of {job.shards_total} shards failed")
    assert "OSError: injected: model.safetensors is missing" in job.error
    assert Explanation.objects.filter(status=Explanation.Status.FAILED).count() == explained_shop
    assert not Explanation.objects.exclude(status=Explanation.Status.FAILED).exists()


@pytest.mark.django_db(transaction=True)  # run_shard closes a connection left in a transaction
@pytest.mark.slow
def test_a_language_model_that_cannot_load_falls_back_to_the_evidence_template(
    explained_shop, settings, tmp_path, queued
):
    """Retry the shards, then store the template reason flagged with the load error when the LM cannot be used."""
    # Given a language model setting that points at nothing
    settings.ELM_LM = str(tmp_path / "no-such-model")
    job = planned_explain_job(use_lm=True)

    # When every shard runs
    run_all_shards(job)

    # Then the job succeeded and every explanation holds the template, flagged with the error
    job.refresh_from_db()
    assert job.status == Job.Status.SUCCEEDED
    explanations = list(Explanation.objects.all())
    assert len(explanations) == explained_shop
    for e in explanations:
        assert e.status != Explanation.Status.FAILED
        assert e.reason_text == e.template_text != ""
        assert "no-such-model" in e.error
        fallback = [f for f in e.flags if f["code"] == "template_fallback"]
        assert fallback and "no-such-model" in fallback[0]["message"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_real_worker_retries_with_backoff_marks_failed_explanations_and_finishes_after_a_retry(
    settings, spawn_worker
):
    """Run the explain batch in a worker whose encoder raises on one product; then retry with a sound worker."""
    # Given an explained shop and a worker whose encoder always fails on one product's reasons
    settings.ELM_RECOMMENDATIONS_PER_CUSTOMER = 4
    build_shop(customers=4, now=timezone.now())
    embed_and_recommend()
    env = {"ELM_EXPLAIN_SHARD_SIZE": 4, "ELM_SIG_STEPS": 4}
    url = valkey_url()
    word = failing_word()
    with broker(url):
        faulty = spawn_worker(name="faulty", broker_url=url, faults={"encode_fail": {"contains": word}}, **env)

        # When the batch runs
        job = job_create(kind="explain", params={"use_lm": False})
        job = wait_until(
            lambda: Job.objects.filter(pk=job.pk, status__in=["succeeded", "failed"]).first(),
            timeout=300,
            what="explain job finished",
        )

        # Then it failed only the failing shards, after retries spaced 0.5 s, 2 s, 8 s
        failing = shards_with(word, job)
        assert job.status == Job.Status.FAILED
        assert set(job.shards.filter(status="failed").values_list("index", flat=True)) == failing
        assert set(job.shards.filter(status="done").values_list("index", flat=True)).isdisjoint(failing)
        log = faulty.text()
        for seconds in ("0.5", "2.0", "8.0"):
            assert f"failed, retrying in {seconds} s" in log
        failed_explanations = Explanation.objects.filter(status=Explanation.Status.FAILED).count()
        assert failed_explanations == sum(len(job.shards.get(index=i).payload["ids"]) for i in failing)
        assert Explanation.objects.count() == Recommendation.objects.count()
        faulty.stop()

        # When a sound worker runs and the job is retried
        spawn_worker(name="sound", broker_url=url, **env)
        job_retry(job_id=job.pk)
        wait_for_job(job, timeout=300)

    # Then every explanation is complete
    assert Explanation.objects.filter(status=Explanation.Status.FAILED).count() == 0
    assert Explanation.objects.count() == Recommendation.objects.count()
    record(
        "model_failure[real worker]",
        shards=job.shards_total,
        failed_shards=len(failing),
        explanations_marked_failed=failed_explanations,
        retries_per_failed_shard=tasks.MAX_RETRIES,
        after_retry="succeeded",
    )
