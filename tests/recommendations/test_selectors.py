"""Recommendations selectors: active recommendations, recent purchases, import runs and their rejected rows."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from recommendations import selectors
from recommendations.models import Customer, RecommendationBatch
from tests.factories import (
    CustomerFactory,
    ImportRunFactory,
    ProductFactory,
    PurchaseFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
    UserFactory,
)

pytestmark = [
    pytest.mark.django_db,
]


@pytest.fixture
def user():
    return UserFactory()


def test_active_recommendations_are_the_active_batch_in_rank_order(django_assert_num_queries):
    """Return only the active batch's recommendations of the customer, best rank first, with products, in one query."""
    # given
    customer = CustomerFactory()
    for rank in (3, 1, 2):
        RecommendationFactory(customer=customer, rank=rank)
    for status in (RecommendationBatch.Status.RUNNING, RecommendationBatch.Status.SUPERSEDED):
        RecommendationFactory(customer=customer, batch=RecommendationBatchFactory(status=status), rank=1)
    RecommendationFactory(rank=1)  # another customer's
    # when
    with django_assert_num_queries(1):
        found = list(selectors.active_recommendations(customer=customer))
        codes = [r.product.stock_code for r in found]
    # then
    assert [r.rank for r in found] == [1, 2, 3]
    assert {r.batch.status for r in found} == {RecommendationBatch.Status.ACTIVE}
    assert len(codes) == 3


def test_active_recommendation_count_counts_the_active_batch_per_customer():
    """Annotate each customer with the number of its active-batch recommendations (0 without any)."""
    # given
    busy, idle = CustomerFactory(), CustomerFactory()
    RecommendationFactory.create_batch(2, customer=busy)
    RecommendationFactory(customer=idle, batch=RecommendationBatchFactory(status=RecommendationBatch.Status.SUPERSEDED))
    # when
    counts = dict(Customer.objects.annotate(n=selectors.active_recommendation_count()).values_list("pseudonym", "n"))
    # then
    assert counts == {busy.pseudonym: 2, idle.pseudonym: 0}


def test_customer_recent_purchases_are_newest_first_and_limited(user, django_assert_num_queries):
    """Return at most ``limit`` lines, newest first, with products, in one query."""
    # given
    customer = CustomerFactory()
    now = timezone.now()
    for days in (5, 1, 3, 9):
        PurchaseFactory(customer=customer, occurred_at=now - dt.timedelta(days=days), invoice=f"INV{days}")
    PurchaseFactory(occurred_at=now)  # another customer's
    # when
    with django_assert_num_queries(1):
        purchases = selectors.customer_recent_purchases(user=user, customer=customer, limit=3)
        codes = [p.product.stock_code for p in purchases]
    # then
    assert [p.invoice for p in purchases] == ["INV1", "INV3", "INV5"]
    assert len(codes) == 3


def test_customer_recent_purchases_caps_the_limit(user):
    """Clamp a huge limit to RECENT_PURCHASES_MAX."""
    # given
    customer = CustomerFactory()
    product = ProductFactory()
    PurchaseFactory.create_batch(selectors.RECENT_PURCHASES_MAX + 2, customer=customer, product=product)
    # when
    purchases = selectors.customer_recent_purchases(user=user, customer=customer, limit=10**9)
    # then
    assert len(purchases) == selectors.RECENT_PURCHASES_MAX


def test_import_run_list_is_newest_first(user):
    """Order import runs by start time, newest first."""
    # given
    older = ImportRunFactory()
    newer = ImportRunFactory()
    older.started_at = timezone.now() - dt.timedelta(days=2)
    older.save(update_fields=["started_at"])
    # when
    runs = list(selectors.import_run_list(user=user))
    # then
    assert runs == [newer, older]


def test_rejected_rows_path_never_leaves_media_root(settings, tmp_path):
    """Return None for a stored name that points outside MEDIA_ROOT, the path for one inside."""
    # given
    settings.MEDIA_ROOT = tmp_path / "media"
    (tmp_path / "media" / "imports").mkdir(parents=True)
    (tmp_path / "media" / "imports" / "ok.csv").write_text("row\n")
    (tmp_path / "secret.csv").write_text("secret\n")
    escaping = ImportRunFactory(rejected_rows_file="../secret.csv")
    inside = ImportRunFactory(rejected_rows_file="imports/ok.csv")
    missing = ImportRunFactory(rejected_rows_file="imports/gone.csv")
    # when / then
    assert selectors.import_run_rejected_rows_path(import_run=escaping) is None
    assert selectors.import_run_rejected_rows_path(import_run=missing) is None
    assert selectors.import_run_rejected_rows_path(import_run=inside) == (tmp_path / "media/imports/ok.csv").resolve()
