"""Policy, hallucinated-entity and length checks on reason texts."""

from __future__ import annotations

import pytest

from explanations.checks import Evidence, Flag, Term, TermList, build_vocabulary, check_length, check_text, has_errors
from explanations.checks.entities import find_hallucinated_entities, forms
from explanations.checks.policy import find_policy_issues, validate_term

# (category, texts that must be flagged with it, texts that must not)
CASES = {
    "age": (
        [
            "As an elderly customer, she prefers large print labels.",
            "Great for pensioners on a budget.",
            "Popular with 65-year-old buyers.",
            "Shoppers in their seventies like it.",
            "Perfect for young people.",
        ],
        ["The vintage doilies suit this shop.", "They re-order every 6 weeks.", "A 3 tier cake stand."],
    ),
    "gender": (
        [
            "Recommended because she is a woman.",
            "Women love these bags.",
            "As a mother she needs lunch boxes.",
            "Ideal for female shoppers.",
            "Because he's a man, pick the blue one.",
        ],
        [
            "The Dolly Girl lunch box matches their range.",
            "The Spaceboy design sells well.",
            "Gingerbread cookie cutters for the Christmas range.",
        ],
    ),
    "ethnicity": (
        [
            "Suits their ethnic background.",
            "Popular with Asian customers.",
            "Because of his race.",
            "Aimed at Hispanic families.",
        ],
        ["The Oriental Red Cushion Cover matches.", "Black and white retrospot mugs.", "A paper chain kit."],
    ),
    "religion": (
        [
            "Muslim customers will like it.",
            "As a Christian shop owner she buys nativity sets.",
            "Good for Jewish holidays.",
            "Their faith suggests candles.",
            "Halal-friendly baking trays.",
        ],
        [
            "The Christmas bunting matches their December orders.",
            "Easter egg decorations.",
            "Medium Pink Buddha Head fits a spa range.",
        ],
    ),
    "health": (
        [
            "Because the owner is disabled.",
            "Easy to open for diabetic customers.",
            "Great for pregnant women.",
            "Helps people with dementia.",
            "Suited to wheelchair users.",
        ],
        [
            "The hot water bottle sold well in winter.",
            "A first aid tin for the kitchen range.",
            "Man Flu Metal Sign fits their humorous signs.",
        ],
    ),
    "nationality": (
        [
            "French customers like lavender.",
            "As a German, he likes order.",
            "Because they are Italian, pasta jars fit.",
            "Popular with foreigners.",
            "The Dutch love tulips.",
        ],
        [
            "The French Blue Metal Door Sign fits.",
            "Classic French Style Basket in green.",
            "Danish Rose Bedside Cabinet.",
            "Popular in Germany and France.",
        ],
    ),
    "guarantee": (
        [
            "Guaranteed to sell.",
            "These always sell.",
            "It never fails at Christmas.",
            "100% of buyers re-order.",
            "A risk-free addition.",
            "A risk free choice.",
        ],
        ["These often sell well.", "Sold in hallways and shops.", "Most accounts re-order."],
    ),
    "causal": (
        [
            "This will increase your sales.",
            "It will definitely boost their revenue.",
            "Because of the warm weather, customers will buy more fans.",
            "Stocking it leads to higher sales.",
            "This will fly off the shelves.",
        ],
        [
            "Similar shops bought it after the lanterns.",
            "It pairs with their best-selling mugs.",
            "The mug sold well last winter.",
        ],
    ),
}


@pytest.mark.parametrize("category", list(CASES))
def test_default_terms_flag_positives_and_spare_negatives(category):
    """Flag each category's positive examples and none of its negatives."""
    positives, negatives = CASES[category]
    code = ("sensitive_attribute:" if category not in {"guarantee", "causal"} else "risky_claim:") + category
    for text in positives:
        # When a positive example is checked, Then it carries the category's flag with a real span
        flags = [f for f in find_policy_issues(text) if f.code == code]
        assert flags, text
        assert all(text[f.start : f.end] == f.text for f in flags)
    for text in negatives:
        # When a negative example is checked, Then no policy flag at all is raised
        assert find_policy_issues(text) == [], text


def test_sensitive_attributes_are_errors_and_claims_are_warnings():
    """Give sensitive attributes severity error and risky claims severity warning."""
    # Given a text with both
    flags = find_policy_issues("Muslim customers will always buy it.")
    # Then severities follow the kind of issue
    assert {(f.code, f.severity) for f in flags} == {
        ("sensitive_attribute:religion", "error"),
        ("risky_claim:guarantee", "warning"),
    }


def test_matching_is_case_insensitive_and_on_word_boundaries():
    """Match whole words in any case, never inside longer words."""
    # Given terms inside longer words and in odd case
    inside = find_policy_issues("Hallways, females-only? No: email, Racecourse, unguaranteedly.")
    upper = find_policy_issues("GUARANTEED and ALWAYS")
    # Then only whole words match
    assert [f.text for f in inside] == ["females"]
    assert [f.text for f in upper] == ["GUARANTEED", "ALWAYS"]


def test_extra_terms_from_an_admin_are_matched():
    """Match admin-added plain and regex terms alongside the defaults."""
    # Given a TermList with one plain and one regex extra term
    terms = TermList.build([("guarantee", "money back", False), Term("causal", r"double\s+your\s+\w+", True)])
    # When a text using both is checked
    flags = find_policy_issues("Money-back offer: this could double your footfall.", terms=terms)
    # Then both extra terms are found, with the flag codes of their categories
    assert [(f.code, f.text) for f in flags] == [
        ("risky_claim:guarantee", "Money-back"),
        ("risky_claim:causal", "double your footfall"),
    ]


def test_default_terms_can_be_disabled_or_left_out():
    """Drop a default term by its pattern, or all defaults at once."""
    # Given a TermList without the default "always" and one without any defaults
    without_always = TermList.build(disabled=["always"])
    only_extra = TermList.build([("age", "granny", False)], include_defaults=False)
    # Then "always" is no longer flagged, and only the extra term is known
    assert find_policy_issues("They always buy it.", terms=without_always) == []
    assert [f.text for f in find_policy_issues("Granny always buys elderly gifts.", terms=only_extra)] == ["Granny"]


@pytest.mark.parametrize(
    ("category", "pattern", "is_regex"),
    [("hobby", "golf", False), ("age", "  ", False), ("age", "(unclosed", True), ("age", "x*", True)],
)
def test_invalid_terms_are_rejected(category, pattern, is_regex):
    """Reject unknown categories, empty patterns, broken regexes and regexes matching nothing."""
    with pytest.raises(ValueError):
        validate_term(category, pattern, is_regex)
    with pytest.raises(ValueError):
        Term(category, pattern, is_regex)


def test_sensitive_word_in_the_evidence_describes_the_product():
    """Excuse a sensitive word that the evidence itself contains, but never a risky claim."""
    # Given a reason quoting products whose names hold sensitive-looking words
    text = "Like the Booze & Women Greeting Card, this card always sells."
    evidence = Evidence(recommended="BOOZE & WOMEN GREETING CARD")
    # When checked with and without evidence
    codes_without = {f.code for f in check_text(text)}
    codes_with = {f.code for f in check_text(text, evidence=evidence)}
    # Then the gender flag disappears with evidence and the guarantee stays
    assert "sensitive_attribute:gender" in codes_without
    assert "sensitive_attribute:gender" not in codes_with
    assert "risky_claim:guarantee" in codes_with


# --- hallucinated entities -------------------------------------------------------------------

CATALOGUE = [
    "WHITE HANGING HEART T-LIGHT HOLDER",
    "RED HANGING HEART T-LIGHT HOLDER",
    "REGENCY CAKESTAND 3 TIER",
    "CERAMIC MUG PINK POLKADOT",
    "PAPER LANTERN RED",
    "CHRISTMAS BAUBLE GOLD",
    "SET OF 6 DOILIES",
    "WOODEN BOX WITH LID",
    "Found by jackie",
]


@pytest.fixture
def evidence():
    return Evidence(
        recommended="WHITE HANGING HEART T-LIGHT HOLDER",
        evidence_products=["RED HANGING HEART T-LIGHT HOLDER", "REGENCY CAKESTAND 3 TIER"],
        concepts=["heart decorations"],
        highlighted_words=["hanging"],
        extra=["unit price 2.55"],
        vocabulary=build_vocabulary(CATALOGUE),
    )


def test_vocabulary_holds_product_words_only():
    """Build the vocabulary from upper-case descriptions, without generic words or stock notes."""
    vocab = build_vocabulary(CATALOGUE)
    assert {"lantern", "bauble", "mug", "cakestand", "doilies", "heart"} <= vocab
    assert not {"set", "of", "with", "found", "jackie"} & vocab


def test_plural_and_case_variants_share_a_form():
    """Compare words by lower case and -s/-es/-ies plural forms."""
    assert forms("BOXES") & forms("box")
    assert forms("Doilies") & forms("DOILY")
    assert forms("candles") & forms("Candle")
    assert forms("mug's") & forms("MUGS")
    assert not forms("glass") & forms("gla")


def test_product_words_missing_from_the_evidence_are_flagged(evidence):
    """Flag catalogue words the evidence lacks, with their spans, one flag per run of words."""
    # Given a reason naming supported items and unsupported ones
    text = "Their hanging hearts and cake stand orders suggest a Ceramic Mug or a paper lantern."
    # When checked
    flags = find_hallucinated_entities(text, evidence)
    # Then only the unsupported runs are flagged, at their offsets
    assert [(f.code, f.text) for f in flags] == [
        ("hallucinated_entity", "Ceramic Mug"),
        ("hallucinated_entity", "paper lantern"),
    ]
    assert all(text[f.start : f.end] == f.text and f.severity == "warning" for f in flags)


def test_numbers_prices_and_percentages_need_evidence(evidence):
    """Flag numbers, prices and percentages the evidence does not contain."""
    # Given a reason with supported (3, 2.55) and unsupported (12, £4.99, 20%) numbers
    text = "At £2.55 for the 3 tier stand, 12 units cost £4.99 more and lift margins 20%."
    # When checked
    flags = [f for f in find_hallucinated_entities(text, evidence) if f.code == "hallucinated_entity:number"]
    # Then only the unsupported ones are flagged
    assert [f.text for f in flags] == ["12", "£4.99", "20%"]


def test_entities_are_checked_only_with_evidence_and_pii_digits_are_not_reported_twice(evidence):
    """Skip the entity check without evidence, and never flag a phone number's digits as a number."""
    text = "Call 07700 900123 about the ceramic mugs."
    codes_without = {f.code for f in check_text(text)}
    flags_with = check_text(text, evidence=evidence)
    assert not any(c.startswith("hallucinated_entity") for c in codes_without)
    assert [(f.code, f.text) for f in flags_with] == [
        ("pii:phone", "07700 900123"),
        ("hallucinated_entity", "ceramic mugs"),
    ]


def test_a_faithful_reason_gets_no_flags(evidence):
    """Pass a reason that only uses evidence words."""
    text = "This shop re-orders the Red Hanging Heart T-Light Holder, so the white one fits their heart decorations."
    assert check_text(text, evidence=evidence, source_ids=["17850"]) == []


# --- length ----------------------------------------------------------------------------------


def test_empty_text_is_an_error_and_stops_other_checks():
    """Return only an 'empty' error for blank text."""
    for text in ("", "   \n"):
        flags = check_text(text)
        assert [f.code for f in flags] == ["empty"]
        assert has_errors(flags)


def test_more_than_three_sentences_is_too_long():
    """Flag the fourth sentence onward, but not three sentences with abbreviations and prices."""
    three = "Mr. Smith's shop sells mugs at £2.55 each. It stocks e.g. lanterns. They re-order monthly."
    four = three + " They also like bunting."
    assert check_length(three) == []
    (flag,) = check_length(four)
    assert flag.code == "too_long"
    assert flag.text == "They also like bunting."
    assert four[flag.start : flag.end] == flag.text


def test_more_than_400_characters_is_too_long():
    """Flag a single sentence past 400 characters from character 400 on."""
    text = "The lanterns " + "and more lanterns " * 25 + "sell."
    (flag,) = check_length(text)
    assert len(text) > 400
    assert (flag.code, flag.start, flag.end) == ("too_long", 400, len(text))


def test_flag_serializes_to_a_dict():
    """Turn a Flag into a JSON-ready dict for storage."""
    flag = Flag("pii:email", "Contains an e-mail address.", 3, 10, "a@b.com", "error")
    assert flag.as_dict() == {
        "code": "pii:email",
        "message": "Contains an e-mail address.",
        "start": 3,
        "end": 10,
        "text": "a@b.com",
        "severity": "error",
    }
