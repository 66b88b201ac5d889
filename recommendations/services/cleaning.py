"""Field parsing and row classification for the Online Retail layout; pure functions, no database.

Decisions (each is tested in tests/recommendations/test_importer.py):

* Numbers: an optional sign, digits, optionally grouped in threes by commas ("1,234" = 1234, "1,234.5");
  any other comma ("1,5", "12,34") is rejected because it may be a decimal comma. Quantities must be
  whole numbers; prices may have at most 3 decimal places (the column's precision), so nothing is
  rounded silently. Exponents, currency signs, NaN and infinity are rejected.
* Dates: three layouts are accepted, all UK local time:
  ``YYYY-MM-DD HH:MM:SS`` (this dataset), ``M/D/YYYY H:MM`` (the classic UCI Excel export: month first,
  numbers never zero-padded) and ``DD/MM/YYYY HH:MM`` (day first, always two digits).
  A slash date is *day-first* when its first number is > 12 or a day, month or hour has a leading zero;
  it is *month-first* when its second number is > 12 or a day, month or hour has a single digit.
  Evidence for both is ``invalid_date`` (it matches neither layout). A date with no evidence
  (``11/12/2011 10:30``) takes the convention the whole file proves: at the first such date the importer
  scans all InvoiceDates of the file once. When the file proves both conventions such dates are
  rejected as ``ambiguous_date``; when it proves neither, month-first (the UCI export) is assumed.
* Checks run in file order (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
  CustomerID), so a row is rejected for its first bad field; then ``classify`` applies the kind rules.
* Descriptions: stripped, internal whitespace collapsed; a description starting with = + - @ is stored
  with a leading single quote so spreadsheets do not run it as a formula.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from core.exports import neutralize_formula

EXPECTED_HEADER = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
INVOICE, STOCK_CODE, DESCRIPTION, QUANTITY, INVOICE_DATE, UNIT_PRICE, CUSTOMER_ID, COUNTRY = range(8)

MERCHANDISE_PATTERN = r"^\d{5}[A-Z]{0,4}$"  # also used verbatim in SQL (PostgreSQL regex)
_MERCHANDISE_RE = re.compile(MERCHANDISE_PATTERN)
_INVOICE_RE = re.compile(r"^[A-Z]?\d{1,15}$")
_INT_RE = re.compile(r"^[+-]?(?:\d+|\d{1,3}(?:,\d{3})+)$")
_DECIMAL_RE = re.compile(r"^[+-]?(?:\d+|\d{1,3}(?:,\d{3})+)(?:\.\d+)?$|^[+-]?\.\d+$")
_ISO_RE = re.compile(r"^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})$")
_SLASH_RE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4}) (\d{1,2}):(\d{2})$")
_SPACES_RE = re.compile(r"\s+")

MAX_INVOICE = 16
MAX_STOCK_CODE = 32
MAX_DESCRIPTION = 255
MAX_QUANTITY = 2**31 - 1
MAX_PRICE = Decimal("999999999.999")  # numeric(12, 3)
_THOUSANDTH = Decimal("0.001")

_CACHE_LIMIT = 200_000  # bounds memory on adversarial files where every value is distinct
_MISSING = object()

MONTH_FIRST = "month-first"
DAY_FIRST = "day-first"


class Kind:
    SALE = "sale"
    RETURN = "return"
    ADJUSTMENT = "adjustment"


# Reason code -> what the data owner can do about such a row (written to the rejected-rows CSV).
REJECT_REASONS: dict[str, str] = {
    "missing_invoice": "Fill in InvoiceNo.",
    "invalid_invoice": "InvoiceNo must be digits with an optional one-letter prefix (C = cancellation), "
    f"at most {MAX_INVOICE} characters.",
    "missing_stock_code": "Fill in StockCode.",
    "invalid_stock_code": f"StockCode must be at most {MAX_STOCK_CODE} characters.",
    "invalid_description": f"Shorten Description to at most {MAX_DESCRIPTION} characters.",
    "invalid_quantity": "Quantity must be a whole number such as 6, -2 or 1,234.",
    "invalid_price": "UnitPrice must be a number with at most 3 decimal places, such as 2.55 or 1,234.5.",
    "invalid_date": "InvoiceDate must be YYYY-MM-DD HH:MM:SS, M/D/YYYY H:MM or DD/MM/YYYY HH:MM.",
    "ambiguous_date": "This file mixes day-first and month-first dates; write InvoiceDate as YYYY-MM-DD HH:MM:SS.",
    "invalid_customer_id": "CustomerID must be a whole number (or empty when unknown).",
    "accounting_adjustment": "Invoices starting with A are bad-debt accounting entries, not purchases; nothing to do.",
    "negative_price": "UnitPrice must not be negative; correct the price.",
    "zero_price": "A sale needs a price above 0; correct the price or drop the line (free samples are ignored).",
    "zero_quantity": "Quantity must not be 0.",
    "cancellation_with_positive_quantity": "Cancellation invoices (C...) need a negative Quantity; "
    "fix the sign or the invoice number.",
}


class RowRejected(Exception):
    """A row that is not imported; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CleanLine(NamedTuple):
    invoice: str
    stock_code: str
    description: str
    quantity: int
    unit_price: str  # canonical text with 3 decimals
    occurred_local: str  # canonical "YYYY-MM-DD HH:MM:SS", UK local time
    customer: str | None  # pseudonym; the raw id never leaves LineCleaner
    kind: str


def clean_text(raw: str) -> str:
    """Strip and collapse internal whitespace."""
    return _SPACES_RE.sub(" ", raw).strip()


def clean_description(raw: str) -> str:
    return neutralize_formula(clean_text(raw))


def normalize_stock_code(raw: str) -> str:
    return raw.strip().upper()


def is_merchandise(stock_code: str) -> bool:
    return _MERCHANDISE_RE.match(stock_code) is not None


def parse_quantity(raw: str) -> int:
    text = raw.strip()
    if not _INT_RE.match(text):
        raise RowRejected("invalid_quantity")
    value = int(text.replace(",", ""))
    if abs(value) > MAX_QUANTITY:
        raise RowRejected("invalid_quantity")
    return value


def parse_price(raw: str) -> Decimal:
    text = raw.strip()
    if not _DECIMAL_RE.match(text):
        raise RowRejected("invalid_price")
    try:
        value = Decimal(text.replace(",", ""))
        exact = value.quantize(_THOUSANDTH)
    except InvalidOperation as exc:
        raise RowRejected("invalid_price") from exc
    if exact != value or abs(exact) > MAX_PRICE:
        raise RowRejected("invalid_price")
    return exact if exact else Decimal("0.000")  # no "-0.000"


def slash_date_evidence(raw: str) -> str | None:
    """Return DAY_FIRST, MONTH_FIRST or None (no evidence, or not a slash date, or contradictory)."""
    match = _SLASH_RE.match(raw.strip())
    if not match:
        return None
    evidence = _evidence(match)
    return evidence if evidence in (DAY_FIRST, MONTH_FIRST) else None


def _evidence(match: re.Match) -> str | None:
    first, second, _, hour, _ = match.groups()
    parts = (first, second, hour)
    day_first = int(first) > 12 or any(len(p) == 2 and p[0] == "0" for p in parts)
    month_first = int(second) > 12 or any(len(p) == 1 for p in parts)
    if day_first and month_first:
        return "both"
    return DAY_FIRST if day_first else MONTH_FIRST if month_first else None


def parse_date(raw: str, *, slash_convention: Callable[[], str | None]) -> str:
    """Return the canonical local timestamp text of an InvoiceDate.

    ``slash_convention`` is called only for a slash date without evidence of its own; it returns the
    file's convention (DAY_FIRST or MONTH_FIRST), or None when the file proves both.
    """
    text = raw.strip()
    match = _ISO_RE.match(text)
    if match:
        year, month, day, hour, minute, second = (int(g) for g in match.groups())
    else:
        match = _SLASH_RE.match(text)
        if not match:
            raise RowRejected("invalid_date")
        evidence = _evidence(match)
        if evidence == "both":
            raise RowRejected("invalid_date")
        convention = evidence or slash_convention()
        if convention is None:
            raise RowRejected("ambiguous_date")
        first, second_, year_, hour_, minute_ = (int(g) for g in match.groups())
        month, day = (first, second_) if convention == MONTH_FIRST else (second_, first)
        year, hour, minute, second = year_, hour_, minute_, 0
    try:
        moment = datetime(year, month, day, hour, minute, second)
    except ValueError as exc:
        raise RowRejected("invalid_date") from exc
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def classify(*, invoice: str, quantity: int, unit_price: Decimal) -> str:
    """Return the kind of a parsed line or raise RowRejected; the order of the checks is documented."""
    # Bad-debt entries first: one of them has a negative price, but it is an accounting row, not a price error.
    if invoice.startswith("A"):
        raise RowRejected("accounting_adjustment")
    if unit_price < 0:
        raise RowRejected("negative_price")
    if quantity == 0:
        raise RowRejected("zero_quantity")
    if invoice.startswith("C"):
        if quantity > 0:
            raise RowRejected("cancellation_with_positive_quantity")
        return Kind.RETURN
    if quantity < 0:
        return Kind.ADJUSTMENT  # stock write-offs: kept, never used for customer profiles
    if unit_price == 0:
        raise RowRejected("zero_price")
    return Kind.SALE


class _Rejected:
    """A cached verdict: this raw value makes the row rejected for ``reason``."""

    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def _parse_invoice(raw: str) -> str:
    invoice = raw.strip().upper()
    if not invoice:
        raise RowRejected("missing_invoice")
    if len(invoice) > MAX_INVOICE or not _INVOICE_RE.match(invoice):
        raise RowRejected("invalid_invoice")
    return invoice


def _parse_stock_code(raw: str) -> str:
    stock_code = normalize_stock_code(raw)
    if not stock_code:
        raise RowRejected("missing_stock_code")
    if len(stock_code) > MAX_STOCK_CODE:
        raise RowRejected("invalid_stock_code")
    return stock_code


def _parse_description(raw: str) -> str:
    description = clean_description(raw)
    if len(description) > MAX_DESCRIPTION:
        raise RowRejected("invalid_description")
    return description


class LineCleaner:
    """Parse and classify rows; caches per distinct raw value (a file repeats codes, dates and prices).

    Fields are checked in file order (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
    CustomerID), so a row with several bad fields is rejected for the first; then ``classify`` runs.
    """

    def __init__(
        self, *, pseudonymize: Callable[[str], str], slash_convention: Callable[[], str | None] = lambda: MONTH_FIRST
    ):
        self._slash_convention = slash_convention
        self._convention: tuple[str | None] | None = None  # resolved once, on the first ambiguous date
        self._pseudonymize = pseudonymize
        self._customers: dict[str, object] = {}
        self._fields = (
            (INVOICE, {}, _parse_invoice),
            (STOCK_CODE, {}, _parse_stock_code),
            (DESCRIPTION, {}, _parse_description),
            (QUANTITY, {}, parse_quantity),
            (INVOICE_DATE, {}, lambda raw: parse_date(raw, slash_convention=self._file_convention)),
            (UNIT_PRICE, {}, parse_price),
            (CUSTOMER_ID, self._customers, self._customer),
        )

    def clean(self, row: list[str]) -> CleanLine:
        """Return the cleaned line for a row of 8 raw fields (Country is not looked at)."""
        values = []
        for index, cache, parse in self._fields:
            raw = row[index]
            value = cache.get(raw, _MISSING)
            if value is _MISSING:
                value = _parse_cached(cache, raw, parse)
            if value.__class__ is _Rejected:
                raise RowRejected(value.reason)
            values.append(value)
        invoice, stock_code, description, quantity, occurred, unit_price, customer = values
        kind = classify(invoice=invoice, quantity=quantity, unit_price=unit_price)
        return CleanLine(invoice, stock_code, description, quantity, f"{unit_price:f}", occurred, customer, kind)

    def _file_convention(self) -> str | None:
        if self._convention is None:
            self._convention = (self._slash_convention(),)
        return self._convention[0]

    def pseudonym_or_blank(self, raw: str) -> str:
        """Return the pseudonym of a raw CustomerID for reports, or "" when it is empty or invalid."""
        value = self._customers.get(raw, _MISSING)
        if value is _MISSING:
            value = _parse_cached(self._customers, raw, self._customer)
        return value if isinstance(value, str) else ""

    def _customer(self, raw: str) -> str | None:
        if not raw.strip():
            return None
        try:
            return self._pseudonymize(raw)
        except ValueError as exc:  # core.pseudonyms.InvalidSourceId
            raise RowRejected("invalid_customer_id") from exc


def _parse_cached(cache: dict, raw: str, parse: Callable[[str], object]) -> object:
    try:
        value = parse(raw)
    except RowRejected as exc:
        value = _Rejected(exc.reason)
    if len(cache) < _CACHE_LIMIT:
        cache[raw] = value
    return value
