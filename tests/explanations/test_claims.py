"""The claim checker against the labelled set: recall on seeded false claims, silence on true sentences."""

import pytest

from explanations.checks.claims import find_unsupported_claims
from explanations.services.reasons import claim_facts, template_text
from tests.explanations.claim_cases import FALSE_CLAIMS, SHEETS, TRUE_SENTENCES


def _kinds(sheet: str, sentence: str) -> set[str]:
    flags = find_unsupported_claims(sentence, claim_facts(SHEETS[sheet]))
    return {f.code.split(":", 1)[1] for f in flags}


def test_the_labelled_set_holds_at_least_100_false_claims_in_both_languages():
    """The set is big enough to measure recall, and Japanese claims are part of it."""
    assert len(FALSE_CLAIMS) >= 100
    assert sum(1 for _, s, _ in FALSE_CLAIMS if not s.isascii()) >= 20
    assert len(TRUE_SENTENCES) >= 20


def test_recall_on_seeded_false_claims_is_at_least_95_percent():
    """Given the seeded false claims, when each is checked against its sheet, then >= 95% are flagged."""
    missed = [(sheet, s) for sheet, s, _ in FALSE_CLAIMS if not _kinds(sheet, s)]
    recall = 1 - len(missed) / len(FALSE_CLAIMS)
    assert recall >= 0.95, f"recall {recall:.3f}; missed: {missed}"


def test_false_claims_are_flagged_as_their_kind():
    """Most flags name the right kind of claim (a reviewer reads the message)."""
    right = [kind in _kinds(sheet, s) for sheet, s, kind in FALSE_CLAIMS]
    assert sum(right) / len(right) >= 0.9


@pytest.mark.parametrize(("sheet", "sentence"), TRUE_SENTENCES)
def test_true_sentences_are_not_flagged(sheet, sentence):
    """A sentence that states the sheet's facts raises no claim flag."""
    assert _kinds(sheet, sentence) == set()


@pytest.mark.parametrize("lang", ["en", "ja"])
@pytest.mark.parametrize("sheet", ["A", "B", "C", "D"])
def test_every_template_variant_passes_the_claim_check(sheet, lang):
    """The fact-sentence template (each frame, each language) states only what the sheet supports."""
    for variant in range(6):
        text = template_text(SHEETS[sheet], lang=lang, variant=variant)
        flags = find_unsupported_claims(text, claim_facts(SHEETS[sheet]))
        assert flags == [], (text, flags)


def test_a_frequency_claim_is_tied_to_the_product_it_names():
    """A "frequent buyer of" claim is true of the product ordered 6 times and false of the one ordered once."""
    assert _kinds("A", "They are a frequent buyer of Jumbo bag red retrospot.") == set()
    assert _kinds("A", "They are a frequent buyer of Lunch bag pink polkadot.") == {"frequency"}
