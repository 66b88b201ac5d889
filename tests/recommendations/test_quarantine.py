"""Products held back for personal data: never recommended (HNSW and hybrid paths) until a reviewer clears them."""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from core.models import AuditEvent
from recommendations.models import Customer, EvaluationRun, Product, Purchase, Recommendation
from recommendations.services import production, recommend
from recommendations.services.quarantine import product_quarantine_clear
from recommendations.vectors import write_vectors
from tests.factories import ProductFactory, UserFactory
from tests.shop import build_shop

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v / np.linalg.norm(v)


def test_the_nearest_product_is_skipped_by_the_embedding_recommender_while_quarantined():
    """The HNSW path recommends the next products, not the quarantined nearest one."""
    # Given products along one direction, the nearest of them quarantined
    rng = np.random.default_rng(0)
    axis = _unit(rng.normal(size=384))
    products = Product.objects.bulk_create(
        [Product(stock_code=f"3{i:04d}", description=f"P{i}", pii_quarantined=(i == 0)) for i in range(20)]
    )
    vectors = {p.pk: _unit(axis + 0.05 * i * _unit(rng.normal(size=384))) for i, p in enumerate(products)}
    write_vectors(Product._meta.db_table, [(pk, v, "test", "h") for pk, v in vectors.items()], now=NOW)
    customer = Customer.objects.create(pseudonym="q", region="France")
    write_vectors(Customer._meta.db_table, [(customer.pk, axis, "test", "h")], now=NOW)
    # When recommendations are computed
    batch = recommend.recommendation_batch_start(model_version="test")
    recommend.recommendations_compute(batch_id=batch.pk, customer_ids=[customer.pk])
    # Then the quarantined product is not among them and the next nearest leads
    recs = list(Recommendation.objects.filter(batch=batch).order_by("rank").values_list("product_id", flat=True))
    assert products[0].pk not in recs
    assert recs[0] == products[1].pk


@pytest.fixture
def artifacts(settings, tmp_path):
    settings.ELM_RECOMMENDER_DIR = tmp_path / "recommender"
    production._cache.clear()
    yield
    production._cache.clear()


def test_the_production_hybrid_recommends_a_quarantined_product_to_no_one(artifacts):
    """The hybrid path drops the product from every list; clearing it brings it back."""
    # Given a shop with history whose production recommender is the hybrid
    products, customers = build_shop(customers=8, per_customer=5)
    for i, c in enumerate(customers):
        for j, p in enumerate(products[i : i + 3]):
            Purchase.objects.create(
                line_key=f"old:{c.pk}:{p.pk}", customer=c, product=p, invoice=f"9{i}{j}", quantity=2,
                unit_price=Decimal("1.50"), occurred_at=NOW - timedelta(days=200 + j), kind=Purchase.Kind.SALE,
            )  # fmt: skip
    params = json.loads(production.DEFAULT_CHOICE_FILE.read_text())["params"]
    EvaluationRun.objects.create(source="db", status="succeeded", chosen_model="hybrid", chosen_params=params)

    def recommended() -> set[int]:
        batch = recommend.production_batch_start(encoder_version="test")
        assert batch.recommender == production.HYBRID
        recommend.recommendations_compute(batch_id=batch.pk, customer_ids=recommend.production_customer_ids(batch))
        return set(Recommendation.objects.filter(batch=batch).values_list("product_id", flat=True))

    # And the product recommended most often is quarantined
    recommended()
    counts = Counter(Recommendation.objects.values_list("product_id", flat=True))
    target = counts.most_common(1)[0][0]
    Product.objects.filter(pk=target).update(pii_quarantined=True)
    # When recommendations are computed again
    # Then no customer gets it; once cleared, it is recommended again
    assert target not in recommended()
    product_quarantine_clear(products=Product.objects.filter(pk=target), actor=None)
    assert target in recommended()


def test_clearing_is_audited_and_only_touches_quarantined_products():
    """Clear the selected quarantined products, audit the stock codes (never a description)."""
    # Given two quarantined products and a clean one
    held = [ProductFactory(pii_quarantined=True, pii_codes=["pii:email"]) for _ in range(2)]
    clean = ProductFactory()
    reviewer = UserFactory(groups=["reviewer"])
    # When a reviewer clears all three
    n = product_quarantine_clear(
        products=Product.objects.filter(pk__in=[*[p.pk for p in held], clean.pk]), actor=reviewer
    )
    # Then the two are cleared and one audit event names their stock codes
    assert n == 2
    assert not Product.objects.filter(pii_quarantined=True).exists()
    event = AuditEvent.objects.get(action="product.pii_quarantine_clear")
    assert event.actor == reviewer
    assert event.detail == {"stock_codes": sorted(p.stock_code for p in held)}


@pytest.mark.parametrize(("group", "may"), [("reviewer", True), ("manager", False), ("sales", False)])
def test_only_reviewers_can_clear_in_the_admin(group, may):
    """The admin action needs the permission the reviewer role holds; staff alone is not enough."""
    # Given a staff user of the role and a quarantined product
    product = ProductFactory(pii_quarantined=True, pii_codes=["pii:person"])
    assert Group.objects.filter(name=group).exists()
    user = UserFactory(is_staff=True, groups=[group])
    client = Client()
    client.force_login(user)
    # When they apply the action
    url = reverse("admin:recommendations_product_changelist")
    client.post(url, {"action": "clear_pii_quarantine", "_selected_action": [product.pk]})
    # Then only a reviewer clears it
    product.refresh_from_db()
    assert product.pii_quarantined is (not may)


def test_descriptions_imported_before_are_scrubbed_once_by_the_command():
    """Scrub stored lines and product names, quarantine their products; a second run finds nothing."""
    from io import StringIO

    from django.core.management import call_command

    from tests.factories import PurchaseFactory

    # Given lines imported before descriptions were scrubbed: a name and an e-mail, and a clean product
    tagged, clean = ProductFactory(stock_code="99101"), ProductFactory(stock_code="99102")
    PurchaseFactory.create_batch(2, product=tagged, description="GIFT TAG FOR SARAH MITCHELL")
    PurchaseFactory(product=tagged, description="gift tag, mail sarah@example.com")
    PurchaseFactory(product=clean, description="WHITE HANGING HEART")
    Product.objects.filter(pk=tagged.pk).update(description="GIFT TAG FOR SARAH MITCHELL")
    # When the command runs
    out = StringIO()
    call_command("scrub_descriptions", stdout=out)
    # Then no line or product name holds the personal data, and the product is held back with the kinds
    assert set(Purchase.objects.filter(product=tagged).values_list("description", flat=True)) == {
        "GIFT TAG FOR <PERSON>",
        "gift tag, mail <EMAIL>",
    }
    tagged.refresh_from_db()
    assert (tagged.description, tagged.pii_quarantined, tagged.pii_codes) == (
        "GIFT TAG FOR <PERSON>",
        True,
        ["pii:email", "pii:person"],
    )
    assert not Product.objects.get(pk=clean.pk).pii_quarantined
    assert "Scrubbed 2 descriptions on 3 lines; 1 products held back" in out.getvalue()
    # And a second run has nothing left to do
    call_command("scrub_descriptions", stdout=out)
    assert "Scrubbed 0 descriptions" in out.getvalue()
