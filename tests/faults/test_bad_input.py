"""The bad-input corpus (tests/data/bad/): each case is refused with a clear message or accepted as documented.

Every file of the corpus has exactly one entry below (a test fails for a file without one). A refused
file writes nothing but its failed ImportRun; an accepted file stores exactly its good rows and lists
every other row, with its row and line number and reason, in the rejected-rows report.
"""

from __future__ import annotations

import csv
import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from core.pseudonyms import pseudonym_key, pseudonymize_invoice
from recommendations.models import Customer, ImportRun, Product, Purchase
from recommendations.services.importer import InvalidImportFile, transactions_import

pytestmark = pytest.mark.django_db(transaction=True)  # the importer manages its own transaction

BAD = Path(__file__).resolve().parent.parent / "data" / "bad"
LONDON = ZoneInfo("Europe/London")

# The case -> the corpus file and the fragment the error message must contain.
REFUSED = {
    "wrong header (another layout)": ("wrong_columns.csv", "missing column(s): InvoiceNo, UnitPrice, CustomerID"),
    "wrong header (a data row)": ("no_header.csv", "The first line is not the Online Retail header"),
    "missing columns": ("missing_column.csv", "missing column(s): Country"),
    "extra columns": ("extra_column.csv", "unexpected column(s): 'Notes'"),
    "semicolon-separated": ("semicolon.csv", "semicolon-separated"),
    "Latin-1": ("latin1.csv", "Line 4 is not valid UTF-8 (byte 0xA3"),
    "UTF-16 with BOM": ("utf16.csv", "UTF-16"),
    "UTF-16 without BOM": ("utf16_no_bom.csv", "UTF-16"),
    "binary": ("binary.csv", "binary"),
    "empty": ("empty.csv", "The file is empty"),
    "header only": ("header_only.csv", "no data rows"),
    "quote that never closes": ("unterminated_quote.csv", "Row 2 (starting at line 3): a quoted field is never closed"),
    "a row with an extra field": ("wrong_field_count.csv", "Row 2 (line 3) has 9 fields instead of 8"),
    "not gzip although .gz": ("not_gzip.csv.gz", "not gzip-compressed"),
    "truncated gzip": ("truncated.csv.gz", "corrupt or truncated"),
}

# The case -> the corpus file, the rows stored, and the rejected rows as (row, line, reason).
ACCEPTED = {
    "dates in three formats": (
        "dates_three_formats.csv",
        {
            "930001": dt.datetime(2010, 12, 1, 8, 26),  # ISO
            "930002": dt.datetime(2010, 12, 1, 8, 26),  # M/D/YYYY H:MM (month first)
            "930003": dt.datetime(2010, 12, 13, 9, 5),  # DD/MM/YYYY HH:MM (day first)
        },
        [(4, 5, "ambiguous_date"), (5, 6, "invalid_date"), (6, 7, "invalid_date")],
    ),
    "numbers with thousands separators": (
        "thousands_separators.csv",
        {"931001": (1234, "2.550"), "931002": (2, "1234.500")},
        [(3, 4, "invalid_quantity"), (4, 5, "invalid_price"), (5, 6, "invalid_quantity"), (6, 7, "invalid_quantity")],
    ),
    "non-numeric quantities": (
        "non_numeric_quantity.csv",
        {"932006": (6, "7.650")},
        [(n, n + 1, "invalid_quantity") for n in range(1, 6)],
    ),
    "formulas in descriptions": (
        "formula_description.csv",
        {
            "933001": '\'=HYPERLINK("http://example.test/x","click")',
            "933002": "'+SUM(A1:A9)",
            "933003": "'-2+3",
            "933004": "'@cmd",
            "933006": "SET 7 BABUSHKA NESTING BOXES",
        },
        [(5, 6, "invalid_quantity")],
    ),
    "a quoted line break in a description": (
        "multiline_description.csv",
        {"934001": "WHITE HANGING HEART T-LIGHT HOLDER", "934003": "CREAM CUPID HEARTS COAT HANGER"},
        [(2, 4, "negative_price")],  # row 2 starts on line 4: row 1 spans lines 2-3
    ),
    "a line amount beyond any column (Quantity 2147483647 x UnitPrice 999999.999)": (
        "overflow_amount.csv",
        {"936001": (6, "2.550"), "936004": (2147483647, "0.001")},
        [(2, 3, "amount_out_of_range"), (3, 4, "amount_out_of_range")],
    ),
    "a lower-case header": (
        "lowercase_header.csv",
        {"937001": "WHITE HANGING HEART T-LIGHT HOLDER"},
        [],
    ),
    "personal data in descriptions and a stock code": (
        "pii_descriptions.csv",
        {
            "938001": "WHITE HANGING HEART T-LIGHT HOLDER",
            "938002": "GIFT TAG FOR <PERSON>",
            "938003": "call <PHONE> before delivery",
            "938004": "send to <EMAIL>",
            "938005": "paid with card <CARD>",
            "938006": "refund IBAN <IBAN>",
            "938007": "deliver to <ADDRESS> London",  # a town alone is not personal data
            "938008": "<PERSON>様へのギフト",
        },
        [(9, 10, "personal_data_in_stock_code")],
    ),
    "UTF-8 with BOM and CRLF line ends": (
        "crlf_bom.csv",
        {"935001": "WHITE HANGING HEART T-LIGHT HOLDER", "935002": "WHITE METAL LANTERN"},
        [],
    ),
}


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def test_every_corpus_file_has_a_documented_outcome():
    """Fail for a file in tests/data/bad/ without an expected outcome here (and for an entry without a file)."""
    named = {name for name, _ in REFUSED.values()} | {entry[0] for entry in ACCEPTED.values()}
    assert named == {p.name for p in BAD.iterdir() if p.is_file()}


@pytest.mark.parametrize("case", list(REFUSED))
def test_refused_file_names_the_problem_and_writes_nothing(case, media_root):
    """Refuse the file as a whole with its message; keep only the failed run, no rows and no report."""
    name, fragment = REFUSED[case]
    with pytest.raises(InvalidImportFile) as excinfo:
        transactions_import(path=BAD / name)
    assert fragment in str(excinfo.value)
    run = ImportRun.objects.get()
    assert (run.status, run.error) == (ImportRun.Status.FAILED, str(excinfo.value))
    assert (Purchase.objects.count(), Product.objects.count(), Customer.objects.count()) == (0, 0, 0)
    assert not (media_root / "imports").exists() or not any((media_root / "imports").iterdir())


def test_a_fifty_megabyte_single_line_is_refused_after_64_kib(tmp_path):
    """Refuse a 50 MB line (generated here, never committed) without reading it whole."""
    path = tmp_path / "one_line.csv"
    with path.open("w") as fh:
        fh.write("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n")
        fh.write('9,85123A,"' + "x" * (50 * 1024 * 1024) + '",1,2010-12-01 08:26:00,2.55,,United Kingdom\n')
    with pytest.raises(InvalidImportFile, match=r"Line 2 is longer than 65,536 bytes"):
        transactions_import(path=path)
    assert ImportRun.objects.get().status == ImportRun.Status.FAILED
    assert Purchase.objects.count() == 0


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_accepted_file_stores_its_good_rows_and_reports_every_other_row(case, media_root):
    """Store exactly the good rows; list each rejected row with its row, line and reason."""
    name, stored, rejected = ACCEPTED[case]

    run = transactions_import(path=BAD / name)

    assert run.status == ImportRun.Status.SUCCEEDED
    assert run.rows_read == len(stored) + len(rejected)
    assert run.rows_inserted == len(stored) == Purchase.objects.count()
    key = pseudonym_key()
    assert set(Purchase.objects.values_list("invoice", flat=True)) == {pseudonymize_invoice(i, key=key) for i in stored}
    for invoice, expected in stored.items():
        line = Purchase.objects.get(invoice=pseudonymize_invoice(invoice, key=key))
        if isinstance(expected, dt.datetime):
            assert line.occurred_at == expected.replace(tzinfo=LONDON), invoice
        elif isinstance(expected, tuple):
            assert (line.quantity, f"{line.unit_price:f}") == expected, invoice
        else:
            assert line.description == expected, invoice
    assert run.rows_rejected == len(rejected)
    if not rejected:
        assert run.rejected_rows_file == ""
        return
    with (media_root / run.rejected_rows_file).open(encoding="utf-8", newline="") as fh:
        report = list(csv.DictReader(fh))
    assert [(int(r["row"]), int(r["line"]), r["reason"]) for r in report] == rejected
    assert all(r["what_to_do"] for r in report)
    # A formula in a rejected row is neutralized in the report, too
    assert not any(value.startswith(("=", "+", "@")) for r in report for value in r.values())
