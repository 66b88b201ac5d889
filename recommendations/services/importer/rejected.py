"""The rejected-rows report of an import: one CSV row per rejected source row, with its reason.

The report lets the data owner find and fix each row in their own file (by row and line number), so
it holds no source identifier: the invoice number and the CustomerID appear only as their keyed
pseudonyms, personal data in the description is scrubbed, and the Country column is left out (with the
pseudonym it would publish a finer location than the k-anonymous region). Rows of erased customers are
never written. An erasure rewrites every report without the erased customer's rows.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from recommendations.services.cleaning import CUSTOMER_ID, DESCRIPTION, REJECT_REASONS

HEADER = (
    "row",
    "line",
    "invoice_pseudonym",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "customer_pseudonym",
    "reason",
    "what_to_do",
)
_INVOICE_COLUMN, _CUSTOMER_COLUMN = HEADER.index("invoice_pseudonym"), HEADER.index("customer_pseudonym")


def spreadsheet_safe(value: str) -> str:
    """Neutralize raw text that a spreadsheet would run as a formula (plain numbers stay as they are)."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r") and not re.fullmatch(r"[+-]?[\d,]*\.?\d+", value):
        return "'" + value
    return value


class RejectedRowsFile:
    def __init__(self, *, run_id: int):
        # The timestamp keeps names unique even where run ids restart (a recreated database).
        self.relative_path = f"imports/import-{run_id}-{timezone.now():%Y%m%d-%H%M%S}-rejected.csv"
        self.path = Path(settings.MEDIA_ROOT) / self.relative_path
        self._fh = None
        self._writer = None

    def write(self, *, row_no: int, line_no: int, row: list[str], safe: dict[str, str], reason: str) -> None:
        """Write one rejected row; ``safe`` has its invoice, stock code, description and customer, keyed/scrubbed."""
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self.path.open("w", encoding="utf-8", newline="")
            self._writer = csv.writer(self._fh)
            self._writer.writerow(HEADER)
        # Never the raw InvoiceNo, CustomerID or Country: their pseudonyms (or nothing) take their place.
        values = [safe["invoice"], safe["stock_code"], safe["description"], *row[DESCRIPTION + 1 : CUSTOMER_ID]]
        self._writer.writerow(
            [row_no, line_no, *map(spreadsheet_safe, values), safe["customer"], reason, REJECT_REASONS[reason]]
        )

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


def rejected_rows_erase(*, files: Iterable[str], pseudonym: str, invoices: set[str]) -> int:
    """Rewrite the given reports (paths relative to MEDIA_ROOT) without the rows of one customer.

    A row goes when it names the customer's pseudonym or one of the customer's invoice pseudonyms (a
    row of their invoice rejected for another field). Each file is replaced atomically; return how
    many rows were removed.
    """
    media_root = Path(settings.MEDIA_ROOT).resolve()
    removed = 0
    for relative in sorted(set(files)):
        path = (media_root / relative).resolve()
        if not path.is_relative_to(media_root) or not path.is_file():
            continue
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
        if not rows or tuple(rows[0]) != HEADER:
            rows_kept = [r for r in rows if pseudonym not in r]  # an older layout: drop any row naming them
        else:
            rows_kept = [rows[0]] + [
                r
                for r in rows[1:]
                if not (len(r) == len(HEADER) and (r[_CUSTOMER_COLUMN] == pseudonym or r[_INVOICE_COLUMN] in invoices))
            ]
        if len(rows_kept) == len(rows):
            continue
        removed += len(rows) - len(rows_kept)
        temporary = path.with_name(path.name + ".erasing")
        with temporary.open("w", encoding="utf-8", newline="") as fh:
            csv.writer(fh).writerows(rows_kept)
        os.replace(temporary, path)
    return removed
