"""PII detection for reason texts and imported free text (English and Japanese), on Microsoft Presidio.

Presidio's pattern recognizers find e-mail addresses, phone numbers (python-phonenumbers), payment
cards (Luhn), IBANs (checksum) and UK postcodes. Presidio's PERSON and address detection needs a
trained spaCy NER model, which we cannot download, so detectors of ours stand in:

* person names (``names``) from a name list exported once from the ``names-dataset`` package, only in a
  name-like context: "First Last" in any one case, a title ("Mr", "Dr", ...), a cue ("Dear", "ask")
  before a first name, a Japanese honorific after a romaji name ("Tanaka-san");
* Japanese names and addresses (``japanese``): kanji surnames with a given name or an honorific,
  katakana names, prefecture/city/ward addresses with block numbers, 〒 postcodes;
* street addresses (``addresses``): "12 Baker Street", "221b baker street", "7 rue de Rivoli", PO boxes;
* e-mail addresses written next to Japanese text or obfuscated ("john at example dot com", ``emails``).

Full-width letters and digits (０３－１２３４, ｊｏｈｎ＠…) are read as their ASCII forms; offsets stay those
of the original text. The customer's own source id (the 5-digit CustomerID) is matched as a whole token.

Importing this module is cheap: Presidio (and spaCy) load on the first check, behind
``get_analyzer()``, with torch and transformers kept out of the process (see ``_presidio.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import cache

from core.flags import ERROR, Flag
from core.pii.addresses import ADDRESS_GAP, find_street_addresses
from core.pii.emails import find_emails
from core.pii.japanese import find_japanese_addresses, find_japanese_names
from core.pii.names import AMBIGUOUS_NAMES, find_person_names, name_lists

__all__ = [
    "AMBIGUOUS_NAMES",
    "ENTITY_TYPES",
    "PII_CODES",
    "find_emails",
    "find_japanese_addresses",
    "find_japanese_names",
    "find_person_names",
    "find_pii",
    "find_source_ids",
    "find_street_addresses",
    "get_analyzer",
    "name_lists",
    "redact",
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
    """Return the analyzer of Presidio's pattern recognizers (built once per process; ~1 s, without torch)."""
    from core.pii._presidio import build_analyzer

    return build_analyzer()


def _resolve(found: list[tuple[int, int, str]], text: str) -> list[tuple[int, int, str]]:
    """Drop findings overlapping a higher-priority one and merge address parts into one span."""
    kept: list[tuple[int, int, str]] = []
    for start, end, kind in sorted(found, key=lambda f: (_PRIORITY[f[2]], f[0] - f[1])):
        overlapping = [i for i, (k_start, k_end, _) in enumerate(kept) if start < k_end and k_start < end]
        if overlapping:
            # The higher-priority finding absorbs the rest of this one ("sarah mitchell at example dot com"
            # is one e-mail address, not "sarah" and an address), so a scrub leaves no piece behind.
            i = overlapping[0]
            k_start, k_end, k_kind = kept[i]
            kept[i] = (min(k_start, start), max(k_end, end), k_kind)
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


# Full-width ASCII (U+FF01-U+FF5E) and the ideographic space, one character for one: offsets do not move.
_HALF_WIDTH = {0xFF01 + i: 0x21 + i for i in range(94)} | {0x3000: 0x20}
# Presidio's recognizers (e-mail, phone, card, IBAN, postcode) all need a digit or an "@": text without
# either (most product descriptions) skips them.
_PRESIDIO_NEEDS = re.compile(r"[\d@]")


def find_pii(text: str, *, source_ids: Iterable[str] = ()) -> list[Flag]:
    """Return one ``pii:<type>`` flag per PII finding in ``text``, in text order."""
    if not text or not text.strip():
        return []
    plain = text.translate(_HALF_WIDTH)
    found: list[tuple[int, int, str]] = []
    if _PRESIDIO_NEEDS.search(plain):
        found += [f for f in get_analyzer().analyze(plain) if f[2] in ENTITY_TYPES]
    found += [(s, e, "EMAIL_ADDRESS") for s, e in find_emails(plain)]
    found += [(s, e, "PERSON") for s, e in (*find_person_names(plain), *find_japanese_names(plain))]
    found += [(s, e, "STREET_ADDRESS") for s, e in (*find_street_addresses(plain), *find_japanese_addresses(plain))]
    found += [(s, e, "SOURCE_ID") for s, e in find_source_ids(plain, source_ids)]
    flags = []
    for start, end, kind in _resolve(found, text):
        code, _, what = ENTITY_TYPES[kind]
        flags.append(Flag(code, f"Contains a {what}.", start, end, text[start:end], ERROR))
    return flags


def redact(text: str, *, source_ids: Iterable[str] = ()) -> tuple[str, tuple[str, ...]]:
    """Return ``text`` with every PII finding replaced by its placeholder, and the kinds found (sorted)."""
    placeholders = {code: placeholder for code, placeholder, _ in ENTITY_TYPES.values()}
    flags = find_pii(text, source_ids=source_ids)
    out = text
    for flag in sorted(flags, key=lambda f: f.start, reverse=True):
        out = out[: flag.start] + placeholders[flag.code] + out[flag.end :]
    return out, tuple(sorted({f.code for f in flags}))


def scrub(text: str, *, source_ids: Iterable[str] = ()) -> str:
    """Return ``text`` with every PII finding replaced by a placeholder such as ``<EMAIL>``."""
    return redact(text, source_ids=source_ids)[0]
