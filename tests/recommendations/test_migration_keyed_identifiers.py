"""The data migration that keys the invoice numbers and line keys of lines imported before (0006)."""

from __future__ import annotations

import hashlib

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.pseudonyms import line_key, pseudonym_key, pseudonymize_invoice

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("recommendations", "0005_privacy")]
AFTER = [("recommendations", "0006_keyed_source_identifiers")]


def _md5(*fields: str) -> str:
    return hashlib.md5("\x1f".join(fields).encode(), usedforsecurity=False).hexdigest()


@pytest.fixture
def back_to_latest():
    """Leave every app at its latest migration afterwards, whatever later migrations exist."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_lines_imported_before_get_keyed_invoices_and_line_keys(back_to_latest):
    """Rewrite natural lines with the importer's keyed functions; give detached lines random values."""
    # Given the schema before the migration, with a customer's line and an erased customer's detached line
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    apps = executor.loader.project_state(BEFORE).apps
    Customer, Product, Purchase = (apps.get_model("recommendations", m) for m in ("Customer", "Product", "Purchase"))
    customer = Customer.objects.create(pseudonym="0123456789abcdef", region="France")
    product = Product.objects.create(stock_code="85123A", description="WHITE HANGING HEART")
    when = "2010-12-01 08:26:00"
    natural = _md5("536365", "85123A", "WHITE HANGING HEART", "6", "2.550", when, customer.pseudonym)
    Purchase.objects.create(line_key=natural, customer=customer, product=product, invoice="536365",
                            description="WHITE HANGING HEART", quantity=6, unit_price="2.550",
                            occurred_at="2010-12-01 08:26:00+00:00", kind="sale")  # fmt: skip
    Purchase.objects.create(line_key="f" * 32, customer=None, product=product, invoice="C536379",
                            description="WHITE HANGING HEART", quantity=-1, unit_price="2.550",
                            occurred_at="2010-12-01 09:41:00+00:00", kind="return")  # fmt: skip

    # When the migration runs
    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    Purchase = executor.loader.project_state(AFTER).apps.get_model("recommendations", "Purchase")

    # Then the customer's line has the importer's keyed invoice and line key (a re-import dedupes on it)
    key = pseudonym_key()
    line = Purchase.objects.get(customer__isnull=False)
    assert line.invoice == pseudonymize_invoice("536365", key=key)
    fields = ("536365", "85123A", "WHITE HANGING HEART", "6", "2.550", when, customer.pseudonym)
    assert line.line_key == line_key(fields, key=key)
    # And the detached line keeps its random key and gets a random invoice, keyed on nothing
    detached = Purchase.objects.get(customer__isnull=True)
    assert detached.line_key == "f" * 32
    assert detached.invoice.startswith("C") and "536379" not in detached.invoice
    assert detached.invoice != pseudonymize_invoice("C536379", key=key)
