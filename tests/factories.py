"""factory_boy factories shared by every test package."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from recommendations.models import Customer, ImportRun, Product, Purchase, Recommendation, RecommendationBatch

TEST_PASSWORD = "correct-horse-battery-staple"  # matches the password validators' minimum length


class UserFactory(factory.django.DjangoModelFactory):
    """A user whose password is TEST_PASSWORD; ``UserFactory(groups=["manager"])`` adds groups."""

    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.test")
    is_staff = False

    @factory.post_generation
    def password(self, create, extracted, **kwargs):
        self.set_password(extracted or TEST_PASSWORD)
        if create:
            self.save(update_fields=["password"])

    @factory.post_generation
    def groups(self, create, extracted, **kwargs):
        if not create or not extracted:
            return
        for name in extracted:
            group, _ = Group.objects.get_or_create(name=name)
            self.groups.add(group)


class CustomerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Customer

    # 16 lower-case hex characters, like real keyed pseudonyms.
    pseudonym = factory.Sequence(lambda n: f"{0xC0FFEE0000000000 + n:016x}")
    region = "British Isles"
    first_purchase_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=400))
    last_purchase_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=10))
    order_count = 3
    revenue = Decimal("123.45")


class ProductFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Product

    stock_code = factory.Sequence(lambda n: f"T{n:05d}")
    description = factory.Sequence(lambda n: f"TEST PRODUCT {n}")
    price_median = Decimal("2.950")


class ImportRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ImportRun

    file_name = "online_retail.csv.gz"
    file_sha256 = factory.Sequence(lambda n: f"{n:064x}")
    status = ImportRun.Status.SUCCEEDED
    finished_at = factory.LazyFunction(timezone.now)
    rows_read = 100
    rows_accepted = 95
    rows_inserted = 95
    rows_rejected = 5
    rejected_by_reason = factory.LazyFunction(lambda: {"missing_customer": 5})
    accepted_by_kind = factory.LazyFunction(lambda: {"sale": 90, "return": 5})


class PurchaseFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Purchase

    line_key = factory.Sequence(lambda n: f"line-{n}")
    customer = factory.SubFactory(CustomerFactory)
    product = factory.SubFactory(ProductFactory)
    invoice = factory.Sequence(lambda n: f"{536365 + n}")
    description = factory.LazyAttribute(lambda p: p.product.description)
    quantity = 6
    unit_price = Decimal("2.550")
    occurred_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(days=30))
    kind = Purchase.Kind.SALE


class RecommendationBatchFactory(factory.django.DjangoModelFactory):
    """An ACTIVE batch by default (at most one may exist); use status=... for others."""

    class Meta:
        model = RecommendationBatch

    status = RecommendationBatch.Status.ACTIVE
    recommender = "test-recommender"
    model_version = "test-model-1"
    activated_at = factory.LazyAttribute(
        lambda b: timezone.now() if b.status == RecommendationBatch.Status.ACTIVE else None
    )


def active_batch() -> RecommendationBatch:
    """Return the active batch, creating one if there is none (only one may be active)."""
    return RecommendationBatch.objects.filter(
        status=RecommendationBatch.Status.ACTIVE
    ).first() or RecommendationBatchFactory(status=RecommendationBatch.Status.ACTIVE)


class RecommendationFactory(factory.django.DjangoModelFactory):
    """A recommendation in the active batch unless ``batch=`` says otherwise."""

    class Meta:
        model = Recommendation

    batch = factory.LazyFunction(active_batch)
    customer = factory.SubFactory(CustomerFactory)
    product = factory.SubFactory(ProductFactory)
    rank = factory.Sequence(lambda n: n % 30000 + 1)
    score = 0.5
    generated_at = factory.LazyFunction(timezone.now)
