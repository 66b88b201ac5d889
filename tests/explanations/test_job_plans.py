"""The explanation jobs plan from selectors: what to explain, and whether a fit can be reused."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from explanations import selectors
from explanations.models import Explanation
from explanations.services.explain import explanations_mark_failed
from jobs import registry
from jobs.services import job_create
from recommendations.models import Product
from tests.factories import ConceptFactory, ExplanationFactory, ProductFactory, RecommendationFactory

pytestmark = pytest.mark.django_db


def test_concepts_are_current_until_a_vector_changes_after_their_training():
    # Given concepts trained after the last vector change
    product = ProductFactory()
    Product.objects.filter(pk=product.pk).update(embedded_at=timezone.now() - dt.timedelta(hours=1))
    ConceptFactory()
    assert selectors.concepts_current()
    # When a vector changes afterwards, Then they are stale
    Product.objects.filter(pk=product.pk).update(embedded_at=timezone.now() + dt.timedelta(hours=1))
    assert not selectors.concepts_current()


def test_the_train_concepts_plan_reuses_current_concepts_unless_forced():
    # Given current concepts
    product = ProductFactory()
    Product.objects.filter(pk=product.pk).update(embedded_at=timezone.now() - dt.timedelta(hours=1))
    ConceptFactory()
    plan = registry.get("train_concepts").plan
    # When planned, Then no shard and the job says it reused them; force plans one shard
    job = job_create(kind="train_concepts")
    assert plan(job) == [] and job.result["reused"] is True
    assert len(plan(job_create(kind="train_concepts", params={"force": True}))) == 1


def test_without_a_calibration_the_calibrate_plan_fits_one():
    ProductFactory()
    assert not selectors.calibration_current()
    assert len(registry.get("calibrate").plan(job_create(kind="calibrate"))) == 1


def test_recommendations_to_explain_are_those_without_a_usable_explanation():
    # Given three recommendations: unexplained, explained, and with a failed explanation
    fresh, done, failed = RecommendationFactory.create_batch(3)
    ExplanationFactory(recommendation=done)
    ExplanationFactory(recommendation=failed, status=Explanation.Status.FAILED)
    # Then the unexplained and the failed one are to explain
    assert set(selectors.recommendations_to_explain()) == {fresh.pk, failed.pk}


def test_a_failed_shard_marks_its_explanations_failed_and_keeps_complete_ones():
    # Given a shard of an explained recommendation and one not yet explained
    done, missing = RecommendationFactory.create_batch(2)
    kept = ExplanationFactory(recommendation=done)
    # When the shard fails for good
    explanations_mark_failed(recommendation_ids=[done.pk, missing.pk], error="LM crashed")
    # Then the complete explanation is untouched and the missing one is stored as failed, with the error
    kept.refresh_from_db()
    assert kept.status != Explanation.Status.FAILED
    row = Explanation.objects.get(recommendation=missing)
    assert (row.status, row.error) == (Explanation.Status.FAILED, "LM crashed")


def test_the_numbers_plan_shards_every_active_recommendation_without_numbers():
    # Given recommendations with numbers, with an explanation from before the numbers pass, and with none
    with_numbers, old, fresh = RecommendationFactory.create_batch(3)
    ExplanationFactory(recommendation=with_numbers, versions={"numbers": "numbers-v1"})
    ExplanationFactory(recommendation=old)
    # When the numbers job is planned
    shards = registry.get("explain_numbers").plan(job_create(kind="explain_numbers"))
    # Then the two without numbers are in its shards, the one with numbers is not
    assert sorted(pk for s in shards for pk in s["ids"]) == sorted([old.pk, fresh.pk])


def test_a_recommendation_with_numbers_and_no_reason_still_waits_for_words():
    # Given the numbers pass wrote an explanation (template only), and another one has its reason
    waiting, written = RecommendationFactory.create_batch(2)
    ExplanationFactory(recommendation=waiting, reason_text="", versions={"numbers": "numbers-v1"})
    ExplanationFactory(recommendation=written, versions={"numbers": "numbers-v1"})
    # Then only the first is to explain in words
    assert selectors.recommendations_to_explain() == [waiting.pk]
