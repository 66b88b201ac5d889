"""PII detection for reason texts and imported free text, on Microsoft Presidio with a blank spaCy pipeline.

Presidio's pattern recognizers find e-mail addresses, phone numbers (python-phonenumbers), payment
cards (Luhn), IBANs (checksum) and UK postcodes. Presidio's PERSON and address detection needs a
trained spaCy NER model, which we cannot download, so two recognizers of ours stand in:

* person names from a name list exported once from the ``names-dataset`` package
  (``scripts/export_names.py`` -> ``data/first_names.txt``, ``data/surnames.txt``), only in a
  name-like context: "First Last", a title ("Mr", "Dr", ...), or a cue ("Dear", "ask", "buyer") before
  a first name;
* street addresses ("12 Baker Street", "Flat 3, 45 High St", "7 rue de Rivoli", "Hauptstraße 5").

The customer's own source id (the 5-digit CustomerID) is matched as a whole token.

Importing this module is cheap: Presidio (and spaCy) load on the first check, behind
``get_analyzer()``, with torch and transformers kept out of the process (see ``_presidio.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from core.flags import ERROR, Flag
from core.pii.addresses import ADDRESS_GAP, find_street_addresses
from core.pii.names import AMBIGUOUS_NAMES, find_person_names, name_lists

__all__ = [
    "AMBIGUOUS_NAMES",
    "ENTITY_TYPES",
    "PII_CODES",
    "find_person_names",
    "find_pii",
    "find_source_ids",
    "find_street_addresses",
    "get_analyzer",
    "name_lists",
    "scrub",
]

# Presidio entity type -> (flag code, placeholder, what the reviewer reads).
ENTITY_TYPES: dict[str, tuple[str, str, str]] = {
    "EMAIL_ADDRESS": ("pii:email", "<EMAIL>", "e-mail address"),
    "IBAN_CODE": ("pii:iban", "<IBAN>", "bank account number (IBAN)"),
    "CREDIT_CARD": ("pii:card", "<CARD>", "payment card number"),
    "SOURCE_ID": ("pii:source_id", "<CUSTOMER_ID>", "the customer's own id"),
    "PHONE_NUMBER": ("pii:phone", "<PHONE>", "phone number"),
    "STREET_ADDRESS": ("pii:address", "<ADDRESS>", "postal address"),
    "UK_POSTCODE": ("pii:address", "<ADDRESS>", "postal address"),
    "PERSON": ("pii:person", "<PERSON>", "person's name"),
}
# Where two findings overlap, the earlier type wins (an e-mail local part is not a name, an IBAN
# is not a phone number).
_PRIORITY = {name: rank for rank, name in enumerate(ENTITY_TYPES)}
PII_CODES = tuple(dict.fromkeys(code for code, _, _ in ENTITY_TYPES.values()))

# ---------------------------------------------------------------------------------------------
# The customer's own source id
# ---------------------------------------------------------------------------------------------


def find_source_ids(text: str, source_ids: Iterable[str]) -> list[tuple[int, int]]:
    """Return spans where one of ``source_ids`` stands as a whole token (not inside a longer number)."""
    ids = sorted({str(s).strip() for s in source_ids if str(s).strip()}, key=len, reverse=True)
    if not ids:
        return []
    pattern = re.compile(r"(?<!\w)(?<!\d[.,])(?:" + "|".join(map(re.escape, ids)) + r")(?!\w)(?![.,]\d)")
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


# ---------------------------------------------------------------------------------------------
# The analyzer and the public API
# ---------------------------------------------------------------------------------------------


@cache
def get_analyzer():
    """Return the Presidio AnalyzerEngine (built once per process; ~2 s, without torch)."""
    from core.pii._presidio import build_analyzer

    return build_analyzer()


def _resolve(found: list[tuple[int, int, str]], text: str) -> list[tuple[int, int, str]]:
    """Drop findings overlapping a higher-priority one and merge address parts into one span."""
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(found, key=lambda f: (_PRIORITY[f[2]], f[0] - f[1])):
        if any(start < k_end and k_start < end for k_start, k_end, _ in kept):
            continue
        kept.append((start, end, kind))
    kept.sort()
    merged: list[tuple[int, int, str]] = []
    for start, end, kind in kept:
        if merged:
            p_start, p_end, p_kind = merged[-1]
            same = ENTITY_TYPES[p_kind][0] == ENTITY_TYPES[kind][0] == "pii:address"
            if same and ADDRESS_GAP.fullmatch(text, p_end, start):
                merged[-1] = (p_start, end, "STREET_ADDRESS")
                continue
        merged.append((start, end, kind))
    return merged


def find_pii(text: str, *, source_ids: Iterable[str] = ()) -> list[Flag]:
    """Return one ``pii:<type>`` flag per PII finding in ``text``, in text order."""
    if not text or not text.strip():
        return []
    results = get_analyzer().analyze(text=text, language="en")
    found = [(r.start, r.end, r.entity_type) for r in results if r.entity_type in ENTITY_TYPES]
    found += [(s, e, "SOURCE_ID") for s, e in find_source_ids(text, source_ids)]
    flags = []
    for start, end, kind in _resolve(found, text):
        code, _, what = ENTITY_TYPES[kind]
        flags.append(Flag(code, f"Contains a {what}.", start, end, text[start:end], ERROR))
    return flags


def scrub(text: str, *, source_ids: Iterable[str] = ()) -> str:
    """Return ``text`` with every PII finding replaced by a placeholder such as ``<EMAIL>``."""
    placeholders = {code: placeholder for code, placeholder, _ in ENTITY_TYPES.values()}
    out = text
    for flag in sorted(find_pii(text, source_ids=source_ids), key=lambda f: f.start, reverse=True):
        out = out[: flag.start] + placeholders[flag.code] + out[flag.end :]
    return out
