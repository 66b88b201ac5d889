"""A small real-looking shop (real catalogue descriptions) for tests that need vectors and purchases."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from recommendations.models import Customer, Product, Purchase

DESCRIPTIONS = [
    "WHITE HANGING HEART T-LIGHT HOLDER", "WHITE METAL LANTERN", "CREAM CUPID HEARTS COAT HANGER",
    "KNITTED UNION FLAG HOT WATER BOTTLE", "RED WOOLLY HOTTIE WHITE HEART.", "SET 7 BABUSHKA NESTING BOXES",
    "GLASS STAR FROSTED T-LIGHT HOLDER", "HAND WARMER UNION JACK", "HAND WARMER RED POLKA DOT",
    "ASSORTED COLOUR BIRD ORNAMENT", "POPPY'S PLAYHOUSE BEDROOM", "POPPY'S PLAYHOUSE KITCHEN",
    "FELTCRAFT PRINCESS CHARLOTTE DOLL", "IVORY KNITTED MUG COSY", "BOX OF 6 ASSORTED COLOUR TEASPOONS",
    "BOX OF VINTAGE JIGSAW BLOCKS", "BOX OF VINTAGE ALPHABET BLOCKS", "HOME BUILDING BLOCK WORD",
    "LOVE BUILDING BLOCK WORD", "RECIPE BOX WITH METAL HEART", "DOORMAT NEW ENGLAND",
    "JAM MAKING SET WITH JARS", "RED COAT RACK PARIS FASHION", "YELLOW COAT RACK PARIS FASHION",
]  # fmt: skip


def build_shop(*, customers: int = 6, per_customer: int = 4, now=None):
    """Create 24 merchandise products, one non-merchandise code, customers and their purchases."""
    now = now or timezone.now()
    products = [
        Product.objects.create(stock_code=f"{21000 + i}", description=d, is_merchandise=True)
        for i, d in enumerate(DESCRIPTIONS)
    ]
    Product.objects.create(stock_code="POST", description="POSTAGE", is_merchandise=False)
    people = [Customer.objects.create(pseudonym=f"{i:016x}", region="United Kingdom") for i in range(customers)]
    for i, c in enumerate(people):
        for j in range(per_customer):
            p = products[(i * 3 + j) % len(products)]
            Purchase.objects.create(
                line_key=f"{c.pk}:{p.pk}", customer=c, product=p, invoice=f"5{i}{j}", quantity=j + 1,
                unit_price=Decimal("2.10"), occurred_at=now - timedelta(days=100 + 30 * j + i),
                kind=Purchase.Kind.SALE,
            )  # fmt: skip
    return products, people


def embed_and_recommend():
    """Embed everything and activate a recommendation batch, by direct service calls."""
    from recommendations.services import embeddings, recommend

    embeddings.products_embed(product_ids=list(Product.objects.values_list("id", flat=True)))
    embeddings.customers_embed(customer_ids=list(Customer.objects.values_list("id", flat=True)))
    batch = recommend.recommendation_batch_start(model_version="test")
    recommend.recommendations_compute(
        batch_id=batch.pk, customer_ids=list(Customer.objects.values_list("id", flat=True))
    )
    return recommend.recommendation_batch_activate(batch_id=batch.pk)
