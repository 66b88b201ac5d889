"""The importer's privacy rules (issue #14): keyed identifiers, personal data in free text, regions, overflow."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from django.db import connection

from core.pseudonyms import line_key, pseudonym_key, pseudonymize, pseudonymize_invoice
from core.regions import OTHER, WIDER_REGION
from recommendations.models import Customer, ImportRun, Product, Purchase
from recommendations.services.importer import InvalidImportFile, transactions_import

pytestmark = pytest.mark.django_db(transaction=True)  # the importer manages its own transaction

HEADER = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
FIRST_ROWS, NEXT_ROWS = 4000, 2000  # the incremental import: the next 2,000 rows after a first slice


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="module")
def head_rows() -> list[list[str]]:
    from django.conf import settings

    path = Path(settings.ELM_DATASET_PATH)
    if not path.exists():
        pytest.skip(f"the dataset is not at {path}")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == HEADER
        return [row for _, row in zip(range(FIRST_ROWS + NEXT_ROWS), reader, strict=False)]


def _write(rows: list[list[str]], path: Path) -> Path:
    with path.open("w", encoding="utf-8", newline="") as fh:
        csv.writer(fh, lineterminator="\n").writerows([HEADER, *rows])
    return path


# --------------------------------------------------------------------------- keyed identifiers


def test_invoices_and_line_keys_are_keyed_pseudonyms(head_rows, tmp_path):
    """Store no source invoice number and no line key that the public file alone could recompute."""
    # Given a real slice with sales and cancellations
    rows = head_rows[:1500]
    raw_invoices = {r[0] for r in rows}
    assert any(i.startswith("C") for i in raw_invoices)

    # When it is imported
    transactions_import(path=_write(rows, tmp_path / "slice.csv"))

    # Then every stored invoice is the keyed pseudonym of a source invoice, and none is a source invoice
    key = pseudonym_key()
    stored = set(Purchase.objects.values_list("invoice", flat=True))
    assert stored <= {pseudonymize_invoice(i, key=key) for i in raw_invoices}
    assert not stored & raw_invoices
    # And a cancellation keeps its C (its kind says so anyway), a sale has no prefix
    assert {i[0] for i in stored if i.startswith("C")} == {"C"}
    assert Purchase.objects.filter(kind="return").exclude(invoice__startswith="C").count() == 0
    # And line keys are keyed: the old unkeyed MD5 over the same values matches none of them
    line = Purchase.objects.select_related("product", "customer").order_by("id").first()
    source = next(
        r for r in rows if pseudonymize_invoice(r[0], key=key) == line.invoice and r[1] == line.product.stock_code
    )
    local = line.occurred_at.astimezone(ZoneInfo("Europe/London")).strftime("%Y-%m-%d %H:%M:%S")
    fields = (source[0], source[1], line.description, str(line.quantity), f"{line.unit_price:f}", local,
              line.customer.pseudonym if line.customer else "")  # fmt: skip
    assert line.line_key == line_key(fields, key=key)
    unkeyed = hashlib.md5("\x1f".join(fields).encode(), usedforsecurity=False).hexdigest()
    assert not Purchase.objects.filter(line_key=unkeyed).exists()


def test_another_key_gives_other_pseudonyms(head_rows, tmp_path, monkeypatch):
    """Pseudonyms depend on the deployment's key: the same file under another key shares no identifier."""
    # Given a slice imported under the test key
    rows = head_rows[:300]
    transactions_import(path=_write(rows, tmp_path / "slice.csv"))
    first = set(Purchase.objects.values_list("invoice", "line_key", "customer__pseudonym"))
    Purchase.objects.all().delete()
    Customer.objects.all().delete()

    # When the same rows are imported under another key
    monkeypatch.setenv("ELM_PSEUDONYM_KEY", "another-deployment-key")
    transactions_import(path=_write(rows, tmp_path / "again.csv"))

    # Then no invoice, line key or customer pseudonym is the same
    second = set(Purchase.objects.values_list("invoice", "line_key", "customer__pseudonym"))
    for index in range(3):
        assert not {v[index] for v in first if v[index]} & {v[index] for v in second if v[index]}


# --------------------------------------------------------------------------- personal data in free text


def test_personal_data_in_descriptions_is_scrubbed_quarantined_and_reported(media_root):
    """Store scrubbed text only, hold the products back, list them in the run; the raw text is nowhere."""
    # Given a file with personal data typed into descriptions and an e-mail as a stock code
    path = BAD / "pii_descriptions.csv"
    secrets = ["SARAH MITCHELL", "07700 900123", "john at example", "4111 1111 1111 1111", "GB29 NWBK",
               "12 Baker Street", "田中", "JOHN@EXAMPLE.COM"]  # fmt: skip

    # When it is imported
    run = transactions_import(path=path)

    # Then the products whose descriptions held personal data are quarantined, with the kinds found
    quarantined = dict(Product.objects.filter(pii_quarantined=True).values_list("stock_code", "pii_codes"))
    assert quarantined == {
        "99001": ["pii:person"],
        "99002": ["pii:phone"],
        "99003": ["pii:email"],
        "99004": ["pii:card"],
        "99005": ["pii:iban"],
        "99006": ["pii:address"],
        "99007": ["pii:person"],
    }
    assert not Product.objects.get(stock_code="85123A").pii_quarantined
    # And the run reports them: the kinds, per row, and the stock codes held back; the stock code row is rejected
    assert run.pii_by_type == {"pii:address": 1, "pii:card": 1, "pii:email": 1, "pii:iban": 1, "pii:person": 2,
                               "pii:phone": 1}  # fmt: skip
    assert run.quarantined_products == sorted(quarantined)
    assert run.rejected_by_reason == {"personal_data_in_stock_code": 1}
    # And the personal data is nowhere: not in the database, not in the report
    report = (media_root / run.rejected_rows_file).read_text(encoding="utf-8")
    assert "<EMAIL>" in report
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT description FROM recommendations_product UNION ALL SELECT description FROM recommendations_purchase"
            " UNION ALL SELECT stock_code FROM recommendations_product"
        )
        stored = "\n".join(row[0] for row in cursor.fetchall())
    for secret in secrets:
        assert secret.lower() not in stored.lower(), secret
        assert secret.lower() not in report.lower(), secret


def test_a_reimport_keeps_a_cleared_product_cleared_unless_new_personal_data_arrives(tmp_path):
    """Quarantine is only ever set by an import; a product with clean lines stays as the reviewer left it."""
    # Given a quarantined product that a reviewer cleared
    transactions_import(path=BAD / "pii_descriptions.csv")
    Product.objects.filter(stock_code="99001").update(pii_quarantined=False, pii_codes=[])

    # When a file with only clean lines of it is imported
    clean = [["938101", "99001", "GIFT TAG", "1", "2010-12-02 08:00:00", "1.25", "99938", "United Kingdom"]]
    transactions_import(path=_write(clean, tmp_path / "clean.csv"))
    # Then it stays cleared; but a new line with personal data quarantines it again
    assert not Product.objects.get(stock_code="99001").pii_quarantined
    dirty = [["938102", "99001", "GIFT TAG FOR AOIFE BYRNE", "1", "2010-12-03 08:00:00", "1.25", "99938", "Ireland"]]
    transactions_import(path=_write(dirty, tmp_path / "dirty.csv"))
    assert Product.objects.get(stock_code="99001").pii_quarantined


# --------------------------------------------------------------------------- regions


def _true_countries(rows: list[list[str]]) -> dict[str, set[str]]:
    countries: dict[str, set[str]] = {}
    for row in rows:
        if row[6]:
            countries.setdefault(pseudonymize(row[6], key=pseudonym_key()), set()).add(row[7])
    return countries


def test_an_incremental_import_never_names_a_wrong_country_and_keeps_k(head_rows, tmp_path, settings):
    """Import the next 2,000 rows after a first slice: every region is true of its customer, each holds >= k."""
    # Given a first slice imported, then the next 2,000 rows (new Danish, Spanish, ... customers among them)
    settings.ELM_REGION_MIN_K = 5
    first, following = head_rows[:FIRST_ROWS], head_rows[FIRST_ROWS:]
    new_countries = {r[7] for r in following if r[6]} - {r[7] for r in first if r[6]}
    assert new_countries, "the next rows bring customers of new countries"
    transactions_import(path=_write(first, tmp_path / "first.csv"))

    # When the next rows are imported
    run = transactions_import(path=_write(following, tmp_path / "next.csv"))

    # Then every customer's region is its country, the wider region of its country, or OTHER
    truth = _true_countries(head_rows)
    wrong = {}
    for pseudonym, region in Customer.objects.values_list("pseudonym", "region"):
        allowed = {OTHER} | truth[pseudonym] | {WIDER_REGION.get(c, OTHER) for c in truth[pseudonym]}
        if region not in allowed:
            wrong[pseudonym] = (region, truth[pseudonym])
    assert wrong == {}
    # And every region holds at least k customers, as reported
    sizes = {}
    for region in Customer.objects.values_list("region", flat=True):
        sizes[region] = sizes.get(region, 0) + 1
    assert min(sizes.values()) >= 5
    assert run.region_k == min(sizes.values())


# --------------------------------------------------------------------------- numbers beyond the columns


def test_lines_that_add_up_beyond_the_revenue_column_fail_the_import_clearly(tmp_path):
    """Refuse, with the customer's pseudonym and what to check, a customer whose lines overflow revenue."""
    # Given 1,100 lines of one customer, each just within the line limit (1,000,000,000)
    rows = [[f"9390{n:02d}", "85123A", "WHITE HANGING HEART", "1000000", "2010-12-01 08:26:00", "999.999", "99939",
             "United Kingdom"] for n in range(1100)]  # fmt: skip

    # When the file is imported
    with pytest.raises(InvalidImportFile) as excinfo:
        transactions_import(path=_write(rows, tmp_path / "huge.csv"))

    # Then the message names the customer by pseudonym and says what to check, and nothing was kept
    assert pseudonymize("99939", key=pseudonym_key()) in str(excinfo.value)
    assert "check their quantities and prices" in str(excinfo.value)
    assert (Purchase.objects.count(), Customer.objects.count()) == (0, 0)
    run = ImportRun.objects.get()
    assert (run.status, run.error) == (ImportRun.Status.FAILED, str(excinfo.value))


def test_a_lower_case_header_is_the_header(tmp_path):
    """Accept the header in any case; a wrong header says case does not matter."""
    rows = [["937101", "85123A", "WHITE HANGING HEART", "6", "2010-12-01 08:26:00", "2.55", "99937", "France"]]
    path = tmp_path / "lower.csv"
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([[h.lower() for h in HEADER], *rows])
    path.write_text(text.getvalue())
    assert transactions_import(path=path).rows_inserted == 1
    path.write_text(text.getvalue().replace("country", "Land"))
    with pytest.raises(InvalidImportFile, match=r"missing column\(s\): Country.*case does not matter"):
        transactions_import(path=path)


def test_an_import_runs_on_a_connection_that_used_a_temporary_table_before(tmp_path):
    """A pooled connection (a worker that embedded vectors first) still imports: temp_buffers is best effort."""
    # Given a fresh database session that has used a temporary table (as recommendations.vectors does)
    connection.close()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE elm_probe (x int)")
        cursor.execute("INSERT INTO elm_probe VALUES (1)")  # touching its buffers fixes temp_buffers
        cursor.execute("DROP TABLE elm_probe")
    rows = [["937201", "85123A", "WHITE HANGING HEART", "6", "2010-12-01 08:26:00", "2.55", "99937", "France"]]
    # When a file is imported on it / Then it succeeds
    assert transactions_import(path=_write(rows, tmp_path / "one.csv")).rows_inserted == 1
