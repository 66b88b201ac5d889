"""The importer on a real slice of the data file: counts, aggregates, idempotency, privacy, indexes."""

from __future__ import annotations

import csv
import io
import logging
import re
from decimal import ROUND_HALF_UP, Decimal

import pandas as pd
import pytest
from django.core.management import call_command
from django.db import connection

from core.regions import OTHER, WIDER_REGION
from recommendations.models import Customer, ImportRun, Product, Purchase
from recommendations.services import regions
from recommendations.services.importer import merge, transactions_import
from tests.recommendations.importer.support import (
    HEADER,
    LONDON,
    cleaned,
    db_snapshot,
    expected_counts,
    pseudonym_of,
    write_csv,
)

pytestmark = pytest.mark.django_db(transaction=True)  # the importer manages its own transaction

# --------------------------------------------------------------------------- real data


def test_real_slice_counts_match_an_independent_computation(real_rows, tmp_path):
    """Import a real slice and get exactly the counts pandas derives from the same rows."""
    # Given a real slice with every class of dirty row
    path = write_csv(real_rows, tmp_path / "slice.csv.gz")
    expected = expected_counts(real_rows)
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
    assert set(Customer.objects.values_list("pseudonym", flat=True)) == {pseudonym_of(c) for c in expected["customers"]}
    assert run.file_sha256 and run.finished_at and not run.error


def test_real_slice_aggregates_match_an_independent_computation(real_rows, tmp_path):
    """Recompute product and customer aggregates with pandas and find the same values stored."""
    # Given a real slice and its distinct accepted lines
    lines = expected_counts(real_rows)["lines"].copy()
    lines["code"] = lines.StockCode.str.strip().str.upper()
    lines["description"] = lines.Description.map(cleaned)
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
    transactions_import(path=write_csv(real_rows, tmp_path / "slice.csv"))

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
        customer = customers[pseudonym_of(raw_id)]
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
    path = write_csv(real_rows, tmp_path / "slice.csv.gz")
    first = transactions_import(path=path)
    before = db_snapshot()

    # When the same file is imported again
    second = transactions_import(path=path)

    # Then nothing new is written and every count is the same
    assert second.rows_inserted == 0
    assert second.rows_duplicate == second.rows_accepted == first.rows_accepted
    assert second.rejected_by_reason == first.rejected_by_reason
    assert second.accepted_by_kind == first.accepted_by_kind
    assert (second.customers_total, second.products_total) == (first.customers_total, first.products_total)
    assert second.file_sha256 == first.file_sha256
    assert db_snapshot() == before


def test_overlapping_files_end_like_one_import_of_their_union(real_rows, tmp_path):
    """Import two overlapping files and get exactly what importing their union gives."""
    # Given two files sharing 500 rows
    header, body = real_rows[0], real_rows[1:]
    first_rows, second_rows = [header, *body[:1500]], [header, *body[1000:]]
    first_path = write_csv(first_rows, tmp_path / "first.csv.gz")
    second_path = write_csv(second_rows, tmp_path / "second.csv.gz")
    expected_first, expected_second = expected_counts(first_rows), expected_counts(second_rows)

    # When both are imported
    transactions_import(path=first_path)
    second = transactions_import(path=second_path)

    # Then the overlap is counted as duplicates of stored lines
    new_lines = expected_second["lines"].merge(expected_first["lines"], how="left", indicator=True)
    new_count = int((new_lines["_merge"] == "left_only").sum())
    assert second.rows_inserted == new_count
    assert second.rows_duplicate == second.rows_accepted - new_count
    assert Purchase.objects.count() == len(expected_counts(real_rows)["lines"])
    # Regions are left out: a customer generalized by an earlier file keeps its group, because the
    # country behind it is not stored (see recommendations.services.regions).
    overlapping = db_snapshot(regions=False)

    # And the result equals one import of the union
    Purchase.objects.all().delete()
    Customer.objects.all().delete()
    Product.objects.all().delete()
    transactions_import(path=write_csv(real_rows, tmp_path / "union.csv.gz"))
    assert db_snapshot(regions=False) == overlapping


def test_no_raw_customer_id_is_stored_printed_or_logged(real_rows, tmp_path, media_root, caplog):
    """Search every text column, the rejected-rows file, output and logs for raw CustomerIDs."""
    # Given a real slice whose raw ids do not otherwise occur in it (e.g. as a stock code)
    raw_ids = {row[6] for row in real_rows[1:] if row[6]}
    other_tokens = {t for row in real_rows[1:] for i, f in enumerate(row) if i != 6 for t in re.findall(r"\d+", f)}
    raw_ids -= other_tokens
    assert len(raw_ids) > 100
    pattern = r"\m(" + "|".join(sorted(raw_ids)) + r")\M"
    path = write_csv(real_rows, tmp_path / "slice.csv.gz")
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
        assert r["customer_pseudonym"] == (pseudonym_of(raw) if raw else "")


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
    run = transactions_import(path=write_csv(real_rows, tmp_path / "slice.csv.gz"))

    # Then every region holds at least k customers and the achieved k is reported
    sizes = pd.Series(list(Customer.objects.values_list("region", flat=True))).value_counts()
    assert sizes.min() >= 5
    assert run.region_k == sizes.min()
    # And large countries stay themselves while small ones never appear
    regions = dict(Customer.objects.values_list("pseudonym", "region"))
    for raw_id, country in zip(country_of.CustomerID, country_of.Country, strict=True):
        region = regions[pseudonym_of(raw_id)]
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
    path = write_csv(real_rows, tmp_path / "slice.csv.gz")

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
        expected = expected_counts(real_rows)
        assert run.rows_inserted == len(expected["lines"]) == Purchase.objects.count()
        assert run.rows_duplicate == expected["rows_duplicate"]
        # And a second bulk import still dedupes against the stored lines
        assert transactions_import(path=path).rows_inserted == 0
