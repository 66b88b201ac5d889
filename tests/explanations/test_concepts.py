"""Concept activation vectors: training, usability, intervals, labelling rules, the whole service."""

from datetime import timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from explanations.ml.cav import concept_scores, directional_sensitivity, train_cav
from explanations.models import Concept, CustomerConcept
from explanations.services.concepts import IGNORE, BehaviourStats, concept_labels, concepts_train
from recommendations.models import Customer, Purchase
from recommendations.services import embeddings
from tests.shop import build_shop


def separable(n=400, seed=0, shift=0.3):
    """Unit vectors whose class shifts them along axis 0, like a concept shifts customer vectors."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, 384)) / np.sqrt(384)
    x[:, 0] += shift * (2 * y - 1)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32), y


def test_cav_of_a_real_concept_is_usable_and_points_along_it():
    """Learn a usable CAV whose direction is close to the concept's true direction."""
    x, y = separable()
    cav = train_cav(x, y, bootstraps=5)
    assert cav.usable and cav.auc > 0.9
    assert cav.direction[0] > 0.5  # dominant component along axis 0
    assert directional_sensitivity(cav.direction, np.eye(384)[0]) > 0.5


def test_cav_of_random_labels_is_marked_unusable():
    """Mark a concept no better than chance as unusable."""
    x, _ = separable(seed=1)
    y = np.random.default_rng(2).integers(0, 2, len(x))
    assert not train_cav(x, y, bootstraps=2).usable


def test_too_few_examples_are_refused():
    """Refuse to train on a handful of positives."""
    x, y = separable(n=100)
    y[:] = 0
    y[:5] = 1
    with pytest.raises(ValueError, match="not enough examples"):
        train_cav(x, y)


def test_concept_scores_have_ordered_intervals():
    """Give each customer a probability inside its 90% bootstrap interval, low <= high."""
    x, y = separable(seed=3)
    cav = train_cav(x, y, bootstraps=10)
    score, low, high = concept_scores(x, cav)
    assert np.all(low <= high)
    assert np.mean((low - 1e-6 <= score) & (score <= high + 1e-6)) > 0.9


def test_quantile_rule_labels_top_quarter_and_bottom_half():
    """Label the top quarter 1, the bottom half 0, and ignore the middle."""
    stats = BehaviourStats(
        customer_ids=np.arange(8), median_line_qty=np.arange(8.0), q4_order_share=np.zeros(8),
        price_ratio=np.ones(8), orders=np.arange(8.0), days_since_last=np.zeros(8),
    )  # fmt: skip
    labels = concept_labels(Concept(name="bulk", rule=Concept.Rule.BULK_BUYER), stats)
    assert list(labels) == [0, 0, 0, 0, IGNORE, IGNORE, 1, 1]
    lapsed = concept_labels(Concept(name="lapsed", rule=Concept.Rule.LAPSED, threshold=3), stats)
    assert set(lapsed) == {0}


@pytest.mark.django_db
def test_concepts_train_scores_every_customer():
    """Train the seed-phrase concepts on customers who do or do not buy decoration, and score all."""
    # Given 60 customers: 30 buy lanterns/T-light holders/hearts, 30 buy toys and blocks
    products, _ = build_shop(customers=0)
    decor = [p for p in products if any(w in p.description for w in ("LANTERN", "T-LIGHT", "HEART"))]
    other = [p for p in products if any(w in p.description for w in ("BLOCK", "PLAYHOUSE", "DOLL", "JAM"))]
    now = timezone.now()
    for i in range(60):
        c = Customer.objects.create(pseudonym=f"c{i:03d}", region="France")
        basket = decor if i < 30 else other
        for j, p in enumerate(basket[i % 2 :: 1][:3]):
            Purchase.objects.create(
                line_key=f"{i}-{j}", customer=c, product=p, invoice=f"9{i}", quantity=2, unit_price=Decimal(1),
                occurred_at=now - timedelta(days=i), kind=Purchase.Kind.SALE,
            )  # fmt: skip
    embeddings.products_embed(product_ids=[p.pk for p in products])
    embeddings.customers_embed(customer_ids=list(Customer.objects.values_list("id", flat=True)))
    Concept.objects.exclude(name="Home décor").update(is_active=False)
    home = Concept.objects.get(name="Home décor")
    Concept.objects.filter(pk=home.pk).update(seed_phrases="LANTERN\nT-LIGHT\nHEART", threshold=0.5)
    # When the concepts are trained
    report = concepts_train()
    # Then home décor is learnable from the vectors and every customer has a score with an interval
    home.refresh_from_db()
    assert report["Home décor"]["auc"] > 0.8
    assert home.cav is not None and home.usable
    assert CustomerConcept.objects.filter(concept=home).count() == 60
    decor_buyer = CustomerConcept.objects.get(concept=home, customer__pseudonym="c000")
    toy_buyer = CustomerConcept.objects.get(concept=home, customer__pseudonym="c059")
    assert decor_buyer.score > toy_buyer.score
    assert decor_buyer.low <= decor_buyer.score <= decor_buyer.high
