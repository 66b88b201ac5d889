"""Import an Online Retail transaction file (.csv or .csv.gz) in one transaction.

The file is streamed line by line: each row is parsed and classified in Python (see ``cleaning``),
valid rows are COPYed into a temporary staging table, rejected rows go to the rejected-rows report
(``rejected``), and everything else is set-based SQL (``merge``): products, customers and purchase
lines are merged, the aggregates of the touched products and customers recomputed, and every
customer's region regeneralized to k-anonymous groups (``recommendations.services.regions``).

A file that cannot be read as a whole (wrong header, encoding, quoting, ...) raises InvalidImportFile;
then nothing is written except the ImportRun that records the failure.

No source identifier is stored: the raw CustomerID and InvoiceNo never leave ``LineCleaner`` (only their
keyed pseudonyms do), the natural line key is keyed, and countries live only in the staging tables,
which are dropped at commit. Personal data typed into descriptions is scrubbed before it is staged; the
products it was found in are held back from recommendations (``Product.pii_quarantined``) and listed in
the run's report. Rows of erased customers (a keyed tombstone) are counted and dropped.
"""

from __future__ import annotations

import csv
import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from django.db import DatabaseError, connection, transaction
from django.utils import timezone
from psycopg.copy import QueuedLibpqWriter

from core.pii import redact
from core.pseudonyms import line_key, pseudonym_key, pseudonymize, pseudonymize_invoice, tombstone
from recommendations.models import Customer, CustomerTombstone, ImportRun, Product
from recommendations.services import regions
from recommendations.services.cleaning import COUNTRY, EXPECTED_HEADER, Findings, Keys, LineCleaner, RowRejected
from recommendations.services.importer import merge
from recommendations.services.importer.rejected import RejectedRowsFile
from recommendations.services.importer.source import (
    InvalidImportFile,
    Source,
    csv_problem,
    file_sha256,
    read_header,
    slash_convention,
)

logger = logging.getLogger(__name__)

PROGRESS_EVERY_ROWS = 10_000
RECORD_FAILURE_WAIT_SECONDS = 30  # how long a failed import waits for a restarting database to record it
_LOCK_KEY = 0x454C4D494D504F52  # "ELMIMPOR": one import at a time, so merges never interleave
# Rejected, but never written to the report: the customer asked to be forgotten.
UNREPORTED_REASONS = frozenset({"erased_customer"})


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
    rejected = RejectedRowsFile(run_id=run.pk)
    try:
        run.file_sha256 = file_sha256(path)
        with transaction.atomic():
            _import(run=run, path=path, rejected=rejected, progress=progress or (lambda _: None))
    except BaseException as exc:
        rejected.discard()
        known = isinstance(exc, InvalidImportFile | merge.RevenueOutOfRange)
        error = str(exc) if known else f"{type(exc).__name__}: {exc}"
        _run_failure_record(run_id=run.pk, file_sha256=run.file_sha256, error=error)
        logger.warning("Import run %s of %s failed: %s", run.pk, run.file_name, error)
        if isinstance(exc, merge.RevenueOutOfRange):
            raise InvalidImportFile(error) from exc
        raise
    # Finished after the commit, so the run's duration includes it.
    ImportRun.objects.filter(pk=run.pk).update(finished_at=timezone.now())
    return ImportRun.objects.get(pk=run.pk)


def _run_failure_record(*, run_id: int, file_sha256: str, error: str) -> None:
    """Mark the run failed; when the database itself went away, wait a little for it to come back."""
    deadline = time.monotonic() + RECORD_FAILURE_WAIT_SECONDS
    while True:
        try:
            with transaction.atomic():
                run = ImportRun.objects.select_for_update().get(pk=run_id)
                run.file_sha256 = file_sha256
                run.fail(error=error, finished_at=timezone.now())
                run.save()
            return
        except DatabaseError:
            connection.close()  # a broken connection is not reused; the next query reconnects
            if time.monotonic() > deadline:
                # The next import marks the run failed (see _interrupted_runs_fail); nothing of it was kept.
                logger.exception("Import run %s failed and the failure could not be recorded", run_id)
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
            stale = list(ImportRun.objects.filter(status=ImportRun.Status.RUNNING))
            for run in stale:
                run.fail(
                    error="Interrupted: the import process or the database stopped before the import finished. "
                    "Nothing of it was kept; import the file again.",
                    finished_at=timezone.now(),
                )
                run.save()
            return len(stale)
        finally:
            cur.execute("SELECT pg_advisory_unlock(%s)", [_LOCK_KEY])


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
    pii_rows: Counter = field(default_factory=Counter)  # "pii:email" -> rows whose description held one
    pii_products: defaultdict = field(default_factory=lambda: defaultdict(set))  # stock code -> kinds found

    def country_of_customers(self) -> dict[str, str]:
        """Return each customer's most frequent country (ties: the first in code-point order)."""
        best: dict[str, tuple[int, str]] = {}
        for (customer, country), n in self.customer_countries.items():
            current = best.get(customer)
            if current is None or (-n, country) < (-current[0], current[1]):
                best[customer] = (n, country)
        return {customer: country for customer, (_, country) in best.items()}


def _keys() -> Keys:
    key = pseudonym_key()
    erased = set(CustomerTombstone.objects.values_list("tombstone", flat=True))
    return Keys(
        customer=lambda raw: pseudonymize(raw, key=key),
        invoice=lambda invoice: pseudonymize_invoice(invoice, key=key),
        line=lambda fields: line_key(fields, key=key),
        erased=(lambda pseudonym: tombstone(pseudonym, key=key) in erased) if erased else (lambda pseudonym: False),
    )


def _find_pii(text: str) -> Findings:
    return Findings(*redact(text))


def _temp_buffers_raise() -> None:
    """Keep the staging table in memory (256 MB of temp buffers) where the session still allows it.

    PostgreSQL refuses a new temp_buffers once the session has used a temporary table with another
    size (a pooled connection that ran something else first); the import then runs with the default.
    """
    try:
        with transaction.atomic(), connection.cursor() as cur:  # a savepoint: a refusal leaves no aborted transaction
            cur.execute("SET LOCAL temp_buffers = '256MB'")
    except DatabaseError:
        logger.info("temp_buffers is fixed for this database session; the staging table may spill to disk")


def _import(*, run: ImportRun, path: Path, rejected: RejectedRowsFile, progress: Callable) -> None:
    started = time.monotonic()
    connection.ensure_connection()
    pg = connection.connection  # psycopg 3 connection, inside Django's transaction
    cleaner = LineCleaner(keys=_keys(), find_pii=_find_pii, slash_convention=slash_convention(path))
    counts = _Counts()
    with pg.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEY])
        cur.execute("SET LOCAL work_mem = '128MB'")
        _temp_buffers_raise()
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
            Source(path) as source,
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
        customers = {customer for customer, _ in counts.customer_countries}
        inserted = timed("merge", merge.purchases_merge, cur, run_id=run.pk, stock_codes=counts.stock_codes,
                         customers=customers)  # fmt: skip
        phase("updating products")
        timed("products", merge.products_update, cur, stock_codes=sorted(counts.stock_codes))
        quarantined = merge.products_quarantine(cur, pii_by_code=counts.pii_products)
        phase("updating customers")
        timed("customers", merge.customers_update, cur, country_of=counts.country_of_customers())
        phase("generalizing regions")
        region_k = timed("regions", regions.regions_update, cur, file_countries=True)
        cur.execute(f"SELECT count(*) FROM {Customer._meta.db_table}")  # noqa: S608 - table names only
        customers_total = cur.fetchone()[0]
        cur.execute(f"SELECT count(*) FROM {Product._meta.db_table}")  # noqa: S608
        products_total = cur.fetchone()[0]

    rows_accepted = sum(counts.accepted.values())
    run.succeed(finished_at=timezone.now())
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
    run.pii_by_type = dict(sorted(counts.pii_rows.items()))
    run.quarantined_products = quarantined
    run.rejected_rows_file = rejected.close()
    run.save()
    phase("done")
    logger.info(
        "Import run %s: %s rows read, %s inserted, %s duplicate, %s rejected, %s products held back for personal "
        "data; seconds: %s (before commit)",
        run.pk,
        counts.rows_read,
        inserted,
        run.rows_duplicate,
        run.rows_rejected,
        len(quarantined),
        ", ".join(f"{label} {seconds:.1f}" for label, seconds in timings.items()),
    )


def _stream_rows(*, source: Source, cleaner: LineCleaner, copy, rejected, counts: _Counts, progress) -> None:
    reader = csv.reader(source.lines(), strict=True)
    write_row = copy.write_row
    accepted, rejected_counts = counts.accepted, counts.rejected
    add_stock_code, customer_countries = counts.stock_codes.add, counts.customer_countries
    rows_read = 0
    previous_line = 0
    try:
        read_header(reader)
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
                if exc.reason not in UNREPORTED_REASONS:
                    safe = cleaner.report_values(row)
                    rejected.write(row_no=rows_read, line_no=line_no, row=row, safe=safe, reason=exc.reason)
                continue
            write_row(
                (
                    rows_read,
                    line.line_key,
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
            if line.pii:
                counts.pii_rows.update(line.pii)
                counts.pii_products[line.stock_code].update(line.pii)
            if line.customer is not None:
                customer_countries[line.customer, row[COUNTRY].strip() or "Unspecified"] += 1
            if rows_read % PROGRESS_EVERY_ROWS == 0:
                progress(ImportProgress("reading", source.bytes_read, source.bytes_total, rows_read))
    except csv.Error as exc:
        raise InvalidImportFile(
            f"Row {rows_read + 1} (starting at line {previous_line + 1}): {csv_problem(exc)}"
        ) from exc
    finally:
        counts.rows_read = rows_read
    if rows_read == 0:
        raise InvalidImportFile("The file has a header but no data rows. Export the transactions, not only the header.")
    progress(ImportProgress("reading", source.bytes_total, source.bytes_total, rows_read))
