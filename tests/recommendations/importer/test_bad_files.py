"""Bad files fail clearly and write nothing; the import_transactions command."""

from __future__ import annotations

import io
import re

import pytest
from django.core.management import CommandError, call_command

from recommendations.models import Customer, ImportRun, Product, Purchase
from recommendations.services import regions
from recommendations.services.importer import InvalidImportFile, transactions_import
from tests.recommendations.importer.support import BAD_FILES, HEADER, SYNTHETIC, db_snapshot, write_csv

pytestmark = pytest.mark.django_db(transaction=True)  # the importer manages its own transaction

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
    transactions_import(path=write_csv([header, *body[:1200]], tmp_path / "first.csv"))
    before = db_snapshot()
    bad = write_csv([header, *body[1200:]], tmp_path / "second.csv")
    with bad.open("ab") as fh:
        fh.write("900001,85123A,CAF\xc9 SIGN,1,2011-12-09 12:50:00,2.55,,France\n".encode("latin-1"))

    # When the bad file is imported
    with pytest.raises(InvalidImportFile, match=rf"Line {len(body) - 1200 + 2} is not valid UTF-8"):
        transactions_import(path=bad)

    # Then nothing changed and the failure is recorded
    assert db_snapshot() == before
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
        transactions_import(path=write_csv(real_rows[:300], tmp_path / "slice.csv"))

    # Then nothing was kept but the failed run
    assert (Purchase.objects.count(), Customer.objects.count(), Product.objects.count()) == (0, 0, 0)
    run = ImportRun.objects.get()
    assert (run.status, run.error) == (ImportRun.Status.FAILED, "RuntimeError: disk on fire")
    assert not any((media_root / "imports").glob("*"))


# --------------------------------------------------------------------------- command


def test_command_prints_a_summary_and_defaults_to_the_configured_dataset(tmp_path, settings, media_root):
    """Run the command without a path; it imports ELM_DATASET_PATH and prints the summary."""
    # Given a configured dataset path
    settings.ELM_DATASET_PATH = write_csv(SYNTHETIC, tmp_path / "configured.csv.gz")
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
