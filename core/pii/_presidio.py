"""Build the Presidio analyzer on a blank spaCy pipeline, keeping torch and transformers out of the process.

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
import sys

from core.pii.addresses import find_street_addresses
from core.pii.names import find_person_names

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
    import spacy
    import tldextract
    from presidio_analyzer import AnalyzerEngine, LocalRecognizer, RecognizerRegistry, RecognizerResult
    from presidio_analyzer.nlp_engine import SpacyNlpEngine
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
PHONE_REGIONS = ("GB", "IE", "US", "FR", "DE", "NL", "ES", "IT")

# tldextract fetches the public-suffix list from the internet on first use; use the bundled snapshot.
_OFFLINE_TLD = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)


class BlankSpacyNlpEngine(SpacyNlpEngine):
    """spaCy engine on ``spacy.blank("en")``: tokenization only, no model download, no NER."""

    def load(self) -> None:
        self.nlp = {"en": spacy.blank("en")}


class OfflineEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, validating the domain against the bundled public-suffix list."""

    def validate_result(self, pattern_text: str) -> bool:
        return bool(_OFFLINE_TLD(pattern_text).suffix)


class CardRecognizer(CreditCardRecognizer):
    """Presidio's Luhn-checked card recognizer plus Mastercard's 2-series (2221-2720) numbers."""

    PATTERNS = [
        *CreditCardRecognizer.PATTERNS,
        Pattern("Mastercard 2-series", r"\b2[2-7]\d{2}[- ]?\d{4}[- ]?\d{4}[- ]?\d{4}\b", 0.3),
    ]


class FormattedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer at "possible number" leniency, kept to numbers written like phone numbers.

    The "valid number" leniency misses numbers outside allocated ranges (such as the UK's
    07700 900xxx), and "possible" alone also finds "12" or "2011"; so every match must hold at
    least 9 digits and start with "+", "0" or "(" as a dialled number does.
    """

    def analyze(self, text, entities, nlp_artifacts=None):
        results = super().analyze(text, entities, nlp_artifacts)
        return [r for r in results if text[r.start] in "+0(" and sum(ch.isdigit() for ch in text[r.start : r.end]) >= 9]


class PersonNameRecognizer(LocalRecognizer):
    """PERSON from a names-dataset name list, in name-like context (see pii.find_person_names)."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="PersonNameRecognizer", supported_language="en")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        return [RecognizerResult("PERSON", s, e, 0.6) for s, e in find_person_names(text)]


class StreetAddressRecognizer(LocalRecognizer):
    """STREET_ADDRESS: house number and street ("12 Baker Street", "7 rue de Rivoli", "Hauptstraße 5")."""

    def __init__(self):
        super().__init__(supported_entities=["STREET_ADDRESS"], name="StreetAddressRecognizer", supported_language="en")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        return [RecognizerResult("STREET_ADDRESS", s, e, 0.6) for s, e in find_street_addresses(text)]


def build_analyzer() -> AnalyzerEngine:
    """Return an AnalyzerEngine with only the recognizers the checks use."""
    with without_heavy_ml():
        engine = BlankSpacyNlpEngine(models=[{"lang_code": "en", "model_name": "blank"}])
        engine.load()
        registry = RecognizerRegistry(supported_languages=["en"])
        for recognizer in (
            OfflineEmailRecognizer(),
            FormattedPhoneRecognizer(supported_regions=PHONE_REGIONS, leniency=0),
            CardRecognizer(),
            IbanRecognizer(),
            UkPostcodeRecognizer(),
            PersonNameRecognizer(),
            StreetAddressRecognizer(),
        ):
            registry.add_recognizer(recognizer)
        return AnalyzerEngine(nlp_engine=engine, registry=registry, supported_languages=["en"])
