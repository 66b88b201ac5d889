"""Street addresses: house number and street (UK/US, French, German/Dutch/Nordic, Spanish/Italian), PO boxes."""

from __future__ import annotations

import re

from core.pii.names import _words

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


# The same in lower case, as typed into a note ("221b baker street"); only long street words count, and the
# street's name may not hold function words ("3 items on the road" is not an address).
_LOWER_STREET = re.compile(
    rf"\b(?P<num>{_NUM}),?\s+(?P<name>(?:[a-z][a-z'’-]+\s){{1,3}})"
    r"(?P<kind>street|road|lane|avenue|drive|close|crescent|terrace|gardens|grove|mews|st|rd|ave)\b"
)
_FUNCTION_WORDS = _words(
    "a an the of on in at to for from by with and or but as per each every all any some this that these those it its "
    "their your our my his her is are was be x pcs pack packs set sets box boxes units items orders"
)
_PO_BOX = re.compile(
    r"\b(?:P\.?\s?O\.?\s?Box|Post\s?Box|Postfach|Apartado(?:\sde\scorreos)?|Casella\spostale)\s?\d{1,6}\b", re.I
)


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
    for m in _LOWER_STREET.finditer(text):
        if not any(word in _FUNCTION_WORDS for word in m.group("name").split()):
            spans.append((m.start(), m.end()))
    for pattern in (_FR_STREET, _DE_STREET, _SOUTH_STREET, _PO_BOX):
        spans.extend((m.start(), m.end()) for m in pattern.finditer(text))
    return spans


# An address part, then a town (and/or postcode) after it, is one address for the reviewer.
ADDRESS_GAP = re.compile(r"[\s,]*(?:[A-Z][a-z]+(?:[\s-][A-Z][a-z]+)?[\s,]+)?")
