"""Products held back for personal data found in their descriptions: a reviewer clears them."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet

from core.audit import audit_record
from recommendations.models import Product


@transaction.atomic
def product_quarantine_clear(*, products: QuerySet[Product], actor: AbstractBaseUser | None) -> int:
    """Let the given quarantined products be recommended again; audit who cleared which; return how many.

    The caller has checked that ``actor`` may (permission ``recommendations.clear_pii_quarantine``, the
    reviewer role): clearing says "I read the scrubbed description and nothing personal is left".
    """
    cleared = list(
        products.select_for_update().filter(pii_quarantined=True).order_by("stock_code").values_list("pk", "stock_code")
    )
    if not cleared:
        return 0
    Product.objects.filter(pk__in=[pk for pk, _ in cleared]).update(pii_quarantined=False, pii_codes=[])
    audit_record(
        actor=actor,
        action="product.pii_quarantine_clear",
        object_type="product",
        object_ref=cleared[0][1] if len(cleared) == 1 else "",
        detail={"stock_codes": [code for _, code in cleared]},  # product codes, never a description
    )
    return len(cleared)
