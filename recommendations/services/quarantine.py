"""Products held back for personal data found in their descriptions: a reviewer clears them."""

from __future__ import annotations

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection, transaction
from django.db.models import QuerySet

from core.audit import audit_record
from recommendations.models import Product, Purchase


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


@transaction.atomic
def descriptions_scrub() -> dict:
    """Scrub personal data from every stored description and quarantine its products; return counts.

    For databases imported before the importer scrubbed descriptions (run once: ``manage.py
    scrub_descriptions``), and after the detectors improve. Lines keep their line keys (keyed over the
    text as imported), so a re-import of the same file still finds them. Idempotent: a scrubbed text
    has nothing left to find.
    """
    from core.pii import redact
    from recommendations.services.importer.merge import products_quarantine, products_update

    texts = Purchase.objects.exclude(description="").values_list("description", flat=True).distinct()
    found = {text: redact(text) for text in texts.iterator()}
    changed = {text: scrubbed for text, (scrubbed, codes) in found.items() if codes}
    if not changed:
        return {"descriptions": 0, "lines": 0, "products": []}
    kinds: dict[str, set[str]] = {}
    for code, text in (
        Purchase.objects.filter(description__in=list(changed))
        .values_list("product__stock_code", "description")
        .distinct()
    ):
        kinds.setdefault(code, set()).update(found[text][1])
    with connection.cursor() as cur:
        cur.execute(
            f"""
            UPDATE {Purchase._meta.db_table} p SET description = m.scrubbed
            FROM unnest(%s::text[], %s::text[]) AS m(raw, scrubbed) WHERE p.description = m.raw
            """,  # noqa: S608 - our table name
            [list(changed), list(changed.values())],
        )
        lines = cur.rowcount
        products_update(cur, stock_codes=sorted(kinds))  # the canonical descriptions, from the scrubbed lines
        quarantined = products_quarantine(cur, pii_by_code=kinds)
    audit_record(
        actor=None,
        action="product.descriptions_scrub",
        object_type="product",
        detail={"descriptions": len(changed), "lines": lines, "stock_codes": quarantined},
    )
    return {"descriptions": len(changed), "lines": lines, "products": quarantined}
