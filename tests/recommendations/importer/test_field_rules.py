"""The importer's field rules on hand-written rows: accept, reject, neutralise, dates, rejected-rows file."""

from __future__ import annotations

import csv
import datetime as dt
import re
from decimal import Decimal

import pytest

from recommendations.models import Customer, Product, Purchase
from recommendations.services.importer import rejected, transactions_import
from tests.recommendations.importer.support import HEADER, LONDON, SYNTHETIC, invoice_of, pseudonym_of, write_csv

pytestmark = pytest.mark.django_db(transaction=True)  # the importer manages its own transaction

# --------------------------------------------------------------------------- field rules


def test_field_rules_accept_reject_and_count_each_case(tmp_path):
    """Classify hand-written rows into the documented kinds and reasons (hand-computed counts)."""
    # Given 28 rows: 12 valid (3 of them restate row 1) and 16 rejected for different reasons
    path = write_csv(SYNTHETIC, tmp_path / "synthetic.csv")

    # When they are imported
    run = transactions_import(path=path)

    # Then
    assert run.rows_read == 28
    assert run.accepted_by_kind == {"sale": 10, "return": 1, "adjustment": 1}
    assert run.rows_duplicate == 3  # rows 2-4 are row 1 in other formats
    assert run.rows_inserted == 9 == Purchase.objects.count()
    assert run.rejected_by_reason == {
        "accounting_adjustment": 1,
        "cancellation_with_positive_quantity": 1,
        "invalid_customer_id": 1,
        "invalid_date": 3,
        "invalid_invoice": 1,
        "invalid_price": 2,
        "invalid_quantity": 2,
        "missing_invoice": 1,
        "missing_stock_code": 1,
        "negative_price": 1,
        "zero_price": 1,
        "zero_quantity": 1,
    }
    big = Purchase.objects.get(invoice=invoice_of("900002"))
    assert (big.quantity, big.unit_price) == (1234, Decimal("1234.500"))
    assert Purchase.objects.get(invoice=invoice_of("C900006")).quantity == -2
    write_off = Purchase.objects.get(invoice=invoice_of("900007"))
    assert (write_off.kind, write_off.customer) == ("adjustment", None)
    # 99903 only occurs in a rejected row, so it is no customer
    assert set(Customer.objects.values_list("pseudonym", flat=True)) == {pseudonym_of("99901"), pseudonym_of("99902")}


def test_descriptions_that_look_like_formulas_are_stored_neutralized(tmp_path):
    """Store = + - @ descriptions with a leading single quote."""
    # Given rows whose descriptions start with = + - @
    transactions_import(path=write_csv(SYNTHETIC, tmp_path / "synthetic.csv"))

    # When their lines are read back
    raw = {invoice_of(n): n for n in ["900009", "900010", "900011", "900012"]}
    stored = {
        raw[invoice]: description
        for invoice, description in Purchase.objects.filter(invoice__in=raw).values_list("invoice", "description")
    }

    # Then each is quoted
    assert stored == {
        "900009": '\'=HYPERLINK("HTTP://X")',
        "900010": "'+SUM(A1)",
        "900011": "'-2+3",
        "900012": "'@cmd",
    }


def test_aggregates_of_hand_written_rows(tmp_path):
    """Compute product and customer aggregates for hand-written rows (values worked out by hand)."""
    # Given the synthetic rows
    transactions_import(path=write_csv(SYNTHETIC, tmp_path / "synthetic.csv"))

    # Then 85123A: sales at 6x2.55, 1x3.00, 1x1.00, 1x5.00 and a return of 2; two identified buyers
    heart = Product.objects.get(stock_code="85123A")
    assert (heart.price_min, heart.price_median, heart.price_max) == (
        Decimal("1.000"),
        Decimal("2.775"),
        Decimal("5.000"),
    )
    assert (heart.units_sold, heart.buyer_count) == (7, 2)
    assert heart.description == "WHITE HANGING HEART"  # 2 lines; every other variant has 1
    assert heart.is_merchandise
    assert not Product.objects.get(stock_code="POST").is_merchandise
    assert not Product.objects.get(stock_code="ABC12").is_merchandise
    # And 99901: one order of 15.30 less a return of 5.10; 99902: three orders
    first = Customer.objects.get(pseudonym=pseudonym_of("99901"))
    assert (first.order_count, first.revenue) == (1, Decimal("10.20"))
    assert first.first_purchase_at == first.last_purchase_at == dt.datetime(2010, 12, 1, 8, 26, tzinfo=dt.UTC)
    second = Customer.objects.get(pseudonym=pseudonym_of("99902"))
    assert (second.order_count, second.revenue) == (3, Decimal("1523392.00"))
    assert second.first_purchase_at == dt.datetime(2010, 12, 1, 9, 0, tzinfo=dt.UTC)
    assert second.last_purchase_at == dt.datetime(2010, 12, 3, 11, 0, tzinfo=dt.UTC)


def test_canonical_description_prefers_the_most_frequent_clean_variant(tmp_path):
    """Pick the most frequent variant without lowercase or '?', else the most frequent of all."""
    # Given lines whose most frequent variants are not clean
    variants = {
        "21000": ["Found by jackie"] * 3 + ["MISSING?"] * 2 + ["CLEAN ONE", "CLEAN  ONE "],
        "21001": ["wet damaged"] * 2 + ["Mixed Case"],
    }
    rows = [HEADER]
    for code, descriptions in variants.items():
        for i, description in enumerate(descriptions):
            rows.append([f"92{code}{i}", code, description, "1", "2011-01-05 10:00:00", "1.25", "", "United Kingdom"])

    # When they are imported
    transactions_import(path=write_csv(rows, tmp_path / "variants.csv"))

    # Then the clean variant wins (both spellings clean to one), else the most frequent one
    assert dict(Product.objects.values_list("stock_code", "description")) == {
        "21000": "CLEAN ONE",
        "21001": "wet damaged",
    }


def _dated(dates: list[str]) -> list[list[str]]:
    return [
        HEADER,
        *(
            [f"9100{i:02d}", "85123A", "WHITE HANGING HEART", "1", date, "2.55", "99901", "United Kingdom"]
            for i, date in enumerate(dates)
        ),
    ]


@pytest.mark.parametrize(
    ("dates", "expected_ambiguous"),
    [
        # A month-first file: 11/12 is 12 November.
        (["12/1/2010 8:26", "11/12/2010 10:30"], dt.datetime(2010, 11, 12, 10, 30)),
        # A day-first file, whose proof comes after the ambiguous date: 11/12 is 11 December.
        (["11/12/2010 10:30", "01/12/2010 08:26"], dt.datetime(2010, 12, 11, 10, 30)),
        # No proof either way: month-first, the UCI export.
        (["11/12/2010 10:30"], dt.datetime(2010, 11, 12, 10, 30)),
    ],
)
def test_ambiguous_slash_dates_follow_the_file_convention(tmp_path, dates, expected_ambiguous):
    """Read an ambiguous slash date the way the rest of the file writes dates."""
    # Given a file with one ambiguous date
    path = write_csv(_dated(dates), tmp_path / "dates.csv")

    # When it is imported
    run = transactions_import(path=path)

    # Then the ambiguous line has the file's reading
    assert run.rows_rejected == 0
    line = Purchase.objects.get(invoice=invoice_of(f"9100{dates.index('11/12/2010 10:30'):02d}"))
    assert line.occurred_at == expected_ambiguous.replace(tzinfo=LONDON)


def test_ambiguous_slash_dates_are_rejected_when_the_file_mixes_conventions(tmp_path):
    """Reject an ambiguous date when the file proves both day-first and month-first."""
    # Given a file with both conventions and an ambiguous date
    path = write_csv(_dated(["12/1/2010 8:26", "02/12/2010 08:26", "11/12/2010 10:30"]), tmp_path / "mixed.csv")

    # When it is imported
    run = transactions_import(path=path)

    # Then only the ambiguous row is rejected
    assert run.rejected_by_reason == {"ambiguous_date": 1}
    assert run.rows_inserted == 2


def test_rejected_rows_file_lists_each_row_with_reason_and_pseudonym(tmp_path, media_root):
    """Write rejected rows with their row number, raw values, pseudonym, reason and advice."""
    # Given the synthetic rows
    run = transactions_import(path=write_csv(SYNTHETIC, tmp_path / "synthetic.csv"))

    # When the rejected-rows file is read
    assert run.rejected_rows_file.startswith("imports/")
    rows = list(csv.DictReader((media_root / run.rejected_rows_file).open(encoding="utf-8")))

    # Then it has one row per rejected row, in file order
    assert len(rows) == run.rows_rejected == 16
    assert list(rows[0]) == [*rejected.HEADER]
    assert not {"CustomerID", "InvoiceNo", "Country"} & set(rows[0])
    assert [r["row"] for r in rows][:3] == ["6", "7", "8"]
    assert [r["line"] for r in rows][:3] == ["7", "8", "9"]
    by_row = {r["row"]: r for r in rows}
    assert by_row["6"]["reason"] == "invalid_quantity"
    assert by_row["6"]["customer_pseudonym"] == pseudonym_of("99902")
    assert by_row["6"]["Quantity"] == "1,5"
    assert by_row["6"]["invoice_pseudonym"] == invoice_of("900003")
    assert by_row["13"]["reason"] == "invalid_customer_id"
    assert by_row["13"]["customer_pseudonym"] == ""
    assert by_row["12"]["Description"] == "'=CMD()"  # spreadsheet-safe
    assert by_row["18"]["UnitPrice"] == "-1.00"  # a number stays a number
    assert all(r["what_to_do"] for r in rows)
    assert by_row["15"]["reason"] == "missing_invoice"
    assert by_row["15"]["invoice_pseudonym"] == ""
    text = (media_root / run.rejected_rows_file).read_text()
    assert not re.search(r"\b(99901|99902|99903|12x45|900003|France)\b", text)
