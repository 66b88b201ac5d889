"""Shared rows and independent expectations for the importer tests (no fixtures: see conftest.py)."""

from __future__ import annotations

import csv
import gzip
import io
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest

from core.pseudonyms import pseudonym_key, pseudonymize, pseudonymize_invoice
from recommendations.models import Customer, Product, Purchase

pytestmark = pytest.mark.django_db(transaction=True)  # the importer manages its own transaction

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
BAD_FILES = Path(__file__).resolve().parents[2] / "data" / "bad"
LONDON = ZoneInfo("Europe/London")
HEAD_ROWS = 2500
# Dirty rows picked from the rest of the real file, per class: how many to take.
PICKS = {
    "accounting": 3,
    "adjustment": 6,
    "zero_price_customer": 4,
    "zero_price_anonymous": 4,
    "lowercase_code": 4,
    "voucher": 3,
    "non_merchandise": 6,
    "huge_offsetting_order": 2,
    "foreign": 40,
}


def dirty_class(row: list[str]) -> str | None:
    invoice, code, _, quantity, _, price, customer, country = row
    if invoice.startswith("A"):
        return "accounting"
    if invoice in ("581483", "C581484"):
        return "huge_offsetting_order"
    if not invoice.startswith("C") and int(quantity) < 0:
        return "adjustment"
    if float(price) == 0 and int(quantity) > 0:
        return "zero_price_customer" if customer else "zero_price_anonymous"
    if code.startswith("gift_"):
        return "voucher"
    if code != code.upper():
        return "lowercase_code"
    if code in ("POST", "DOT", "M", "BANK CHARGES", "AMAZONFEE", "CRUK", "PADS", "C2", "S", "B"):
        return "non_merchandise"
    if country != "United Kingdom" and customer:
        return "foreign"
    return None


def write_csv(rows: list[list[str]], path: Path) -> Path:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    data = text.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def expected_counts(rows: list[list[str]]) -> dict:
    """Compute the import's expected counts with pandas, independently of the importer's code."""
    df = pd.DataFrame(rows[1:], columns=rows[0])
    qty, price, invoice = df.Quantity.astype(int), df.UnitPrice.astype(float), df.InvoiceNo
    is_c = invoice.str.startswith("C")
    outcome = pd.Series(
        np.select(
            [invoice.str.startswith("A"), price < 0, qty == 0, is_c & (qty > 0), is_c, qty < 0, price == 0],
            [
                "R:accounting_adjustment",
                "R:negative_price",
                "R:zero_quantity",
                "R:cancellation_with_positive_quantity",
                "return",
                "adjustment",
                "R:zero_price",
            ],
            "sale",
        ),
        index=df.index,
    )
    rejected = outcome.str.startswith("R:")
    accepted = df[~rejected].assign(kind=outcome[~rejected])
    lines = accepted.drop_duplicates(subset=HEADER)
    return {
        "rows_read": len(df),
        "accepted_by_kind": accepted.kind.value_counts().to_dict(),
        "rejected_by_reason": outcome[rejected].str[2:].value_counts().to_dict(),
        "rows_duplicate": len(accepted) - len(lines),
        "lines": lines,
        "customers": set(accepted.CustomerID[accepted.CustomerID != ""]),
        "products": set(accepted.StockCode.str.strip().str.upper()),
    }


def db_snapshot(*, regions: bool = True) -> dict:
    customer_fields = ["pseudonym", "first_purchase_at", "last_purchase_at", "order_count", "revenue"]
    return {
        "purchases": sorted(
            Purchase.objects.values_list(
                "line_key", "customer__pseudonym", "product__stock_code", "quantity", "unit_price", "kind"
            )
        ),
        "customers": sorted(Customer.objects.values_list(*customer_fields, *(["region"] if regions else []))),
        "products": sorted(
            Product.objects.values_list(
                "stock_code",
                "description",
                "is_merchandise",
                "price_min",
                "price_median",
                "price_max",
                "units_sold",
                "buyer_count",
            )
        ),
    }


def pseudonym_of(raw: str) -> str:
    return pseudonymize(raw, key=pseudonym_key())


def invoice_of(raw: str) -> str:
    return pseudonymize_invoice(raw, key=pseudonym_key())


def cleaned(description: str) -> str:
    text = re.sub(r"\s+", " ", description).strip()
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


SYNTHETIC = [
    HEADER,
    # r1-r4: one line written four ways (ISO, M/D/YYYY, DD/MM/YYYY, untidy code/description/price/id)
    ["900001", "85123A", "WHITE HANGING HEART", "6", "2010-12-01 08:26:00", "2.55", "99901", "United Kingdom"],
    ["900001", "85123A", "WHITE HANGING HEART", "6", "12/1/2010 8:26", "2.55", "99901", "United Kingdom"],
    ["900001", "85123A", "WHITE HANGING HEART", "6", "01/12/2010 08:26", "2.55", "99901", "United Kingdom"],
    ["900001", " 85123a ", "  WHITE  HANGING HEART ", "6", "2010-12-01 08:26:00", "2.550", "99901.0", "United Kingdom"],
    # r5: thousands separators are accepted
    ["900002", "22423", "REGENCY CAKESTAND 3 TIER", "1,234", "2010-12-01 09:00:00", "1,234.5", "99902", "France"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "1,5", "2010-12-01 09:00:00", "12.75", "99902", "France"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "2.0", "2010-12-01 09:00:00", "12.75", "99902", "France"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "2", "2010-12-01 09:00:00", "12.7555", "99902", "France"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "2", "2010-12-01 09:00:00", "abc", "99902", "France"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "2", "2011-02-30 10:00:00", "12.75", "99902", "France"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "2", "13/5/2011 8:00", "12.75", "99902", "France"],
    ["900003", "22423", "=CMD()", "2", "yesterday", "12.75", "99902", "France"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "2", "2010-12-01 09:00:00", "12.75", "12x45", "France"],
    ["900003", "", "REGENCY CAKESTAND 3 TIER", "2", "2010-12-01 09:00:00", "12.75", "99902", "France"],
    ["", "22423", "REGENCY CAKESTAND 3 TIER", "2", "2010-12-01 09:00:00", "12.75", "99902", "France"],
    ["C900004", "22423", "REGENCY CAKESTAND 3 TIER", "3", "2010-12-01 09:00:00", "12.75", "99902", "France"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "0", "2010-12-01 09:00:00", "12.75", "99903", "France"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "2", "2010-12-01 09:00:00", "-1.00", "99902", "France"],
    ["A900005", "B", "Adjust bad debt", "1", "2010-12-01 09:00:00", "100.00", "", "United Kingdom"],
    ["900003", "22423", "REGENCY CAKESTAND 3 TIER", "2", "2010-12-01 09:00:00", "0", "99902", "France"],
    # r21: a return, r22: a stock write-off
    ["C900006", "85123A", "WHITE HANGING HEART", "-2", "2010-12-02 10:00:00", "2.55", "99901", "United Kingdom"],
    ["900007", "85123A", "damages", "-5", "2010-12-02 10:00:00", "0", "", "United Kingdom"],
    # r23: a non-merchandise sale; r24-r27: descriptions a spreadsheet would run as formulas
    ["900008", "POST", "POSTAGE", "1", "2010-12-02 10:00:00", "18.00", "99902", "France"],
    ["900009", "85123A", '=HYPERLINK("HTTP://X")', "1", "2010-12-03 11:00:00", "3.00", "", "United Kingdom"],
    ["900010", "ABC12", "+SUM(A1)", "1", "2010-12-03 11:00:00", "4.00", "", "United Kingdom"],
    ["900011", "85123A", "-2+3", "1", "2010-12-03 11:00:00", "1.00", "99902", "France"],
    ["900012", "85123A", "@cmd", "1", "2010-12-03 11:00:00", "5.00", "", "United Kingdom"],
    ["9000X1", "85123A", "WHITE HANGING HEART", "1", "2010-12-03 11:00:00", "5.00", "", "United Kingdom"],
]
