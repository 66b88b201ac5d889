"""factory_boy factories shared by every test package."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from explanations.models import Concept, CustomerConcept, Explanation
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


class ConceptFactory(factory.django.DjangoModelFactory):
    """A trained, usable concept (the kind the pages show); pass usable=False for one that failed.

    A migration seeds the default concepts (untrained); asking for one of their names updates that
    row, so a test gets exactly the attributes it asks for.
    """

    class Meta:
        model = Concept

    name = factory.Sequence(lambda n: f"Concept {n}")
    description = factory.LazyAttribute(lambda c: f"Customers who match {c.name.lower()}.")
    rule = Concept.Rule.SEED_PHRASES
    seed_phrases = "candle\nlantern"
    is_active = True
    usable = True
    auc = 0.85
    auc_low = 0.8
    accuracy = 0.8
    version = "test-concepts-1"
    trained_at = factory.LazyFunction(timezone.now)

    @classmethod
    def _create(cls, model_class, *args, **kwargs):
        concept, _ = model_class.objects.update_or_create(name=kwargs.pop("name"), defaults=kwargs)
        return concept


class CustomerConceptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = CustomerConcept

    customer = factory.SubFactory(CustomerFactory)
    concept = factory.SubFactory(ConceptFactory)
    score = 0.82
    low = factory.LazyAttribute(lambda cc: round(cc.score - 0.07, 4))
    high = factory.LazyAttribute(lambda cc: round(cc.score + 0.06, 4))
    version = "test-concepts-1"


def _evidence_rows(explanation) -> list[dict]:
    """Return two named evidence rows and an "other purchases" row whose shares add up to the score."""
    score = explanation.recommendation.score
    return [
        {"product_id": 9001, "stock_code": "EV001", "description": "WHITE HANGING HEART T-LIGHT HOLDER",
         "weight": 4.5, "share": round(score * 0.3, 6)},
        {"product_id": 9002, "stock_code": "EV002", "description": "RED WOOLLY HOTTIE WHITE HEART",
         "weight": 2.0, "share": round(score * 0.2, 6)},
        {"product_id": None, "description": "other purchases", "share": round(score * 0.5, 6), "count": 12},
    ]  # fmt: skip


def _word_attributions(explanation) -> dict:
    """Return SIG-shaped attributions of the product words and the top evidence's words."""
    words = explanation.recommendation.product.description.split() or ["ITEM"]
    # Decreasing shares whose absolute values add up to 1, the last one negative.
    raw = [float(len(words) - i) for i in range(len(words))]
    if len(raw) > 1:
        raw[-1] = -raw[-1]
    total = sum(abs(x) for x in raw)
    normalized = [x / total for x in raw]
    evidence_words = ["WHITE", "HANGING", "HEART", "T-LIGHT", "HOLDER"]
    return {
        "product": {"text": " ".join(words), "words": words, "normalized": normalized,
                    "attributions": [x * 0.3 for x in normalized]},
        "evidence": {"text": " ".join(evidence_words), "words": evidence_words,
                     "normalized": [0.4, 0.1, 0.3, -0.05, 0.15], "attributions": [0.2, 0.05, 0.15, -0.025, 0.075],
                     "product_id": 9001},
    }  # fmt: skip


class ExplanationFactory(factory.django.DjangoModelFactory):
    """A generated explanation shaped like explanations_generate's output, for an active recommendation."""

    class Meta:
        model = Explanation

    recommendation = factory.SubFactory(RecommendationFactory)
    status = Explanation.Status.GENERATED
    evidence = factory.LazyAttribute(_evidence_rows)
    evidence_residual = 0.0
    necessity = factory.LazyAttribute(
        lambda e: {
            "removed": [9001, 9002],
            "drops_out": False,
            "new_rank": e.recommendation.rank,
            "counterfactual_score": round(e.recommendation.score * 0.9, 6),
        }
    )
    concepts = factory.LazyFunction(
        lambda: [
            {"concept": "Home décor", "customer_score": 0.82, "low": 0.75, "high": 0.88, "sensitivity": 0.31,
             "shared": True},
            {"concept": "Bulk buyer", "customer_score": 0.3, "low": 0.25, "high": 0.36, "sensitivity": -0.2,
             "shared": False},
        ]
    )  # fmt: skip
    word_attributions = factory.LazyAttribute(_word_attributions)
    reason_text = "It goes with the heart-shaped T-light holders this customer reorders."
    template_text = "It goes with what this customer already buys, such as white hanging heart t-light holder."
    consistency = 0.71
    confidence = 0.12
    flags = factory.LazyFunction(list)
    versions = factory.LazyFunction(lambda: {"encoder": "test-encoder", "sig": "sig-20-gausslegendre", "lm": "test-lm"})


# --------------------------------------------------------------------------- outcomes (sales)


class ExposureFactory(factory.django.DjangoModelFactory):
    """The A/B exposure of a recommendation; ``arm="control"`` for one shown without a reason."""

    class Meta:
        model = "outcomes.Exposure"
        django_get_or_create = ("recommendation",)

    recommendation = factory.SubFactory(RecommendationFactory)
    arm = "explained"


class OutcomeFactory(factory.django.DjangoModelFactory):
    """An outcome recorded by a sales person on a recommendation (customer and product copied from it)."""

    class Meta:
        model = "outcomes.Outcome"

    recommendation = factory.SubFactory(RecommendationFactory)
    customer = factory.LazyAttribute(lambda o: o.recommendation.customer)
    product = factory.LazyAttribute(lambda o: o.recommendation.product)
    user = factory.SubFactory(UserFactory, groups=["sales"])
    kind = "pitched"
    comment = ""
    explained = True


# --------------------------------------------------------------------------- accounts (access)


class AccountAssignmentFactory(factory.django.DjangoModelFactory):
    """A customer in a sales user's book."""

    class Meta:
        model = "accounts.AccountAssignment"
        django_get_or_create = ("customer", "user")

    customer = factory.SubFactory(CustomerFactory)
    user = factory.SubFactory(UserFactory, groups=["sales"])


def assign(user, *customers) -> None:
    """Put ``customers`` into ``user``'s book (tests of sales users seeing their own accounts)."""
    for customer in customers:
        AccountAssignmentFactory(customer=customer, user=user)
