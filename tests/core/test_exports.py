"""CSV exports neutralize formula injection and stream as attachments."""

import csv
import io
from decimal import Decimal

import pytest

from core.exports import csv_response, neutralize_cell, neutralize_formula, safe_filename


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('=HYPERLINK("http://evil","x")', '\'=HYPERLINK("http://evil","x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("WHITE HANGING HEART", "WHITE HANGING HEART"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-3, -3),
        (Decimal("-2.50"), Decimal("-2.50")),
        (1.5, 1.5),
        (True, "true"),
    ],
)
def test_neutralize_cell(value, expected):
    """Prefix text that a spreadsheet would evaluate; keep numbers numeric and other text unchanged."""
    assert neutralize_cell(value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\r=1", "'\r=1"),
        ("-5 OFF SALE", "'-5 OFF SALE"),
        # a signed plain number is read as a number, never run: kept as it is
        ("-3", "-3"),
        ("+1,200.50", "+1,200.50"),
        ("RED = BLUE", "RED = BLUE"),
    ],
)
def test_neutralize_formula(text, expected):
    """Quote text that a spreadsheet would run as a formula; leave numbers and other text alone."""
    assert neutralize_formula(text) == expected


def test_csv_response_streams_a_neutralized_attachment():
    # Given rows with a formula in the header and in a cell
    response = csv_response(
        filename="customers 2026/11.csv",
        header=["pseudonym", "=cmd"],
        rows=iter([["ab12", "=1+1"], ["cd34", -5]]),
    )
    # When it is read back
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body)))
    # Then every dangerous cell starts with a quote, and it is an attachment with a safe name
    assert rows == [["pseudonym", "'=cmd"], ["ab12", "'=1+1"], ["cd34", "-5"]]
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="customers-2026-11.csv"'


@pytest.mark.parametrize(("name", "expected"), [('a";b.csv', "a-b.csv"), ("../../x.csv", "x.csv"), ("", "export.csv")])
def test_safe_filename(name, expected):
    assert safe_filename(name) == expected
