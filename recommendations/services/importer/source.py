"""Reading an Online Retail file: the byte stream, its encoding, the header and the quoting.

A file that cannot be read as a whole (wrong header, encoding, quoting, ...) raises InvalidImportFile
with a message that names the line at fault and what to do.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import re
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

from recommendations.services.cleaning import DAY_FIRST, EXPECTED_HEADER, INVOICE_DATE, MONTH_FIRST, slash_date_evidence

_SNIFF_BYTES = 4096
MAX_LINE_BYTES = 64 * 1024  # real lines are < 200 bytes; a longer one means this is not line-based CSV
_HEADER_TEXT = ",".join(EXPECTED_HEADER)
_EXPECTED_LOWER = tuple(name.lower() for name in EXPECTED_HEADER)
_SAFE_COLUMN_NAME = re.compile(r"^[A-Za-z][A-Za-z _-]{0,39}$")  # never echo anything that could be data


class InvalidImportFile(Exception):
    """The file as a whole cannot be imported; the message names the problem and what to do."""


def file_sha256(path: Path) -> str:
    if not path.exists():
        raise InvalidImportFile(f"{path} does not exist. Check the path (default: settings.ELM_DATASET_PATH).")
    if not path.is_file():
        raise InvalidImportFile(f"{path} is not a file. Give the path of a .csv or .csv.gz file.")
    name = path.name.lower()
    if not (name.endswith(".csv") or name.endswith(".csv.gz")):
        raise InvalidImportFile(f"{path.name} is not a .csv or .csv.gz file. Export the data as CSV (UTF-8).")
    with path.open("rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


class Source:
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

    def __enter__(self) -> Source:
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


def read_header(reader: Iterator[list[str]]) -> None:
    for row in reader:
        if row:
            break
    else:
        raise InvalidImportFile(f"The file is empty. Export the transactions with the header line {_HEADER_TEXT}.")
    names = [name.strip() for name in row]
    # Column names are matched without regard to case: "invoiceno" is the same column as "InvoiceNo".
    if tuple(n.lower() for n in names) == _EXPECTED_LOWER:
        return
    raise InvalidImportFile(_header_problem(names) + f" The first line must be: {_HEADER_TEXT}")


def _header_problem(names: list[str]) -> str:
    if len(names) == 1:
        for separator, label in ((";", "semicolon"), ("\t", "tab")):
            if separator in names[0]:
                return f"The file is {label}-separated. Export it with commas (,) as the separator."
    lower = [n.lower() for n in names]
    if not set(lower) & set(_EXPECTED_LOWER):
        return "The first line is not the Online Retail header (it may be a data row, or another file)."
    missing = [n for n in EXPECTED_HEADER if n.lower() not in lower]
    unexpected = [
        repr(n) if _SAFE_COLUMN_NAME.match(n) else f"column {i + 1} (name not shown)"
        for i, n in enumerate(names)
        if n.lower() not in _EXPECTED_LOWER
    ]
    parts = []
    if missing:
        parts.append("missing column(s): " + ", ".join(missing))
    if unexpected:
        parts.append("unexpected column(s): " + ", ".join(unexpected))
    if not parts and len(lower) != len(set(lower)):
        parts.append("duplicated column(s): " + ", ".join(sorted({n for n in names if lower.count(n.lower()) > 1})))
    if not parts:
        parts.append("the columns are in the wrong order")
    return "The header is wrong: " + "; ".join(parts) + " (upper or lower case does not matter)."


def csv_problem(exc: csv.Error) -> str:
    if "unexpected end of data" in str(exc) or "field larger than field limit" in str(exc):
        return (
            'a quoted field is never closed (unterminated quote). Every field that starts with " must end '
            'with "; a quote inside a field is written as "".'
        )
    return f'the quoting is malformed ({exc}). A quote inside a field is written as "" and the field quoted.'


def slash_convention(path: Path) -> Callable[[], str | None]:
    """Return a function that pre-scans the file's InvoiceDates for the day/month order (see cleaning)."""

    def scan() -> str | None:
        seen: set[str] = set()
        with Source(path) as source:
            for row in csv.reader(source.lines(), strict=True):
                if len(row) > INVOICE_DATE and (evidence := slash_date_evidence(row[INVOICE_DATE])):
                    seen.add(evidence)
                    if len(seen) == 2:
                        return None
        return DAY_FIRST if seen == {DAY_FIRST} else MONTH_FIRST

    return scan
