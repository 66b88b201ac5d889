"""Presidio's pattern recognizers (e-mail, phone, card, IBAN, UK postcode), keeping torch and transformers out.

Importing ``presidio_analyzer`` or ``spacy`` normally imports torch (thinc and Presidio's device
detector try ``import torch``) and transformers: ~2 s and hundreds of MB in a web process, which
the project forbids. Every such import in those packages is optional (``try: import torch except
ImportError``), so while they load we make torch and transformers unimportable; afterwards the
block is lifted, so a worker that needs torch later still gets it. A process that already has
torch loaded (a worker) imports Presidio normally.

Only import this module through ``core.pii.get_analyzer()``.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys

_HEAVY = ("torch", "transformers", "sentence_transformers")
# Presidio logs every loaded recognizer and the device at INFO; the checks run per request.
logging.getLogger("presidio-analyzer").setLevel(logging.WARNING)


@contextlib.contextmanager
def without_heavy_ml():
    """Make torch, transformers and sentence-transformers unimportable for the duration (if not loaded yet)."""
    if "torch" in sys.modules:  # a worker: nothing to protect
        yield
        return
    blocked = [name for name in _HEAVY if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # makes "import torch" raise ImportError
    try:
        yield
    finally:
        for name in blocked:
            if sys.modules.get(name, ()) is None:
                del sys.modules[name]


with without_heavy_ml():
    import tldextract
    from presidio_analyzer.pattern import Pattern
    from presidio_analyzer.predefined_recognizers import (
        CreditCardRecognizer,
        EmailRecognizer,
        IbanRecognizer,
        PhoneRecognizer,
        UkPostcodeRecognizer,
    )

# The regions whose national formats ("07700 900123", "01 23 45 67 89") we parse; numbers written
# with a "+" country code are found for every region.
PHONE_REGIONS = ("GB", "IE", "US", "FR", "DE", "NL", "ES", "IT", "JP")
# A word just before a number that says it is a phone number, whatever digit it starts with ("call 555-0147").
_PHONE_CUE = re.compile(r"(?:tel|phone|call|ring|mobile|mob|cell|fax|whatsapp|電話|携帯|連絡先|☎)\W{0,4}$", re.I)

# tldextract fetches the public-suffix list from the internet on first use; use the bundled snapshot.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating the domain against the bundled public-suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_OFFLINE_TLD(pattern_text).suffix)


class CardRecognizer(CreditCardRecognizer):
    """Presidio's Luhn-checked card recognizer plus Mastercard's 2-series (2221-2720) numbers."""

    PATTERNS = [
        *CreditCardRecognizer.PATTERNS,
        Pattern("Mastercard 2-series", r"\b2[2-7]\d{2}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b", 0.3),
        # 13 to 19 digits in any grouping ("4222 2222 2222 2"); the Luhn check keeps out most other numbers.
        Pattern("Card digits, any grouping", r"\b\d(?:[- ]?\d){12,18}\b", 0.2),
    ]


class FormattedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer at "possible number" leniency, kept to numbers written like phone numbers.

    The "valid number" leniency misses numbers outside allocated ranges (such as the UK's
    07700 900xxx), and "possible" alone also finds "12" or "2011"; so every match must hold at
    least 9 digits and start with "+", "0" or "(" as a dialled number does, or follow a word such as
    "call" or "電話".
    """

    def analyze(self, text, entities, nlp_artifacts=None):
        results = super().analyze(text, entities, nlp_artifacts)
        return [
            r
            for r in results
            if sum(ch.isdigit() for ch in text[r.start : r.end]) >= 9
            and (text[r.start] in "+0(" or _PHONE_CUE.search(text, max(0, r.start - 16), r.start))
        ]


class PatternAnalyzer:
    """Run Presidio's recognizers directly, each only on text that can hold its entity.

    ``AnalyzerEngine`` tokenizes every text with spaCy and runs every recognizer; none of these
    recognizers reads the tokens, and the phone matcher (python-phonenumbers over 9 regions) is most of
    the cost. Gating each on what its entity needs (an "@", enough digits) makes checking the ~4,200
    distinct descriptions of a full import ~4x cheaper. Scores are not used: every finding counts.
    """

    def __init__(self):
        with without_heavy_ml():
            self._gated = (
                (lambda text, digits: "@" in text, OfflineEmailRecognizer()),
                (
                    lambda text, digits: digits >= 9,
                    FormattedPhoneRecognizer(supported_regions=PHONE_REGIONS, leniency=0),
                ),
                (lambda text, digits: digits >= 12, CardRecognizer()),
                (lambda text, digits: digits >= 2, IbanRecognizer()),
                (lambda text, digits: digits >= 2, UkPostcodeRecognizer()),
            )

    def analyze(self, text: str) -> list[tuple[int, int, str]]:
        """Return (start, end, entity type) of every finding."""
        digits = sum(ch.isdigit() for ch in text)
        found = []
        for applies, recognizer in self._gated:
            if applies(text, digits):
                entities = recognizer.supported_entities
                found += [(r.start, r.end, r.entity_type) for r in recognizer.analyze(text, entities, None)]
        return found


def build_analyzer() -> PatternAnalyzer:
    """Return the analyzer of Presidio's pattern recognizers (names and addresses are ours, see core.pii)."""
    return PatternAnalyzer()
