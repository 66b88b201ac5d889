"""CSV downloads that are safe to open in a spreadsheet (no formula injection)."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal

from django.http import StreamingHttpResponse

# A spreadsheet treats a cell starting with one of these as a formula (tab and CR too, in some apps).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
# A signed plain number ("-3", "+1,200.50") is read as a number, not run: it stays as it is.
_PLAIN_NUMBER = re.compile(r"[+-]?[\d,]*\.?\d+")
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def neutralize_formula(text: str) -> str:
    """Return ``text`` with a leading ' if a spreadsheet would run it as a formula (the one definition:
    exports, the importer's descriptions and its rejected-rows file all call this)."""
    if text.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(text):
        return "'" + text
    return text


def neutralize_cell(value) -> str | int | float | Decimal:
    """Return ``value`` ready for a CSV cell: text that a spreadsheet would run as a formula gets a leading '."""
    if value is None:
        return ""
    # Numbers cannot carry a formula; keep them numeric (a negative amount stays -3.5).
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float | Decimal):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return neutralize_formula(str(value))


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a generator."""

    def write(self, value: str) -> str:
        return value


def safe_filename(filename: str) -> str:
    """Return ``filename`` reduced to characters that are safe in a Content-Disposition header."""
    cleaned = _UNSAFE_FILENAME.sub("-", filename).strip(".-")
    return cleaned or "export.csv"


def csv_response(*, filename: str, header: Sequence[str], rows: Iterable[Sequence]) -> StreamingHttpResponse:
    """Stream ``header`` and ``rows`` as a CSV attachment, every cell neutralized against formula injection."""
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([neutralize_cell(h) for h in header])
        for row in rows:
            yield writer.writerow([neutralize_cell(v) for v in row])

    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{safe_filename(filename)}"'
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "no-store"
    return response
