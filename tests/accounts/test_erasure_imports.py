"""Erasure and imports: the rejected-rows reports forget the customer, and a re-import does not bring them back."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from core.pseudonyms import pseudonym_key, pseudonymize, pseudonymize_invoice
from recommendations.models import Customer, CustomerTombstone, ImportRun, Purchase
from recommendations.services.importer import transactions_import
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)  # the importer manages its own transaction

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
ERASED, OTHER = "17850", "13047"
# The erased customer: two lines, one rejected line (zero price); a rejected anonymous line of their invoice.
ROWS = [
    ["536365", "85123A", "WHITE HANGING HEART", "6", "2010-12-01 08:26:00", "2.55", ERASED, "United Kingdom"],
    ["536365", "71053", "WHITE METAL LANTERN", "6", "2010-12-01 08:26:00", "3.39", ERASED, "United Kingdom"],
    ["536366", "22633", "HAND WARMER UNION JACK", "6", "2010-12-01 08:28:00", "0", ERASED, "United Kingdom"],
    ["536365", "84406B", "CREAM CUPID HEARTS COAT HANGER", "x", "2010-12-01 08:26:00", "2.75", "", "United Kingdom"],
    ["536367", "84879", "ASSORTED COLOUR BIRD ORNAMENT", "32", "2010-12-01 08:34:00", "1.69", OTHER, "United Kingdom"],
    ["536367", "22745", "POPPY'S PLAYHOUSE BEDROOM", "six", "2010-12-01 08:34:00", "2.10", OTHER, "United Kingdom"],
]  # fmt: skip


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "retail.csv"
    with path.open("w", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([HEADER, *ROWS])
    return path


def _report(media_root, run: ImportRun) -> list[dict]:
    with (media_root / run.rejected_rows_file).open(encoding="utf-8", newline="") as fh:
        return list(csv.DictReader(fh))


def test_erasure_rewrites_the_rejected_rows_report_and_its_download(source, media_root, api_client):
    """Remove the customer's rows (by pseudonym and by invoice) from every report; the others stay."""
    # Given an import whose report holds rows of the customer (one by pseudonym, one of their invoice) and another's
    key = pseudonym_key()
    run = transactions_import(path=source)
    erased_pseudonym, erased_invoices = pseudonymize(ERASED, key=key), {pseudonymize_invoice("536365", key=key)}
    before = _report(media_root, run)
    assert {r["customer_pseudonym"] for r in before} == {erased_pseudonym, "", pseudonymize(OTHER, key=key)}
    assert any(r["invoice_pseudonym"] in erased_invoices and not r["customer_pseudonym"] for r in before)

    # When the customer is erased
    call_command("erase_customer", ERASED, stdout=io.StringIO())

    # Then the report keeps only the other customer's row, and so does its download
    after = _report(media_root, run)
    assert [r["customer_pseudonym"] for r in after] == [pseudonymize(OTHER, key=key)]
    api_client.force_authenticate(UserFactory(groups=["manager"]))
    response = api_client.get(reverse("api-import-run-rejected-rows", kwargs={"import_run_id": run.pk}))
    body = b"".join(response.streaming_content).decode()
    assert erased_pseudonym not in body and not any(i in body for i in erased_invoices)
    assert pseudonymize(OTHER, key=key) in body


def test_reimporting_after_an_erasure_does_not_bring_the_customer_back(source, media_root):
    """Skip the erased customer's rows, count them as erased_customer, and write them nowhere."""
    # Given an imported file and the erasure of one of its customers
    transactions_import(path=source)
    call_command("erase_customer", ERASED, stdout=io.StringIO())
    pseudonym = pseudonymize(ERASED, key=pseudonym_key())
    lines_before = Purchase.objects.count()
    # And the tombstone is keyed: neither the source id nor the pseudonym
    stone = CustomerTombstone.objects.get().tombstone
    assert ERASED not in stone and pseudonym not in stone

    # When the same file is imported again
    run = transactions_import(path=source)

    # Then the customer is not back, their rows are counted but neither stored nor reported
    assert not Customer.objects.filter(pseudonym=pseudonym).exists()
    assert run.rejected_by_reason["erased_customer"] == 3
    assert Purchase.objects.count() == lines_before
    assert pseudonym not in (media_root / run.rejected_rows_file).read_text()
    # And the other customer's lines still deduplicate
    assert run.rows_inserted == 0
