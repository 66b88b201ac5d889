"""Import an Online Retail transaction file (.csv or .csv.gz) in one transaction.

The file is streamed line by line: each row is parsed and classified in Python (see ``cleaning``),
valid rows are COPYed into a temporary staging table, rejected rows go to a CSV under
MEDIA_ROOT/imports/, and everything else is set-based SQL: products, customers and purchase lines are
merged with INSERT ... SELECT ... ON CONFLICT DO NOTHING (``Purchase.line_key`` makes re-imports and
overlapping files idempotent), then the aggregates of the touched products and customers are
recomputed and the customers' regions are generalized to k-anonymous groups.

A file that cannot be read as a whole (wrong header, encoding, quoting, ...) raises InvalidImportFile;
then nothing is written except the ImportRun that records the failure.

The raw CustomerID never leaves ``LineCleaner``: only its keyed pseudonym is staged, stored, and
written to the rejected-rows file. Countries live only in the staging table, which is dropped at commit.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import logging
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg import sql
from psycopg.copy import QueuedLibpqWriter

from core.pseudonyms import pseudonym_key, pseudonymize
from core.regions import WIDER_REGION, generalize
from recommendations.models import Customer, ImportRun, Product, Purchase
from recommendations.services.cleaning import (
    COUNTRY,
    CUSTOMER_ID,
    DAY_FIRST,
    EXPECTED_HEADER,
    INVOICE_DATE,
    MERCHANDISE_PATTERN,
    MONTH_FIRST,
    REJECT_REASONS,
    Kind,
    LineCleaner,
    RowRejected,
    slash_date_evidence,
)

logger = logging.getLogger(__name__)

_SNIFF_BYTES = 4096
MAX_LINE_BYTES = 64 * 1024  # real lines are < 200 bytes; a longer one means this is not line-based CSV
PROGRESS_EVERY_ROWS = 10_000
# A load of at least this many lines, and this share of the stored ones, rebuilds indexes instead.
BULK_MIN_ROWS = 50_000
BULK_MIN_SHARE = 0.25
RECORD_FAILURE_WAIT_SECONDS = 30  # how long a failed import waits for a restarting database to record it
_LOCK_KEY = 0x454C4D494D504F52  # "ELMIMPOR": one import at a time, so merges never interleave
_HEADER_TEXT = ",".join(EXPECTED_HEADER)
_SAFE_COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z _-]{0,39}$")  # never echo anything that could be data


class InvalidImportFile(Exception):
    """The file as a whole cannot be imported; the message names the problem and what to do."""


@dataclass(frozen=True)
class ImportProgress:
    phase: str
    bytes_read: int
    bytes_total: int
    rows_read: int


def transactions_import(*, path: Path, progress: Callable[[ImportProgress], None] | None = None) -> ImportRun:
    """Import a transaction file in one transaction and return its ImportRun (raises InvalidImportFile)."""
    path = Path(path)
    _interrupted_runs_fail()
    run = ImportRun.objects.create(file_name=path.name[-255:], file_sha256="")
    rejected = _RejectedRowsFile(run_id=run.pk)
    try:
        run.file_sha256 = _file_sha256(path)
        with transaction.atomic():
            _import(run=run, path=path, rejected=rejected, progress=progress or (lambda _: None))
    except BaseException as exc:
        rejected.discard()
        error = str(exc) if isinstance(exc, InvalidImportFile) else f"{type(exc).__name__}: {exc}"
        _run_failure_record(run=run, error=error)
        logger.warning("Import run %s of %s failed: %s", run.pk, run.file_name, error)
        raise
    # Finished after the commit, so the run's duration includes it.
    ImportRun.objects.filter(pk=run.pk).update(finished_at=timezone.now())
    run.refresh_from_db()
    return run


def _run_failure_record(*, run: ImportRun, error: str) -> None:
    """Mark the run failed; when the database itself went away, wait a little for it to come back."""
    deadline = time.monotonic() + RECORD_FAILURE_WAIT_SECONDS
    while True:
        try:
            ImportRun.objects.filter(pk=run.pk).update(
                status=ImportRun.Status.FAILED, finished_at=timezone.now(), file_sha256=run.file_sha256, error=error
            )
            return
        except DatabaseError:
            connection.close()  # a broken connection is not reused; the next query reconnects
            if time.monotonic() > deadline:
                # The next import marks the run failed (see _interrupted_runs_fail); nothing of it was kept.
                logger.exception("Import run %s failed and the failure could not be recorded", run.pk)
                return
            time.sleep(1)


def _interrupted_runs_fail() -> int:
    """Mark failed the runs left running by an import whose process or database stopped; return how many.

    A run is only "running" while its import holds the import lock, so when the lock is free every
    running run is stale. Its transaction was rolled back: nothing of it was kept.
    """
    with connection.cursor() as cur:
        cur.execute("SELECT pg_try_advisory_lock(%s)", [_LOCK_KEY])
        if not cur.fetchone()[0]:
            return 0  # an import is running now
        try:
            return ImportRun.objects.filter(status=ImportRun.Status.RUNNING).update(
                status=ImportRun.Status.FAILED,
                finished_at=timezone.now(),
                error="Interrupted: the import process or the database stopped before the import finished. "
                "Nothing of it was kept; import the file again.",
            )
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


# --------------------------------------------------------------------------- reading


def _file_sha256(path: Path) -> str:
    if not path.exists():
        raise InvalidImportFile(f"{path} does not exist. Check the path (default: settings.ELM_DATASET_PATH).")
    if not path.is_file():
        raise InvalidImportFile(f"{path} is not a file. Give the path of a .csv or .csv.gz file.")
    name = path.name.lower()
    if not (name.endswith(".csv") or name.endswith(".csv.gz")):
        raise InvalidImportFile(f"{path.name} is not a .csv or .csv.gz file. Export the data as CSV (UTF-8).")
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class _Source:
    """The decoded lines of a (possibly gzipped) file, with checks that name the line at fault."""

    def __init__(self, path: Path):
        self.path = path
        self.bytes_total = path.stat().st_size
        self._raw = path.open("rb")
        magic = self._raw.read(2)
        self._raw.seek(0)
        if magic == b"\x1f\x8b":
            self._stream = gzip.GzipFile(fileobj=self._raw, mode="rb")
        elif path.name.lower().endswith(".gz"):
            self._raw.close()
            raise InvalidImportFile(
                f"{path.name} is named .gz but is not gzip-compressed. Rename it to .csv or compress it with gzip."
            )
        else:
            self._stream = self._raw
        self.line_no = 0

    def __enter__(self) -> _Source:
        return self

    def __exit__(self, *exc_info) -> None:
        self._stream.close()
        self._raw.close()

    @property
    def bytes_read(self) -> int:
        return self._raw.tell()

    def lines(self) -> Iterator[str]:
        readline = self._stream.readline
        try:
            _check_start(self._stream.peek(_SNIFF_BYTES)[:_SNIFF_BYTES])
        except (OSError, EOFError, zlib.error) as exc:
            raise self._corrupt(exc) from exc
        while True:
            try:
                raw = readline(MAX_LINE_BYTES + 1)
            except (OSError, EOFError, zlib.error) as exc:
                raise self._corrupt(exc) from exc
            if not raw:
                return
            self.line_no += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                raise InvalidImportFile(
                    f"Line {self.line_no} is longer than {MAX_LINE_BYTES:,} bytes. This is not a line-based CSV "
                    "export (or a line break is missing); export the data as CSV with one row per line."
                )
            if self.line_no == 1:
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark is harmless
            if b"\x00" in raw:
                raise InvalidImportFile(
                    f"Line {self.line_no} contains NUL bytes: the file is binary or UTF-16, not a UTF-8 CSV. "
                    "Export the data as CSV UTF-8."
                )
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidImportFile(
                    f"Line {self.line_no} is not valid UTF-8 (byte 0x{raw[exc.start]:02X} at position "
                    f"{exc.start + 1}); the file is probably Latin-1/Windows-1252 encoded. "
                    "Save it as CSV UTF-8 and import again."
                ) from exc

    def _corrupt(self, exc: Exception) -> InvalidImportFile:
        return InvalidImportFile(
            f"The gzip data is corrupt or truncated after line {self.line_no} ({exc}). "
            "Compress the CSV again or fetch a complete copy."
        )


def _check_start(sample: bytes) -> None:
    """Recognize UTF-16 and binary files from their first bytes, before any line is parsed."""
    half = len(sample) // 4
    if sample.startswith((b"\xff\xfe", b"\xfe\xff")) or (
        half and max(sample[::2].count(0), sample[1::2].count(0)) > half
    ):
        raise InvalidImportFile("The file is UTF-16 encoded. Save it as CSV UTF-8 and import again.")
    controls = sum(1 for byte in sample if byte < 9 or 13 < byte < 32)
    if b"\x00" in sample or controls > len(sample) // 50:
        raise InvalidImportFile(
            "The file is binary, not a CSV text file. Export the data as CSV UTF-8 (optionally gzip-compressed)."
        )


def _read_header(reader: Iterator[list[str]]) -> None:
    for row in reader:
        if row:
            break
    else:
        raise InvalidImportFile(f"The file is empty. Export the transactions with the header line {_HEADER_TEXT}.")
    names = [name.strip() for name in row]
    if tuple(names) == EXPECTED_HEADER:
        return
    raise InvalidImportFile(_header_problem(names) + f" The first line must be exactly: {_HEADER_TEXT}")


def _header_problem(names: list[str]) -> str:
    if len(names) == 1:
        for separator, label in ((";", "semicolon"), ("\t", "tab")):
            if separator in names[0]:
                return f"The file is {label}-separated. Export it with commas (,) as the separator."
    if not set(names) & set(EXPECTED_HEADER):
        return "The first line is not the Online Retail header (it may be a data row, or another file)."
    missing = [n for n in EXPECTED_HEADER if n not in names]
    unexpected = [
        repr(n) if _SAFE_COLUMN_NAME.match(n) else f"column {i + 1} (name not shown)"
        for i, n in enumerate(names)
        if n not in EXPECTED_HEADER
    ]
    parts = []
    if missing:
        parts.append("missing column(s): " + ", ".join(missing))
    if unexpected:
        parts.append("unexpected column(s): " + ", ".join(unexpected))
    if not parts and len(names) != len(set(names)):
        parts.append("duplicated column(s): " + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    if not parts:
        parts.append("the columns are in the wrong order")
    return "The header is wrong: " + "; ".join(parts) + " (names are case-sensitive)."


def _csv_problem(exc: csv.Error) -> str:
    if "unexpected end of data" in str(exc) or "field larger than field limit" in str(exc):
        return (
            'a quoted field is never closed (unterminated quote). Every field that starts with " must end '
            'with "; a quote inside a field is written as "".'
        )
    return f'the quoting is malformed ({exc}). A quote inside a field is written as "" and the field quoted.'


def _slash_convention(path: Path) -> Callable[[], str | None]:
    """Return a function that pre-scans the file's InvoiceDates for the day/month order (see cleaning)."""

    def scan() -> str | None:
        seen: set[str] = set()
        with _Source(path) as source:
            for row in csv.reader(source.lines(), strict=True):
                if len(row) > INVOICE_DATE and (evidence := slash_date_evidence(row[INVOICE_DATE])):
                    seen.add(evidence)
                    if len(seen) == 2:
                        return None
        return DAY_FIRST if seen == {DAY_FIRST} else MONTH_FIRST

    return scan


# --------------------------------------------------------------------------- rejected rows


def _spreadsheet_safe(value: str) -> str:
    """Neutralize raw text that a spreadsheet would run as a formula (plain numbers stay as they are)."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.fullmatch(r"[+-]?[\d,]*\.?\d+", value):
        return "'" + value
    return value


class _RejectedRowsFile:
    HEADER = (
        "row",
        "line",
        "InvoiceNo",
        "StockCode",
        "Description",
        "Quantity",
        "InvoiceDate",
        "UnitPrice",
        "customer_pseudonym",
        "Country",
        "reason",
        "what_to_do",
    )

    def __init__(self, *, run_id: int):
        # The timestamp keeps names unique even where run ids restart (a recreated database).
        self.relative_path = f"imports/import-{run_id}-{timezone.now():%Y%m%d-%H%M%S}-rejected.csv"
        self.path = Path(settings.MEDIA_ROOT) / self.relative_path
        self._fh = None
        self._writer = None

    def write(self, *, row_no: int, line_no: int, row: list[str], pseudonym: str, reason: str) -> None:
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(self.HEADER)
        # The raw CustomerID (row[CUSTOMER_ID]) is never written: its pseudonym takes its place.
        raw = [*row[:CUSTOMER_ID], pseudonym, row[COUNTRY]]
        self._writer.writerow([row_no, line_no, *map(_spreadsheet_safe, raw), reason, REJECT_REASONS[reason]])

    def close(self) -> str:
        """Close the file; return its path relative to MEDIA_ROOT, or "" when no row was rejected."""
        if self._fh is None:
            return ""
        self._fh.close()
        return self.relative_path

    def discard(self) -> None:
        if self._fh is not None:
            self._fh.close()
        self.path.unlink(missing_ok=True)


# --------------------------------------------------------------------------- the import


_STAGE_COLUMNS = (
    "line_no, line_key, invoice, stock_code, description, quantity, unit_price, occurred_local, customer, kind"
)


@dataclass
class _Counts:
    """What streaming learns; the sets grow with the catalog and the customer base, not with the rows."""

    rows_read: int = 0
    accepted: Counter = field(default_factory=Counter)
    rejected: Counter = field(default_factory=Counter)
    stock_codes: set[str] = field(default_factory=set)
    customer_countries: Counter = field(default_factory=Counter)  # (pseudonym, country) -> accepted rows

    def country_of_customers(self) -> dict[str, str]:
        """Return each customer's most frequent country (ties: the first in code-point order)."""
        best: dict[str, tuple[int, str]] = {}
        for (customer, country), n in self.customer_countries.items():
            current = best.get(customer)
            if current is None or (-n, country) < (-current[0], current[1]):
                best[customer] = (n, country)
        return {customer: country for customer, (_, country) in best.items()}


def _import(*, run: ImportRun, path: Path, rejected: _RejectedRowsFile, progress: Callable) -> None:
    started = time.monotonic()
    connection.ensure_connection()
    pg = connection.connection  # psycopg 3 connection, inside Django's transaction
    key = pseudonym_key()
    cleaner = LineCleaner(pseudonymize=lambda raw: pseudonymize(raw, key=key), slash_convention=_slash_convention(path))
    counts = _Counts()
    with pg.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        cur.execute("SET LOCAL work_mem = '128MB'")
        # Keeps the staging table in memory; only takes effect before a session's first temp table.
        cur.execute("SET LOCAL temp_buffers = '256MB'")
        cur.execute(
            """
            CREATE TEMP TABLE import_stage (
                line_no integer NOT NULL,
                line_key text NOT NULL,
                invoice text NOT NULL,
                stock_code text NOT NULL,
                description text NOT NULL,
                quantity integer NOT NULL,
                unit_price numeric(12, 3) NOT NULL,
                occurred_local timestamp NOT NULL,
                customer text,
                kind text NOT NULL
            ) ON COMMIT DROP
            """
        )
        # A writer thread sends the COPY data while this thread parses the next lines (the send releases
        # the GIL), so parsing is not held up when the server is momentarily slower than the parser.
        with (
            _Source(path) as source,
            cur.copy(f"COPY import_stage ({_STAGE_COLUMNS}) FROM STDIN", writer=QueuedLibpqWriter(cur)) as copy,
        ):
            _stream_rows(source=source, cleaner=cleaner, copy=copy, rejected=rejected, counts=counts, progress=progress)
            bytes_total = source.bytes_total
        timings = {"read": time.monotonic() - started}

        def phase(name: str) -> None:
            progress(ImportProgress(name, bytes_total, bytes_total, counts.rows_read))

        def timed(label: str, func, *args, **kwargs):
            began = time.monotonic()
            result = func(*args, **kwargs)
            timings[label] = time.monotonic() - began
            return result

        phase("merging purchase lines")
        cur.execute("ANALYZE import_stage")
        inserted = timed("merge", _merge, cur, run_id=run.pk, counts=counts)
        phase("updating products")
        timed("products", _update_products, cur, stock_codes=sorted(counts.stock_codes))
        phase("updating customers")
        timed("customers", _update_customers, cur, country_of=counts.country_of_customers())
        phase("generalizing regions")
        region_k = timed("regions", _update_regions, cur)
        cur.execute(f"SELECT count(*) FROM {Customer._meta.db_table}")  # noqa: S608 - table names only
        customers_total = cur.fetchone()[0]
        cur.execute(f"SELECT count(*) FROM {Product._meta.db_table}")  # noqa: S608
        products_total = cur.fetchone()[0]

    rows_accepted = sum(counts.accepted.values())
    run.status = ImportRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.rows_read = counts.rows_read
    run.rows_accepted = rows_accepted
    run.rows_inserted = inserted
    run.rows_duplicate = rows_accepted - inserted  # duplicates within the file and lines already stored
    run.rows_rejected = sum(counts.rejected.values())
    run.rejected_by_reason = dict(sorted(counts.rejected.items()))
    run.accepted_by_kind = dict(sorted(counts.accepted.items()))
    run.customers_total = customers_total
    run.products_total = products_total
    run.region_k = region_k
    run.rejected_rows_file = rejected.close()
    run.save()
    phase("done")
    logger.info(
        "Import run %s: %s rows read, %s inserted, %s duplicate, %s rejected; seconds: %s (before commit)",
        run.pk,
        counts.rows_read,
        inserted,
        run.rows_duplicate,
        run.rows_rejected,
        ", ".join(f"{label} {seconds:.1f}" for label, seconds in timings.items()),
    )


def _stream_rows(*, source: _Source, cleaner: LineCleaner, copy, rejected, counts: _Counts, progress) -> None:
    reader = csv.reader(source.lines(), strict=True)
    md5 = hashlib.md5
    write_row = copy.write_row
    accepted, rejected_counts = counts.accepted, counts.rejected
    add_stock_code, customer_countries = counts.stock_codes.add, counts.customer_countries
    rows_read = 0
    previous_line = 0
    try:
        _read_header(reader)
        previous_line = reader.line_num
        for row in reader:
            line_no, previous_line = previous_line + 1, reader.line_num
            if not row or (len(row) == 1 and not row[0].strip()):
                continue  # blank line
            rows_read += 1
            if len(row) != len(EXPECTED_HEADER):
                raise InvalidImportFile(
                    f"Row {rows_read} (line {line_no}) has {len(row)} fields instead of {len(EXPECTED_HEADER)}. "
                    'Quote fields that contain commas ("A, B") and check that no column is missing.'
                )
            try:
                line = cleaner.clean(row)
            except RowRejected as exc:
                rejected_counts[exc.reason] += 1
                rejected.write(
                    row_no=rows_read,
                    line_no=line_no,
                    row=row,
                    pseudonym=cleaner.pseudonym_or_blank(row[CUSTOMER_ID]),
                    reason=exc.reason,
                )
                continue
            # Natural key over canonical values and the pseudonym (never the raw id).
            line_key = md5(
                "\x1f".join(
                    (
                        line.invoice,
                        line.stock_code,
                        line.description,
                        str(line.quantity),
                        line.unit_price,
                        line.occurred_local,
                        line.customer or "",
                    )
                ).encode(),
                usedforsecurity=False,
            ).hexdigest()
            write_row(
                (
                    rows_read,
                    line_key,
                    line.invoice,
                    line.stock_code,
                    line.description,
                    line.quantity,
                    line.unit_price,
                    line.occurred_local,
                    line.customer,
                    line.kind,
                )
            )
            accepted[line.kind] += 1
            add_stock_code(line.stock_code)
            if line.customer is not None:
                customer_countries[line.customer, row[COUNTRY].strip() or "Unspecified"] += 1
            if rows_read % PROGRESS_EVERY_ROWS == 0:
                progress(ImportProgress("reading", source.bytes_read, source.bytes_total, rows_read))
    except csv.Error as exc:
        raise InvalidImportFile(
            f"Row {rows_read + 1} (starting at line {previous_line + 1}): {_csv_problem(exc)}"
        ) from exc
    finally:
        counts.rows_read = rows_read
    if rows_read == 0:
        raise InvalidImportFile("The file has a header but no data rows. Export the transactions, not only the header.")
    progress(ImportProgress("reading", source.bytes_total, source.bytes_total, rows_read))


def _merge(cur, *, run_id: int, counts: _Counts) -> int:
    """Create missing products and customers, insert new purchase lines; return how many were inserted."""
    product, customer, purchase = Product._meta.db_table, Customer._meta.db_table, Purchase._meta.db_table
    cur.execute(
        f"""
        INSERT INTO {product} (stock_code, description, is_merchandise, units_sold, buyer_count,
                               embedding_version, embedding_input_hash, updated_at)
        SELECT code, '', code ~ %s, 0, 0, '', '', now() FROM unnest(%s::text[]) AS code
        ON CONFLICT (stock_code) DO NOTHING
        """,  # noqa: S608 - table names come from model metadata
        [MERCHANDISE_PATTERN, sorted(counts.stock_codes)],
    )
    cur.execute(
        f"""
        INSERT INTO {customer} (pseudonym, region, order_count, revenue, embedding_version,
                                embedding_input_hash, updated_at)
        SELECT pseudonym, '', 0, 0, '', '', now() FROM unnest(%s::text[]) AS pseudonym
        ON CONFLICT (pseudonym) DO NOTHING
        """,  # noqa: S608
        [sorted({customer for customer, _ in counts.customer_countries})],
    )
    cur.execute(f"SELECT count(*) FROM {purchase}")  # noqa: S608
    stored = cur.fetchone()[0]
    staged = sum(counts.accepted.values())
    bulk = staged >= BULK_MIN_ROWS and staged >= stored * BULK_MIN_SHARE
    with _indexes_dropped(cur, purchase) if bulk else contextlib.nullcontext():
        # The first occurrence of a key in the file wins; keys already stored are skipped. ON CONFLICT
        # stays as a guard although imports are serialized by the advisory lock (in bulk mode the
        # unique index is being rebuilt, and there is nothing to conflict with).
        cur.execute(
            f"""
            INSERT INTO {purchase} (line_key, customer_id, product_id, invoice, description, quantity,
                                    unit_price, occurred_at, kind, import_run_id)
            SELECT s.line_key, c.id, p.id, s.invoice, s.description, s.quantity, s.unit_price,
                   s.occurred_local AT TIME ZONE %s, s.kind, %s
            FROM import_stage s
            JOIN {product} p ON p.stock_code = s.stock_code
            LEFT JOIN {customer} c ON c.pseudonym = s.customer
            LEFT JOIN (
                -- Few keys repeat, so only they are joined back (cheaper than joining every row).
                SELECT line_key, min(line_no) AS first_no FROM import_stage GROUP BY line_key HAVING count(*) > 1
            ) repeated ON repeated.line_key = s.line_key
            WHERE (repeated.first_no IS NULL OR repeated.first_no = s.line_no)
              AND NOT EXISTS (SELECT 1 FROM {purchase} e WHERE e.line_key = s.line_key)
            """  # noqa: S608
            + ("" if bulk else "ON CONFLICT (line_key) DO NOTHING"),
            [settings.TIME_ZONE, run_id],
        )
        inserted = cur.rowcount
    if inserted >= stored * BULK_MIN_SHARE:
        # The aggregates below plan on these statistics; stale ones (an empty table) give slow plans.
        cur.execute(f"ANALYZE {purchase}, {product}, {customer}")
    return inserted


@contextlib.contextmanager
def _indexes_dropped(cur, table: str) -> Iterator[None]:
    """Drop the table's unique and foreign-key constraints and its indexes but the primary key; restore them.

    Building each index once after a large insert is several times faster than updating 11 indexes and
    queueing 3 foreign-key checks per row. It is one transaction, so a failure restores them all, and
    the definitions are read from the catalog, so they come back exactly as the migrations made them
    (same names); re-adding the constraints validates the new rows. The table stays locked
    (ACCESS EXCLUSIVE) until the import commits.
    """
    cur.execute(
        """
        SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = %s::regclass AND contype IN ('u', 'f')
        ORDER BY contype DESC, conname
        """,
        [table],
    )
    constraints = cur.fetchall()  # unique ones first: foreign keys are added back last
    cur.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
        WHERE i.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
        ORDER BY 1
        """,
        [table],
    )
    indexes = cur.fetchall()
    table_sql = sql.Identifier(table)
    for name, _, _ in reversed(constraints):
        cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table_sql, sql.Identifier(name)))
    for name, _ in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))  # regclass text is already quoted
    yield
    for _, definition in indexes:
        cur.execute(definition)
    for name, _, definition in constraints:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(table_sql, sql.Identifier(name), sql.SQL(definition))
        )


def _update_products(cur, *, stock_codes: list[str]) -> None:
    """Recompute the aggregates of the products in this file over all their stored lines."""
    product, purchase = Product._meta.db_table, Purchase._meta.db_table
    cur.execute(
        f"""
        CREATE TEMP TABLE import_products ON COMMIT DROP AS
        SELECT p.id FROM {product} p WHERE p.stock_code = ANY(%s::text[])
        """,  # noqa: S608
        [stock_codes],
    )
    cur.execute("ANALYZE import_products")
    # units_sold is net of returns (floored at 0): an order cancelled minutes later was not sold.
    # The canonical description is the most frequent "clean" variant (no lowercase, no '?'),
    # else the most frequent variant; ties go to the first in byte order (locale-independent).
    cur.execute(
        f"""
        WITH agg AS (
            SELECT product_id,
                   min(unit_price) FILTER (WHERE kind = %(sale)s) AS price_min,
                   round((percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price::float8)
                          FILTER (WHERE kind = %(sale)s))::numeric, 3) AS price_median,
                   max(unit_price) FILTER (WHERE kind = %(sale)s) AS price_max,
                   greatest(coalesce(sum(quantity) FILTER (WHERE kind IN (%(sale)s, %(return)s)), 0), 0) AS units,
                   count(DISTINCT customer_id) FILTER (WHERE kind = %(sale)s) AS buyers
            FROM {purchase} WHERE product_id IN (SELECT id FROM import_products)
            GROUP BY product_id
        ), variants AS (
            SELECT product_id, description, count(*) AS n
            FROM {purchase}
            WHERE product_id IN (SELECT id FROM import_products) AND description <> ''
            GROUP BY product_id, description
        ), canonical AS (
            SELECT DISTINCT ON (product_id) product_id, description FROM variants
            ORDER BY product_id,
                     (description = upper(description) AND strpos(description, '?') = 0) DESC,
                     n DESC, description COLLATE "C"
        )
        UPDATE {product} p
        SET description = coalesce(c.description, ''),
            is_merchandise = p.stock_code ~ %(merchandise)s,
            price_min = a.price_min, price_median = a.price_median, price_max = a.price_max,
            units_sold = coalesce(a.units, 0), buyer_count = coalesce(a.buyers, 0),
            updated_at = now()
        FROM import_products t
        LEFT JOIN agg a ON a.product_id = t.id
        LEFT JOIN canonical c ON c.product_id = t.id
        WHERE p.id = t.id
        """,  # noqa: S608
        {"sale": Kind.SALE, "return": Kind.RETURN, "merchandise": MERCHANDISE_PATTERN},
    )


def _update_customers(cur, *, country_of: dict[str, str]) -> None:
    """Recompute first/last purchase, order count and revenue of the customers in this file."""
    customer, purchase = Customer._meta.db_table, Purchase._meta.db_table
    # The countries live in this temporary table only; it is dropped at commit.
    cur.execute(
        """
        CREATE TEMP TABLE import_customer_country ON COMMIT DROP AS
        SELECT * FROM unnest(%s::text[], %s::text[]) AS i(customer, country)
        """,
        [list(country_of), list(country_of.values())],
    )
    cur.execute("ANALYZE import_customer_country")
    cur.execute(
        f"""
        WITH touched AS (
            SELECT c.id FROM {customer} c JOIN import_customer_country i ON i.customer = c.pseudonym
        ), agg AS (
            SELECT customer_id,
                   min(occurred_at) FILTER (WHERE kind = %(sale)s) AS first_at,
                   max(occurred_at) FILTER (WHERE kind = %(sale)s) AS last_at,
                   count(DISTINCT invoice) FILTER (WHERE kind = %(sale)s) AS orders,
                   round(coalesce(sum(quantity * unit_price) FILTER (WHERE kind IN (%(sale)s, %(return)s)), 0), 2)
                       AS revenue
            FROM {purchase} WHERE customer_id IN (SELECT id FROM touched)
            GROUP BY customer_id
        )
        UPDATE {customer} c
        SET first_purchase_at = a.first_at, last_purchase_at = a.last_at,
            order_count = coalesce(a.orders, 0), revenue = coalesce(a.revenue, 0), updated_at = now()
        FROM touched t LEFT JOIN agg a ON a.customer_id = t.id
        WHERE c.id = t.id
        """,  # noqa: S608
        {"sale": Kind.SALE, "return": Kind.RETURN},
    )


def _update_regions(cur) -> int | None:
    """Generalize countries over all customers so each region has >= k; return the achieved k.

    A customer's country is its most frequent country in this file. Customers stored earlier and absent
    from this file take part with their stored region when that is still a country name; a wider region
    stored earlier is kept as it is (the country behind it was never stored).
    """
    customer = Customer._meta.db_table
    cur.execute("SELECT country, count(*) FROM import_customer_country GROUP BY country")
    per_country = Counter(dict(cur.fetchall()))
    cur.execute(
        f"""
        SELECT c.region, count(*) FROM {customer} c
        WHERE NOT EXISTS (SELECT 1 FROM import_customer_country i WHERE i.customer = c.pseudonym)
        GROUP BY c.region
        """  # noqa: S608
    )
    earlier = {region: n for region, n in cur.fetchall() if region in WIDER_REGION}
    per_country.update(earlier)
    if per_country:
        generalization = generalize(dict(per_country), k=settings.ELM_REGION_MIN_K)
        countries = list(generalization.region_of)
        regions = [generalization.region_of[c] for c in countries]
        cur.execute(
            f"""
            WITH mapping AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS m(country, region))
            UPDATE {customer} c SET region = m.region, updated_at = now()
            FROM import_customer_country i JOIN mapping m ON m.country = i.country
            WHERE c.pseudonym = i.customer AND c.region IS DISTINCT FROM m.region
            """,  # noqa: S608
            [countries, regions],
        )
        if earlier:
            cur.execute(
                f"""
                WITH mapping AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS m(country, region))
                UPDATE {customer} c SET region = m.region, updated_at = now()
                FROM mapping m
                WHERE c.region = m.country AND c.region <> m.region
                  AND NOT EXISTS (SELECT 1 FROM import_customer_country i WHERE i.customer = c.pseudonym)
                """,  # noqa: S608
                [countries, regions],
            )
    # The achieved k is measured on what is stored, so it is true whatever generalize() decided.
    cur.execute(f"SELECT min(n) FROM (SELECT count(*) AS n FROM {customer} GROUP BY region) groups")  # noqa: S608
    return cur.fetchone()[0]
