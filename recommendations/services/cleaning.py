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
* A row of an erased customer (its pseudonym's keyed tombstone is stored) is rejected as
  ``erased_customer`` before anything else is looked at, and written nowhere.
* Then checks run in file order (InvoiceNo, StockCode, Description, Quantity, InvoiceDate, UnitPrice,
  CustomerID), so a row is rejected for its first bad field; then the line amount (quantity x price
  within ``MAX_LINE_AMOUNT``, so no aggregate column can overflow on one line); then ``classify`` applies
  the kind rules.
* Descriptions: stripped, internal whitespace collapsed; a description starting with = + - @ is stored
  with a leading single quote so spreadsheets do not run it as a formula. Personal data in it (e-mail,
  phone, name, address, card, IBAN) is replaced by placeholders such as ``<EMAIL>`` (``core.pii``) and
  the kinds found travel with the line, so the importer can hold the product back for a reviewer.
* Stock codes: a stock code holding personal data (an e-mail typed into the wrong column) is rejected:
  it is the product's identity and cannot be scrubbed into another product's.
* Identifiers: the invoice number, the CustomerID and the line's natural key leave the cleaner only as
  keyed pseudonyms (``core.pseudonyms``).
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
# |quantity x unit price| of one line. The largest real line is ~170,000; customer revenue is numeric(14, 2),
# so a thousand lines at the limit still fit, and one absurd line is a rejected row, not an overflow.
MAX_LINE_AMOUNT = Decimal(1_000_000_000)
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
    "amount_out_of_range": f"Quantity x UnitPrice is above {MAX_LINE_AMOUNT:,}; one of them is wrong, correct it.",
    "personal_data_in_stock_code": "StockCode holds personal data (an e-mail address, phone number or name); "
    "put the product's code there.",
    "erased_customer": "This customer was erased (right to erasure); their rows are not imported again. "
    "Delete them from the source file.",
}


class RowRejected(Exception):
    """A row that is not imported; ``reason`` is one of REJECT_REASONS."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class CleanLine(NamedTuple):
    invoice: str  # keyed pseudonym of the invoice number
    stock_code: str
    description: str  # personal data scrubbed
    quantity: int
    unit_price: str  # canonical text with 3 decimals
    occurred_local: str  # canonical "YYYY-MM-DD HH:MM:SS", UK local time
    customer: str | None  # pseudonym; the raw id never leaves LineCleaner
    kind: str
    line_key: str  # keyed natural key: re-imports and overlapping files dedupe on it
    pii: tuple[str, ...]  # the kinds of personal data scrubbed from the description ("pii:email", ...)


class Keys(NamedTuple):
    """The keyed functions a LineCleaner needs (``core.pseudonyms`` under the deployment's key)."""

    customer: Callable[[str], str]  # raw CustomerID -> pseudonym (raises ValueError when invalid)
    invoice: Callable[[str], str]  # canonical invoice number -> pseudonym
    line: Callable[[tuple[str, ...]], str]  # canonical source values -> line key
    erased: Callable[[str], bool] = lambda pseudonym: False  # whether the customer was erased


class Findings(NamedTuple):
    """A text with its personal data replaced by placeholders, and the kinds found."""

    text: str
    codes: tuple[str, ...]


def no_pii(text: str) -> Findings:
    return Findings(text, ())


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
    ``find_pii`` scrubs a text (``core.pii``); without it nothing is scrubbed (tests of other rules).
    """

    def __init__(
        self,
        *,
        keys: Keys,
        find_pii: Callable[[str], Findings] = no_pii,
        slash_convention: Callable[[], str | None] = lambda: MONTH_FIRST,
    ):
        self._slash_convention = slash_convention
        self._convention: tuple[str | None] | None = None  # resolved once, on the first ambiguous date
        self._keys = keys
        self._find_pii = find_pii
        self._customers: dict[str, object] = {}
        self._invoices: dict[str, str] = {}  # canonical invoice -> pseudonym
        self._descriptions: dict[str, object] = {}
        self._erased: dict[str, bool] = {}
        self._stock_codes: dict[str, object] = {}
        self._fields = (
            (INVOICE, {}, _parse_invoice),
            (STOCK_CODE, self._stock_codes, self._stock_code),
            (DESCRIPTION, self._descriptions, self._description),
            (QUANTITY, {}, parse_quantity),
            (INVOICE_DATE, {}, lambda raw: parse_date(raw, slash_convention=self._file_convention)),
            (UNIT_PRICE, {}, parse_price),
            (CUSTOMER_ID, self._customers, self._customer),
        )

    def clean(self, row: list[str]) -> CleanLine:
        """Return the cleaned line for a row of 8 raw fields (Country is not looked at)."""
        if self.erased(row[CUSTOMER_ID]):
            raise RowRejected("erased_customer")
        values = []
        for index, cache, parse in self._fields:
            raw = row[index]
            value = cache.get(raw, _MISSING)
            if value is _MISSING:
                value = _parse_cached(cache, raw, parse)
            if value.__class__ is _Rejected:
                raise RowRejected(value.reason)
            values.append(value)
        invoice, stock_code, (description, scrubbed, pii), quantity, occurred, unit_price, customer = values
        if abs(quantity * unit_price) > MAX_LINE_AMOUNT:
            raise RowRejected("amount_out_of_range")
        kind = classify(invoice=invoice, quantity=quantity, unit_price=unit_price)
        price = f"{unit_price:f}"
        # The key is over the canonical source values (the description before scrubbing) and the pseudonym.
        key = self._keys.line((invoice, stock_code, description, str(quantity), price, occurred, customer or ""))
        return CleanLine(
            self._invoice_pseudonym(invoice), stock_code, scrubbed, quantity, price, occurred, customer, kind, key, pii
        )

    def _file_convention(self) -> str | None:
        if self._convention is None:
            self._convention = (self._slash_convention(),)
        return self._convention[0]

    def _invoice_pseudonym(self, invoice: str) -> str:
        pseudonym = self._invoices.get(invoice)
        if pseudonym is None:
            pseudonym = self._keys.invoice(invoice)
            if len(self._invoices) < _CACHE_LIMIT:
                self._invoices[invoice] = pseudonym
        return pseudonym

    def erased(self, raw: str) -> bool:
        """Return whether the row's customer was erased (cached per raw CustomerID)."""
        erased = self._erased.get(raw)
        if erased is None:
            pseudonym = self.pseudonym_or_blank(raw)
            erased = bool(pseudonym) and self._keys.erased(pseudonym)
            if len(self._erased) < _CACHE_LIMIT:
                self._erased[raw] = erased
        return erased

    def pseudonym_or_blank(self, raw: str) -> str:
        """Return the pseudonym of a raw CustomerID for reports, or "" when it is empty or invalid."""
        value = self._customers.get(raw, _MISSING)
        if value is _MISSING:
            value = _parse_cached(self._customers, raw, self._customer)
        return value if isinstance(value, str) else ""

    def report_values(self, row: list[str]) -> dict[str, str]:
        """Return what the rejected-rows report may show of a row: pseudonyms and scrubbed text only."""
        try:
            invoice = self._invoice_pseudonym(_parse_invoice(row[INVOICE]))
        except RowRejected:
            invoice = ""  # an unreadable invoice number is not echoed; the line number finds the row
        code = self._stock_codes.get(row[STOCK_CODE], _MISSING)
        if code is _MISSING:
            code = _parse_cached(self._stock_codes, row[STOCK_CODE], self._stock_code)
        stock_code = self._find_pii(row[STOCK_CODE]).text if isinstance(code, _Rejected) else row[STOCK_CODE]
        return {
            "invoice": invoice,
            "stock_code": stock_code,
            "description": self._scrubbed_description(row[DESCRIPTION]),
            "customer": self.pseudonym_or_blank(row[CUSTOMER_ID]),
        }

    def _scrubbed_description(self, raw: str) -> str:
        parsed = self._descriptions.get(raw, _MISSING)
        if parsed is _MISSING:
            parsed = _parse_cached(self._descriptions, raw, self._description)
        return parsed[1] if isinstance(parsed, tuple) else self._find_pii(clean_description(raw)).text

    def _stock_code(self, raw: str) -> str:
        stock_code = _parse_stock_code(raw)
        if self._find_pii(stock_code).codes:
            raise RowRejected("personal_data_in_stock_code")
        return stock_code

    def _description(self, raw: str) -> tuple[str, str, tuple[str, ...]]:
        description = _parse_description(raw)
        found = self._find_pii(description)
        return description, found.text, found.codes

    def _customer(self, raw: str) -> str | None:
        if not raw.strip():
            return None
        try:
            return self._keys.customer(raw)
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
