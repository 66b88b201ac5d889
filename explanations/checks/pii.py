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
from pathlib import Path

from explanations.checks.base import ERROR, Flag

DATA_DIR = Path(__file__).resolve().parent / "data"

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
# Person names
# ---------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Names that are also product words in this catalogue ("ROSE", "HOLLY", "IVY" ...), colours,
# or common English words ("May", "Will", "Grant", "Frost"). They stay names, but only count
# next to an unambiguous one: "Rose Smith" and "John White" are people, "Holly Rose" and
# "White Heart" are not. JACK is here because of the many UNION JACK products: "Jack Smith"
# is still found, "Union Jack" never was (Union is no first name).
AMBIGUOUS_NAMES = _words(
    """
    amber angel angels ant apple april art august autumn baby baker ball bay bee bell belle berry
    bill bird black bloom blossom bone bonnie brook brown bull bunny butter candy carol carry carton
    cash cat charity cherry childs clay coco cook coral corona cotton cross crystal czech daisy dawn day
    deco diamond dot dove dusty easter edge ember england english ever faith fan fawn fee fern field
    fields flora flower flowers forest fox france french frost garland gift ginger glass gold golden
    grace grant green grey hall happy hare harmony hazel heart heather hill holder holly honey hood
    hook hope hopper house hunt iris ivory ivy jack jade jasmine jewel jolly joy june july key king
    kit kitchen kitty kraft lace lavender lily london lucky mark mat may meadow merry mint misty moon
    nova olive paris park peach pearl pebble peg penny pepper petal petit pink ping plant poppy
    precious pretty prince princess queen rain rainbow raven red robin roman rose rosemary ruby rusty
    sage salt sand scarlet shell shine silver sky snow song sow spring stack star steel stone storm
    strand street summer sunny sunshine swords tin tiny tone urban valentine velvet villa violet wall
    white will willow winter wise wood wren
    """
)
# Words before a lone first name that say a person follows ("ask Sarah", "Dear John").
_CUES = _words(
    """
    dear hi hello hey thanks thank attn cc contact ask asked call called ring rang email emailed
    e-mail tell told buyer buyers manager owner director colleague assistant customer client
    contact: attn: signed regards cheers
    """
)
# A cue of two words: "speak to Sarah", "spoke with Tom".
_CUE_VERBS = _words("speak spoke talk talked chat chatted meet met reach write wrote send sent forward")
_TITLES = _words(
    "mr mrs ms miss mx dr prof sir dame lady lord mister madam madame mme mlle herr frau sr sra señor señora "
    "signor signora sig"
)
_PARTICLES = _words("van von der den de del della la le du da di dos das ter ten al el bin")
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*\.?")


@cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """Return the (first names, surnames) exported by scripts/export_names.py, lower-cased."""

    def read(name: str) -> frozenset[str]:
        lines = (DATA_DIR / name).read_text(encoding="utf-8").splitlines()
        return frozenset(line for line in lines if line and not line.startswith("#"))

    return read("first_names.txt"), read("surnames.txt")


@cache
def _any_name() -> frozenset[str]:
    first, last = name_lists()
    return first | last


def _is_title_case(word: str) -> bool:
    # "Smith", "McDonald", "O'Brien", "Jean-Luc": upper first letter and some lower-case letters.
    return word[:1].isupper() and any(ch.islower() for ch in word)


def _is_upper(word: str) -> bool:
    return len(word) > 1 and word.isupper()


def _parts(word: str) -> list[str]:
    return [p for p in re.split(r"[-’']", word.lower()) if p]


def _in_list(word: str, names: frozenset[str]) -> bool:
    """Return True if the word (or each part of a hyphenated word, or O'/Mc stems) is a listed name."""
    low = word.lower().replace("’", "'")
    if low in names:
        return True
    parts = _parts(word)
    if len(parts) > 1 and parts[0] in {"o", "d"}:  # O'Brien, D'Angelo
        return parts[1] in names or len(parts[1]) > 2
    return len(parts) > 1 and all(p in names for p in parts)


def _ambiguous(word: str) -> bool:
    return word.lower() in AMBIGUOUS_NAMES


def find_person_names(text: str) -> list[tuple[int, int]]:
    """Return (start, end) spans of person names in name-like context."""
    first, last = name_lists()
    any_name = _any_name()
    tokens = [(m.start(), m.end(), m.group().rstrip(".")) for m in _TOKEN_RE.finditer(text)]
    spans: list[tuple[int, int]] = []

    def gap(i: int) -> str:
        return text[tokens[i][1] : tokens[i + 1][0]]

    def joined(i: int) -> bool:
        # Two tokens belong to one name only if separated by plain spaces (or an initial's dot).
        return i + 1 < len(tokens) and re.fullmatch(r"\.? {1,2}", gap(i)) is not None

    def extend_surnames(j: int) -> int:
        # Take more surname parts: "Smith Jones", "van der Berg", "de la Cruz".
        while joined(j):
            nxt = tokens[j + 1][2]
            if nxt.lower() in _PARTICLES and joined(j + 1) and _is_title_case(tokens[j + 2][2]):
                j += 2
            elif _is_title_case(nxt) and _in_list(nxt, last) and not _ambiguous(nxt):
                j += 1
            else:
                break
        return j

    i = 0
    while i < len(tokens):
        start, _, word = tokens[i]
        low = word.lower()
        taken = None
        # Rule 1: a title and a capitalized word ("Mrs Patel", "Dr. Anna Weber", "MR SMITH").
        if low in _TITLES and (_is_title_case(word) or _is_upper(word)) and joined(i):
            j = i + 1
            nxt = tokens[j][2]
            # "Mrs Okafor" is a name even if not listed, but "Mr Robot Soft Toy" is a product.
            listed = (_in_list(nxt, last) or _in_list(nxt, first)) and not _ambiguous(nxt)
            more = joined(j) and _is_title_case(tokens[j + 1][2])
            if _is_title_case(nxt) and nxt.lower() not in _TITLES and (listed or not more):
                while joined(j) and (
                    (_is_title_case(tokens[j + 1][2]) and _in_list(tokens[j + 1][2], any_name))
                    or tokens[j + 1][2].lower() in _PARTICLES
                ):
                    j += 1
                while tokens[j][2].lower() in _PARTICLES:  # never end on "van"
                    j -= 1
                taken = (start, j)
            elif _is_upper(nxt) and (_in_list(nxt, last) or _in_list(nxt, first)) and not _ambiguous(nxt):
                taken = (start, j)
        # Rule 2: a first name and a surname ("Sarah Mitchell"), at most one of them ambiguous.
        if taken is None and _is_title_case(word) and _in_list(word, first) and joined(i):
            j = i + 1
            middle_initial = re.fullmatch(r"[A-Z]", tokens[j][2]) is not None
            if middle_initial and joined(j):
                j += 1
            if tokens[j][2].lower() in _PARTICLES:
                k = j
                while k < len(tokens) and tokens[k][2].lower() in _PARTICLES and joined(k):
                    k += 1
                if k < len(tokens) and _is_title_case(tokens[k][2]) and not _ambiguous(word):
                    taken = (start, extend_surnames(k))
            else:
                nxt = tokens[j][2]
                # The second word must be a surname ("Charlie Lola" is two first names, a product);
                # after an ambiguous first word ("Princess", "Rose") not a first name as well.
                if (
                    _is_title_case(nxt)
                    and _in_list(nxt, last)
                    and not (_ambiguous(word) and (_ambiguous(nxt) or _in_list(nxt, first)))
                    and nxt.lower() not in _TITLES
                    # "Bertie Glass Bead Charm": a product word as surname must end the name.
                    and not (_ambiguous(nxt) and joined(j) and _is_title_case(tokens[j + 1][2]))
                ):
                    taken = (start, extend_surnames(j))
        # Rule 3: a cue and an unambiguous first name ("ask Sarah", "Dear John,").
        if taken is None and _is_title_case(word) and _in_list(word, first) and not _ambiguous(word) and i > 0:
            prev = tokens[i - 1][2].lower()
            near = re.fullmatch(r"[ ,:]{1,3}", text[tokens[i - 1][1] : start]) is not None
            two = i > 1 and prev in {"to", "with"} and tokens[i - 2][2].lower() in _CUE_VERBS
            if near and (prev in _CUES or two):
                taken = (start, i)
        if taken is not None:
            s, j = taken
            spans.append((s, tokens[j][0] + len(tokens[j][2])))
            i = j + 1
        else:
            i += 1
    return spans


# ---------------------------------------------------------------------------------------------
# Street addresses
# ---------------------------------------------------------------------------------------------

_NUM = r"\d{1,4}[A-Za-z]?(?:\s?[-–/]\s?\d{1,4}[A-Za-z]?)?"
_STRONG = (
    r"Street|St|Road|Rd|Lane|Ln|Avenue|Ave|Drive|Dr|Close|Crescent|Cres|Terrace|Terr|Mews|Grove|Court|Ct"
    r"|Boulevard|Blvd|Wharf|Quay|Broadway|Embankment|Gardens|Gdns|Highway|Hwy"
)
# Words that are streets only at the end of an address: "12 Pink Rose Peg Place Settings" is a product.
_WEAK = r"Place|Pl|Square|Sq|Way|Hill|Walk|Park|Green|Gate|Rise|Vale|View|Yard|Row|Parade|Circus"
_LONG_STRONG = _words(
    "street road lane avenue drive close crescent terrace mews grove court boulevard wharf quay gardens"
)
_WORD = r"(?:St\.?\s|[A-Z][a-z'’]+(?:-[A-Z][a-z'’]+)?\s|[A-Z]{2,}\s)"
_UK_STREET = re.compile(
    rf"(?:\b(?:Flat|Apartment|Apt|Unit|Suite)\.?\s+\d{{1,4}}[A-Za-z]?,?\s+)?"
    rf"\b(?P<num>{_NUM}),?\s+(?P<name>{_WORD}{{1,3}})(?P<kind>(?i:{_STRONG}|{_WEAK}))\b\.?"
)
_FR_STREET = re.compile(
    r"\b\d{1,4}(?:\s?(?:bis|ter))?,?\s+(?i:rue|avenue|av\.|boulevard|bd|place|quai|allée|chemin|impasse|route)"
    r"\s+(?:(?:de|du|des|la|le|l'|d')\s*){0,2}[A-ZÉÈ][\w'’-]+(?:\s[A-Z][\w'’-]+){0,3}"
)
_DE_STREET = re.compile(
    r"\b(?:[A-ZÄÖÜ][a-zäöüß]+(?:-[A-ZÄÖÜ][a-zäöüß]+)*(?:straße|strasse|str\.|weg|platz|allee|gasse|ring|damm|ufer"
    r"|straat|laan|gracht|plein|kade|gatan|vägen|gade|vej|veien|gata)"
    r"|[A-ZÄÖÜ][a-zäöüß]+(?:er|es)?\s(?:Straße|Strasse|Str\.|Weg|Platz|Allee|Gasse|Ring|Damm))"
    r"\s\d{1,4}[a-z]?\b"
)
_SOUTH_STREET = re.compile(
    r"\b(?:Calle|C/|Avenida|Avda\.?|Plaza|Paseo|Carrer|Via|Viale|Piazza|Corso|Rua|Largo|Travessa)\s"
    r"(?:(?:de|del|la|los|las|dos|da|do|di|della|dei|delle|d')\s?){0,2}[A-Z][\w'’-]+(?:\s[A-Z][\w'’-]+){0,3},?"
    r"\s(?:n[º°o]\.?\s?)?\d{1,4}[a-zA-Z]?\b"
)
# After a weak street word only the end of the address may follow: punctuation, a line end, a
# postcode or a lower-case word, never another capitalized product word ("... Place Settings").
_WEAK_END = re.compile(r"\s*(?:$|[,.;:)\n]|\s[A-Z]{1,2}\d)|\s+[a-z]")


def find_street_addresses(text: str) -> list[tuple[int, int]]:
    """Return (start, end) spans of street addresses (UK/US style and common European forms)."""
    spans = []
    for m in _UK_STREET.finditer(text):
        kind = m.group("kind").rstrip(".")
        name = m.group("name").strip()
        if name.isupper() and not (kind.isupper() and kind.lower() in _LONG_STRONG):
            # Upper-case product text ("12 PINK ROSE PEG PLACE SETTINGS") needs an unmistakable street word.
            continue
        if not name.isupper() and kind.isupper():
            continue
        if re.fullmatch(_WEAK, kind, flags=re.IGNORECASE) and not _WEAK_END.match(text, m.end()):
            continue
        spans.append((m.start(), m.end()))
    for pattern in (_FR_STREET, _DE_STREET, _SOUTH_STREET):
        spans.extend((m.start(), m.end()) for m in pattern.finditer(text))
    return spans


# An address part, then a town (and/or postcode) after it, is one address for the reviewer.
_ADDRESS_GAP = re.compile(r"[\s,]*(?:[A-Z][a-z]+(?:[\s-][A-Z][a-z]+)?[\s,]+)?")


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
    from explanations.checks._presidio import build_analyzer

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
            if same and _ADDRESS_GAP.fullmatch(text, p_end, start):
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
