"""Job plans reuse a result while no vector changed since it was made (recommendations.selectors)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from recommendations import selectors
from recommendations.models import Customer, Product, RecommendationBatch
from recommendations.services.recommend import production_batch_version
from tests.factories import CustomerFactory, ProductFactory, PurchaseFactory, RecommendationBatchFactory

pytestmark = pytest.mark.django_db

ENCODER = "test-encoder@1"


def embedded(model, instance, when) -> None:
    model.objects.filter(pk=instance.pk).update(embedded_at=when)


def test_the_latest_embedding_change_is_the_newest_customer_or_product_vector():
    # Given no vector at all, then a customer and a newer product vector
    assert selectors.latest_embedding_change() is None
    now = timezone.now()
    embedded(Customer, CustomerFactory(), now - dt.timedelta(hours=2))
    embedded(Product, ProductFactory(), now - dt.timedelta(hours=1))
    # Then the newest of both counts
    assert selectors.latest_embedding_change() == now - dt.timedelta(hours=1)


def test_a_fit_is_current_only_when_it_is_newer_than_every_vector():
    now = timezone.now()
    embedded(Product, ProductFactory(), now)
    assert selectors.fitted_after_vectors_changed(now + dt.timedelta(seconds=1))
    assert not selectors.fitted_after_vectors_changed(now - dt.timedelta(seconds=1))
    assert not selectors.fitted_after_vectors_changed(None)


def test_the_active_batch_is_reused_only_for_the_same_model_and_unchanged_vectors():
    # Given a sale (the reference time of the data), vectors from an hour ago and an active batch made
    # since, for the production model's version now
    embedded(Customer, PurchaseFactory().customer, timezone.now() - dt.timedelta(hours=1))
    batch = RecommendationBatchFactory(model_version=production_batch_version(encoder_version=ENCODER))
    # Then it is reused
    assert selectors.recommendation_batch_reusable(encoder_version=ENCODER) == batch
    # And not when the production model's version differs from the batch's
    RecommendationBatch.objects.filter(pk=batch.pk).update(model_version="an-older-model")
    assert selectors.recommendation_batch_reusable(encoder_version=ENCODER) is None
    RecommendationBatch.objects.filter(pk=batch.pk).update(model_version=batch.model_version)
    # And not once a vector changed after it was made
    embedded(Product, ProductFactory(), timezone.now() + dt.timedelta(seconds=1))
    assert selectors.recommendation_batch_reusable(encoder_version=ENCODER) is None


def test_no_active_batch_means_nothing_to_reuse():
    embedded(Customer, CustomerFactory(), timezone.now() - dt.timedelta(hours=1))
    RecommendationBatchFactory(status=RecommendationBatch.Status.FAILED)
    assert selectors.recommendation_batch_reusable(encoder_version=ENCODER) is None
