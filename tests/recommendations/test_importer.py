"""Tests for the transaction importer (recommendations.services.importer) and import_transactions."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import logging
import re
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from core.pseudonyms import pseudonym_key, pseudonymize, pseudonymize_invoice
from core.regions import OTHER, WIDER_REGION
from recommendations.models import Customer, ImportRun, Product, Purchase
from recommendations.services import regions
from recommendations.services.importer import InvalidImportFile, merge, rejected, transactions_import

pytestmark = pytest.mark.django_db(transaction=True)  # the importer manages its own transaction

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
BAD_FILES = Path(__file__).resolve().parent.parent / "data" / "bad"
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


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="module")
def real_rows() -> list[list[str]]:
    """Return a real slice: the header, the first HEAD_ROWS rows, then dirty rows picked from the rest."""
    from django.conf import settings

    path = Path(settings.ELM_DATASET_PATH)
    if not path.exists():
        pytest.skip(f"the dataset is not at {path}")
    head: list[list[str]] = []
    picked: list[list[str]] = []
    taken = dict.fromkeys(PICKS, 0)
    foreign_customers: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == HEADER
        for index, row in enumerate(reader):
            if index < HEAD_ROWS:
                head.append(row)
                continue
            kind = _dirty_class(row)
            if kind == "foreign" and row[6] in foreign_customers:
                continue  # one row per foreign customer spreads them over many countries
            if kind and taken[kind] < PICKS[kind]:
                taken[kind] += 1
                picked.append(row)
                foreign_customers.add(row[6])
    assert taken == PICKS, "the real file no longer has the dirty rows this test relies on"
    return [HEADER, *head, *picked]


def _dirty_class(row: list[str]) -> str | None:
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


def _write(rows: list[list[str]], path: Path) -> Path:
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    data = text.getvalue().encode()
    path.write_bytes(gzip.compress(data) if path.name.endswith(".gz") else data)
    return path


def _expected(rows: list[list[str]]) -> dict:
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


def _snapshot(*, regions: bool = True) -> dict:
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


def _pseudonym(raw: str) -> str:
    return pseudonymize(raw, key=pseudonym_key())


def _invoice(raw: str) -> str:
    return pseudonymize_invoice(raw, key=pseudonym_key())


def _clean(description: str) -> str:
    text = re.sub(r"\s+", " ", description).strip()
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text


# --------------------------------------------------------------------------- real data


def test_real_slice_counts_match_an_independent_computation(real_rows, tmp_path):
    """Import a real slice and get exactly the counts pandas derives from the same rows."""
    # Given a real slice with every class of dirty row
    path = _write(real_rows, tmp_path / "slice.csv.gz")
    expected = _expected(real_rows)
    assert set(expected["accepted_by_kind"]) == {"sale", "return", "adjustment"}
    assert {"accounting_adjustment", "zero_price"} <= set(expected["rejected_by_reason"])
    assert expected["rows_duplicate"] > 0

    # When it is imported
    run = transactions_import(path=path)

    # Then every count matches
    assert run.status == ImportRun.Status.SUCCEEDED
    assert run.rows_read == expected["rows_read"] == len(real_rows) - 1
    assert run.accepted_by_kind == expected["accepted_by_kind"]
    assert run.rejected_by_reason == expected["rejected_by_reason"]
    assert run.rows_accepted == sum(expected["accepted_by_kind"].values())
    assert run.rows_rejected == sum(expected["rejected_by_reason"].values())
    assert run.rows_duplicate == expected["rows_duplicate"]
    assert run.rows_inserted == len(expected["lines"]) == Purchase.objects.count()
    assert run.customers_total == len(expected["customers"]) == Customer.objects.count()
    assert run.products_total == len(expected["products"]) == Product.objects.count()
    assert set(Customer.objects.values_list("pseudonym", flat=True)) == {_pseudonym(c) for c in expected["customers"]}
    assert run.file_sha256 and run.finished_at and not run.error


def test_real_slice_aggregates_match_an_independent_computation(real_rows, tmp_path):
    """Recompute product and customer aggregates with pandas and find the same values stored."""
    # Given a real slice and its distinct accepted lines
    lines = _expected(real_rows)["lines"].copy()
    lines["code"] = lines.StockCode.str.strip().str.upper()
    lines["description"] = lines.Description.map(_clean)
    lines["qty"] = lines.Quantity.astype(int)
    lines["price"] = lines.UnitPrice.map(Decimal)
    sales = lines[lines.kind == "sale"]
    sales_and_returns = lines[lines.kind.isin(["sale", "return"])]
    prices = sales.assign(p=sales.price.astype(float)).groupby("code").p.agg(["min", "max", "median"])
    units = sales_and_returns.groupby("code").qty.sum()
    buyers = sales[sales.CustomerID != ""].groupby("code").CustomerID.nunique()
    variant_counts: dict[str, list[tuple[str, int]]] = {}
    described = lines[lines.description != ""]
    for (code, description), n in described.groupby(["code", "description"]).size().items():
        variant_counts.setdefault(code, []).append((description, n))

    # When it is imported
    transactions_import(path=_write(real_rows, tmp_path / "slice.csv"))

    # Then each product has the expected prices, units, buyers and canonical description
    products = {p.stock_code: p for p in Product.objects.all()}
    assert set(products) == set(lines.code)
    for code in set(lines.code):
        product = products[code]
        if code in prices.index:
            low, high, median = prices.loc[code, ["min", "max", "median"]]
            assert product.price_min == Decimal(str(low)).quantize(Decimal("0.001"))
            assert product.price_max == Decimal(str(high)).quantize(Decimal("0.001"))
            assert abs(float(product.price_median) - median) <= 0.0005 + 1e-9
        else:
            assert product.price_min is product.price_median is product.price_max is None
        assert product.units_sold == max(int(units.get(code, 0)), 0)
        assert product.buyer_count == buyers.get(code, 0)
        variants = variant_counts.get(code, [])
        pool = [(d, n) for d, n in variants if d == d.upper() and "?" not in d] or variants
        best = min(pool, key=lambda item: (-item[1], item[0].encode()))[0] if pool else ""
        assert product.description == best, code
        assert product.is_merchandise == bool(re.fullmatch(r"\d{5}[A-Z]{0,4}", code))

    # And each customer has the expected orders, revenue and first/last sale
    customers = {c.pseudonym: c for c in Customer.objects.all()}
    for raw_id, group in sales_and_returns[sales_and_returns.CustomerID != ""].groupby("CustomerID"):
        customer = customers[_pseudonym(raw_id)]
        own_sales = group[group.kind == "sale"]
        assert customer.order_count == own_sales.InvoiceNo.nunique()
        revenue = sum((q * p for q, p in zip(group.qty, group.price, strict=True)), Decimal(0))
        assert customer.revenue == revenue.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
        if len(own_sales):
            moments = pd.to_datetime(own_sales.InvoiceDate)
            assert customer.first_purchase_at == moments.min().to_pydatetime().replace(tzinfo=LONDON)
            assert customer.last_purchase_at == moments.max().to_pydatetime().replace(tzinfo=LONDON)
        else:
            assert customer.first_purchase_at is None


def test_reimporting_the_same_file_inserts_nothing_and_changes_nothing(real_rows, tmp_path):
    """Import a file twice; the second run only finds duplicates."""
    # Given an imported real slice
    path = _write(real_rows, tmp_path / "slice.csv.gz")
    first = transactions_import(path=path)
    before = _snapshot()

    # When the same file is imported again
    second = transactions_import(path=path)

    # Then nothing new is written and every count is the same
    assert second.rows_inserted == 0
    assert second.rows_duplicate == second.rows_accepted == first.rows_accepted
    assert second.rejected_by_reason == first.rejected_by_reason
    assert second.accepted_by_kind == first.accepted_by_kind
    assert (second.customers_total, second.products_total) == (first.customers_total, first.products_total)
    assert second.file_sha256 == first.file_sha256
    assert _snapshot() == before


def test_overlapping_files_end_like_one_import_of_their_union(real_rows, tmp_path):
    """Import two overlapping files and get exactly what importing their union gives."""
    # Given two files sharing 500 rows
    header, body = real_rows[0], real_rows[1:]
    first_rows, second_rows = [header, *body[:1500]], [header, *body[1000:]]
    first_path = _write(first_rows, tmp_path / "first.csv.gz")
    second_path = _write(second_rows, tmp_path / "second.csv.gz")
    expected_first, expected_second = _expected(first_rows), _expected(second_rows)

    # When both are imported
    transactions_import(path=first_path)
    second = transactions_import(path=second_path)

    # Then the overlap is counted as duplicates of stored lines
    new_lines = expected_second["lines"].merge(expected_first["lines"], how="left", indicator=True)
    new_count = int((new_lines["_merge"] == "left_only").sum())
    assert second.rows_inserted == new_count
    assert second.rows_duplicate == second.rows_accepted - new_count
    assert Purchase.objects.count() == len(_expected(real_rows)["lines"])
    # Regions are left out: a customer generalized by an earlier file keeps its group, because the
    # country behind it is not stored (see recommendations.services.regions).
    overlapping = _snapshot(regions=False)

    # And the result equals one import of the union
    Purchase.objects.all().delete()
    Customer.objects.all().delete()
    Product.objects.all().delete()
    transactions_import(path=_write(real_rows, tmp_path / "union.csv.gz"))
    assert _snapshot(regions=False) == overlapping


def test_no_raw_customer_id_is_stored_printed_or_logged(real_rows, tmp_path, media_root, caplog):
    """Search every text column, the rejected-rows file, output and logs for raw CustomerIDs."""
    # Given a real slice whose raw ids do not otherwise occur in it (e.g. as a stock code)
    raw_ids = {row[6] for row in real_rows[1:] if row[6]}
    other_tokens = {t for row in real_rows[1:] for i, f in enumerate(row) if i != 6 for t in re.findall(r"\d+", f)}
    raw_ids -= other_tokens
    assert len(raw_ids) > 100
    pattern = r"\m(" + "|".join(sorted(raw_ids)) + r")\M"
    path = _write(real_rows, tmp_path / "slice.csv.gz")
    out, err = io.StringIO(), io.StringIO()

    # When it is imported through the command, with logging on
    with caplog.at_level(logging.DEBUG):
        call_command("import_transactions", str(path), stdout=out, stderr=err)

    # Then no text, varchar or json column of any table holds a raw id
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = current_schema()
              AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
            """
        )
        columns = cursor.fetchall()
        assert ("recommendations_customer", "pseudonym") in columns
        leaks = []
        for table, column in columns:
            cursor.execute(
                f'SELECT count(*) FROM "{table}" WHERE "{column}"::text ~ %s',  # noqa: S608 - catalog names
                [pattern],
            )
            if cursor.fetchone()[0]:
                leaks.append(f"{table}.{column}")
    assert leaks == []
    # And neither does the rejected-rows file, nor what was printed or logged
    run = ImportRun.objects.get()
    rejected_text = (media_root / run.rejected_rows_file).read_text()
    python_pattern = re.compile(r"\b(" + "|".join(sorted(raw_ids)) + r")\b")
    for text in (rejected_text, out.getvalue(), err.getvalue(), caplog.text):
        assert not python_pattern.search(text)
    # But the file does name the customers of rejected rows, by pseudonym
    rejected = list(csv.DictReader(io.StringIO(rejected_text)))
    raw_by_row = {str(number): row[6] for number, row in enumerate(real_rows[1:], start=1)}
    assert any(r["customer_pseudonym"] for r in rejected)
    for r in rejected:
        raw = raw_by_row[r["row"]]
        assert r["customer_pseudonym"] == (_pseudonym(raw) if raw else "")


def test_regions_are_k_anonymous(real_rows, tmp_path, settings):
    """Generalize countries so every stored region has at least k customers."""
    # Given a real slice and each customer's most frequent country, counted with pandas
    settings.ELM_REGION_MIN_K = 5
    df = pd.DataFrame(real_rows[1:], columns=HEADER)
    accepted = df[
        ~df.InvoiceNo.str.startswith("A") & ~((df.UnitPrice.astype(float) == 0) & (df.Quantity.astype(int) > 0))
    ]
    with_customer = accepted[accepted.CustomerID != ""]
    counts = with_customer.groupby(["CustomerID", "Country"]).size().reset_index(name="n")
    # Ties go to the first country in code-point order, as in the importer.
    country_of = counts.sort_values(["CustomerID", "n", "Country"], ascending=[True, False, True]).drop_duplicates(
        "CustomerID"
    )
    per_country = country_of.Country.value_counts()
    assert (per_country < 5).any() and (per_country >= 5).any()

    # When it is imported
    run = transactions_import(path=_write(real_rows, tmp_path / "slice.csv.gz"))

    # Then every region holds at least k customers and the achieved k is reported
    sizes = pd.Series(list(Customer.objects.values_list("region", flat=True))).value_counts()
    assert sizes.min() >= 5
    assert run.region_k == sizes.min()
    # And large countries stay themselves while small ones never appear
    regions = dict(Customer.objects.values_list("pseudonym", "region"))
    for raw_id, country in zip(country_of.CustomerID, country_of.Country, strict=True):
        region = regions[_pseudonym(raw_id)]
        if per_country[country] >= 5 and WIDER_REGION.get(country, OTHER) != OTHER:
            assert region == country
        else:
            assert region != country
    assert not set(sizes.index) & set(per_country[per_country < 5].index)


def _purchase_schema() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT 'index', indexname, indexdef FROM pg_indexes WHERE tablename = %(table)s
            UNION ALL
            SELECT 'constraint', conname, pg_get_constraintdef(oid) FROM pg_constraint
            WHERE conrelid = %(table)s::regclass
            ORDER BY 1, 2
            """,
            {"table": Purchase._meta.db_table},
        )
        return cursor.fetchall()


@pytest.mark.parametrize("fail", [False, True])
def test_bulk_load_restores_every_index_and_constraint(real_rows, tmp_path, monkeypatch, fail):
    """Rebuild the dropped indexes and constraints exactly, whether the bulk import succeeds or fails."""
    # Given a schema snapshot and bulk mode for any file size
    before = _purchase_schema()
    assert any("UNIQUE (line_key)" in row[2] for row in before)
    monkeypatch.setattr(merge, "BULK_MIN_ROWS", 1)
    if fail:

        def fail_regions(cur, **kwargs):
            raise RuntimeError("late failure")

        monkeypatch.setattr(regions, "regions_update", fail_regions)
    path = _write(real_rows, tmp_path / "slice.csv.gz")

    # When the slice is imported in bulk mode
    if fail:
        with pytest.raises(RuntimeError):
            transactions_import(path=path)
    else:
        run = transactions_import(path=path)

    # Then the schema is exactly as before, and a successful run has the usual counts
    assert _purchase_schema() == before
    if fail:
        assert Purchase.objects.count() == 0
    else:
        expected = _expected(real_rows)
        assert run.rows_inserted == len(expected["lines"]) == Purchase.objects.count()
        assert run.rows_duplicate == expected["rows_duplicate"]
        # And a second bulk import still dedupes against the stored lines
        assert transactions_import(path=path).rows_inserted == 0


# --------------------------------------------------------------------------- field rules


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


def test_field_rules_accept_reject_and_count_each_case(tmp_path):
    """Classify hand-written rows into the documented kinds and reasons (hand-computed counts)."""
    # Given 28 rows: 12 valid (3 of them restate row 1) and 16 rejected for different reasons
    path = _write(SYNTHETIC, tmp_path / "synthetic.csv")

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
    big = Purchase.objects.get(invoice=_invoice("900002"))
    assert (big.quantity, big.unit_price) == (1234, Decimal("1234.500"))
    assert Purchase.objects.get(invoice=_invoice("C900006")).quantity == -2
    write_off = Purchase.objects.get(invoice=_invoice("900007"))
    assert (write_off.kind, write_off.customer) == ("adjustment", None)
    # 99903 only occurs in a rejected row, so it is no customer
    assert set(Customer.objects.values_list("pseudonym", flat=True)) == {_pseudonym("99901"), _pseudonym("99902")}


def test_descriptions_that_look_like_formulas_are_stored_neutralized(tmp_path):
    """Store = + - @ descriptions with a leading single quote."""
    # Given rows whose descriptions start with = + - @
    transactions_import(path=_write(SYNTHETIC, tmp_path / "synthetic.csv"))

    # When their lines are read back
    raw = {_invoice(n): n for n in ["900009", "900010", "900011", "900012"]}
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
    transactions_import(path=_write(SYNTHETIC, tmp_path / "synthetic.csv"))

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
    first = Customer.objects.get(pseudonym=_pseudonym("99901"))
    assert (first.order_count, first.revenue) == (1, Decimal("10.20"))
    assert first.first_purchase_at == first.last_purchase_at == dt.datetime(2010, 12, 1, 8, 26, tzinfo=dt.UTC)
    second = Customer.objects.get(pseudonym=_pseudonym("99902"))
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
    transactions_import(path=_write(rows, tmp_path / "variants.csv"))

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
    path = _write(_dated(dates), tmp_path / "dates.csv")

    # When it is imported
    run = transactions_import(path=path)

    # Then the ambiguous line has the file's reading
    assert run.rows_rejected == 0
    line = Purchase.objects.get(invoice=_invoice(f"9100{dates.index('11/12/2010 10:30'):02d}"))
    assert line.occurred_at == expected_ambiguous.replace(tzinfo=LONDON)


def test_ambiguous_slash_dates_are_rejected_when_the_file_mixes_conventions(tmp_path):
    """Reject an ambiguous date when the file proves both day-first and month-first."""
    # Given a file with both conventions and an ambiguous date
    path = _write(_dated(["12/1/2010 8:26", "02/12/2010 08:26", "11/12/2010 10:30"]), tmp_path / "mixed.csv")

    # When it is imported
    run = transactions_import(path=path)

    # Then only the ambiguous row is rejected
    assert run.rejected_by_reason == {"ambiguous_date": 1}
    assert run.rows_inserted == 2


def test_rejected_rows_file_lists_each_row_with_reason_and_pseudonym(tmp_path, media_root):
    """Write rejected rows with their row number, raw values, pseudonym, reason and advice."""
    # Given the synthetic rows
    run = transactions_import(path=_write(SYNTHETIC, tmp_path / "synthetic.csv"))

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
    assert by_row["6"]["customer_pseudonym"] == _pseudonym("99902")
    assert by_row["6"]["Quantity"] == "1,5"
    assert by_row["6"]["invoice_pseudonym"] == _invoice("900003")
    assert by_row["13"]["reason"] == "invalid_customer_id"
    assert by_row["13"]["customer_pseudonym"] == ""
    assert by_row["12"]["Description"] == "'=CMD()"  # spreadsheet-safe
    assert by_row["18"]["UnitPrice"] == "-1.00"  # a number stays a number
    assert all(r["what_to_do"] for r in rows)
    assert by_row["15"]["reason"] == "missing_invoice"
    assert by_row["15"]["invoice_pseudonym"] == ""
    text = (media_root / run.rejected_rows_file).read_text()
    assert not re.search(r"\b(99901|99902|99903|12x45|900003|France)\b", text)


# --------------------------------------------------------------------------- bad files


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("wrong_columns.csv", "missing column(s): InvoiceNo, UnitPrice, CustomerID"),
        ("missing_column.csv", "missing column(s): Country"),
        ("extra_column.csv", "unexpected column(s): 'Notes'"),
        ("no_header.csv", "The first line is not the Online Retail header"),
        ("latin1.csv", "Line 4 is not valid UTF-8 (byte 0xA3"),
        ("utf16.csv", "UTF-16"),
        ("binary.csv", "binary"),
        ("empty.csv", "The file is empty"),
        ("header_only.csv", "no data rows"),
        ("semicolon.csv", "semicolon-separated"),
        ("unterminated_quote.csv", "Row 2 (starting at line 3): a quoted field is never closed"),
        ("wrong_field_count.csv", "Row 2 (line 3) has 9 fields instead of 8"),
        ("not_gzip.csv.gz", "not gzip-compressed"),
        ("truncated.csv.gz", "corrupt or truncated"),
    ],
)
def test_bad_file_fails_with_a_clear_message_and_writes_nothing(name, fragment, media_root):
    """Refuse a bad file as a whole, naming the problem; keep only the failed ImportRun."""
    # When a bad file is imported
    with pytest.raises(InvalidImportFile) as excinfo:
        transactions_import(path=BAD_FILES / name)

    # Then the message names the problem and what to do
    message = str(excinfo.value)
    assert fragment in message
    assert re.search(r"\b(Save|Export|Quote|Compress|Rename|Every|The first line must)\b", message)
    # And only the failed run is recorded
    run = ImportRun.objects.get()
    assert (run.status, run.error, run.file_name) == (ImportRun.Status.FAILED, message, name)
    assert run.finished_at is not None
    assert (Purchase.objects.count(), Customer.objects.count(), Product.objects.count()) == (0, 0, 0)
    assert not (media_root / "imports").exists() or not any((media_root / "imports").iterdir())
    assert "99901" not in message


def test_fifty_megabyte_single_line_fails_without_reading_it_whole(tmp_path):
    """Refuse a 50 MB line after reading 64 KiB of it."""
    # Given a header and one 50 MB line
    path = tmp_path / "one_line.csv"
    with path.open("w") as fh:
        fh.write(",".join(HEADER) + "\n")
        for _ in range(50):
            fh.write("x" * 1024 * 1024)

    # When it is imported
    with pytest.raises(InvalidImportFile, match=r"Line 2 is longer than 65,536 bytes"):
        transactions_import(path=path)

    # Then nothing but the failed run is written
    assert ImportRun.objects.get().status == ImportRun.Status.FAILED
    assert Purchase.objects.count() == 0


def test_missing_file_and_wrong_extension_fail_clearly(tmp_path):
    """Refuse a path that does not exist or is not .csv/.csv.gz."""
    with pytest.raises(InvalidImportFile, match="does not exist"):
        transactions_import(path=tmp_path / "nope.csv")
    other = tmp_path / "data.xlsx"
    other.write_bytes(b"PK")
    with pytest.raises(InvalidImportFile, match=r"not a \.csv or \.csv\.gz file"):
        transactions_import(path=other)
    assert list(ImportRun.objects.values_list("status", flat=True)) == [ImportRun.Status.FAILED] * 2


def test_bad_line_late_in_a_file_rolls_back_everything_before_it(real_rows, tmp_path):
    """Leave the database exactly as it was when a file fails after thousands of good rows."""
    # Given an imported first half, and a file with the second half followed by a Latin-1 line
    header, body = real_rows[0], real_rows[1:]
    transactions_import(path=_write([header, *body[:1200]], tmp_path / "first.csv"))
    before = _snapshot()
    bad = _write([header, *body[1200:]], tmp_path / "second.csv")
    with bad.open("ab") as fh:
        fh.write("900001,85123A,CAF\xc9 SIGN,1,2011-12-09 12:50:00,2.55,,France\n".encode("latin-1"))

    # When the bad file is imported
    with pytest.raises(InvalidImportFile, match=rf"Line {len(body) - 1200 + 2} is not valid UTF-8"):
        transactions_import(path=bad)

    # Then nothing changed and the failure is recorded
    assert _snapshot() == before
    assert list(ImportRun.objects.order_by("pk").values_list("status", flat=True)) == ["succeeded", "failed"]
    assert ImportRun.objects.filter(status="failed").get().rejected_rows_file == ""


def test_an_error_during_the_merge_rolls_back_everything(real_rows, tmp_path, monkeypatch, media_root):
    """Roll back purchases, products and customers when a late step fails, and record the error."""

    # Given a merge step that fails after purchases were inserted
    def fail(cur, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(regions, "regions_update", fail)

    # When a valid file is imported
    with pytest.raises(RuntimeError):
        transactions_import(path=_write(real_rows[:300], tmp_path / "slice.csv"))

    # Then nothing was kept but the failed run
    assert (Purchase.objects.count(), Customer.objects.count(), Product.objects.count()) == (0, 0, 0)
    run = ImportRun.objects.get()
    assert (run.status, run.error) == (ImportRun.Status.FAILED, "RuntimeError: disk on fire")
    assert not any((media_root / "imports").glob("*"))


# --------------------------------------------------------------------------- command


def test_command_prints_a_summary_and_defaults_to_the_configured_dataset(tmp_path, settings, media_root):
    """Run the command without a path; it imports ELM_DATASET_PATH and prints the summary."""
    # Given a configured dataset path
    settings.ELM_DATASET_PATH = _write(SYNTHETIC, tmp_path / "configured.csv.gz")
    out = io.StringIO()

    # When the command runs without a path
    call_command("import_transactions", stdout=out, stderr=io.StringIO())

    # Then the summary shows the counts, the rejected-rows file and the speed
    summary = out.getvalue()
    run = ImportRun.objects.get()
    assert run.file_name == "configured.csv.gz"
    for label, value in [("rows read", "28"), ("inserted", "9"), ("duplicates", "3"), ("rejected", "16")]:
        assert re.search(rf"{label}\s+{value}\b", summary), label
    assert re.search(r"invalid_date\s+3\b", summary)
    assert re.search(r"sale\s+10\b", summary)
    assert re.search(r"customers\s+2\b", summary) and re.search(r"products\s+4\b", summary)
    assert str(media_root / run.rejected_rows_file) in summary
    assert "rows/s" in summary and "region k" in summary


def test_command_reports_a_bad_file_as_a_command_error():
    """Turn InvalidImportFile into CommandError with the same explanation."""
    with pytest.raises(CommandError, match="semicolon-separated"):
        call_command(
            "import_transactions", str(BAD_FILES / "semicolon.csv"), stdout=io.StringIO(), stderr=io.StringIO()
        )
