"""How an explanation's stored facts read on a page (explanations.presentation)."""

from __future__ import annotations

import pytest

from explanations.presentation import (
    concepts_shared_first,
    evidence_lines,
    flag_view,
    reason_segments,
    word_highlights,
)
from tests.factories import ExplanationFactory

pytestmark = pytest.mark.django_db


def test_explanation_concepts_puts_shared_concepts_first():
    """Order shared concepts first and keep the stored order within each group."""
    # given
    explanation = ExplanationFactory(
        concepts=[{"concept": "A", "shared": False}, {"concept": "B", "shared": True}, {"concept": "C", "shared": True}]
    )
    # when
    names = [c["concept"] for c in concepts_shared_first(explanation.concepts)]
    # then
    assert names == ["B", "C", "A"]


def test_a_concept_the_customers_orders_contradict_is_not_stated_as_a_fact():
    """A shared "Lapsed" chip for a customer whose orders are recent reads as a similarity, not as the fact."""
    # given the fact sheet says the customer's own figures contradict Lapsed and cannot tell for Garden
    concepts = [{"concept": "Lapsed", "shared": True}, {"concept": "Garden", "shared": True}]
    sheet = {"concepts": [{"name": "Lapsed", "holds": False}, {"name": "Garden", "holds": None}]}
    # when
    chips = concepts_shared_first(concepts, sheet)
    # then
    assert [(c["concept"], c["as_fact"]) for c in chips] == [("Lapsed", False), ("Garden", True)]


def test_japanese_viewers_read_the_template_reason_in_japanese():
    """The template line is rebuilt from the stored fact sheet in the active language."""
    from django.utils import translation

    from explanations.presentation import template_reason_text
    from tests.explanations.claim_cases import SHEET_A

    explanation = ExplanationFactory(reason_facts=SHEET_A, template_text="English template.")
    with translation.override("ja"):
        text = template_reason_text(explanation)
    assert "Jumbo bag red retrospot" in text and "回" in text
    assert template_reason_text(ExplanationFactory(reason_facts={}, template_text="Stored.")) == "Stored."


def test_evidence_lines_give_each_row_its_share_of_the_score_in_percent():
    """Express shares as percent of the score, clamp the bar to 0..100, tell purchases, rest and popularity apart."""
    # given
    rows = [
        {"product_id": 1, "stock_code": "A1", "description": "LANTERN", "weight": 2, "share": 0.6},
        {"product_id": 2, "stock_code": "B2", "description": "MUG", "share": -0.1},
        {"product_id": None, "stock_code": "ignored", "description": "other purchases", "share": 0.3, "count": 4},
        {"product_id": None, "kind": "popularity", "share": 0.2},
    ]
    # when
    lines = evidence_lines(rows, 1.0)
    # then
    assert [(round(line.percent, 1), line.bar_percent) for line in lines] == [
        (60.0, 60.0),
        (-10.0, 0.0),
        (30.0, 30.0),
        (20.0, 20.0),
    ]
    assert [line.line_kind for line in lines] == ["purchase", "purchase", "rest", "popularity"]
    assert [line.stock_code for line in lines] == ["A1", "B2", None, None]
    assert (lines[0].weight, lines[2].count) == (2.0, 4)
    assert [line.percent for line in evidence_lines(rows[:1], 0.0)] == [0.0]  # a zero score divides nothing


def test_reason_segments_mark_only_spans_that_point_at_the_flagged_text():
    """Mark a span whose offsets match its text; skip wrong, out-of-range and overlapping spans."""
    # given
    text = "A vintage lantern for them."
    flags = [
        {"start": 2, "end": 9, "text": "vintage"},
        {"start": 4, "end": 12, "text": "ntage la"},  # overlaps the first one
        {"start": 0, "end": 5, "text": "vintage"},  # offsets point elsewhere
        {"start": 20, "end": 99},  # out of range
    ]
    # when
    segments = reason_segments(text, flags)
    # then
    assert [(s.text, s.flag is not None) for s in segments] == [
        ("A ", False),
        ("vintage", True),
        (" lantern for them.", False),
    ]
    assert "".join(s.text for s in segments) == text


@pytest.mark.parametrize(
    ("flag", "label", "severity"),
    [
        ({"code": "pii:phone", "severity": "error"}, "Personal data", "error"),
        ({"code": "hallucinated_entity", "severity": "warning"}, "Not in the evidence", "warning"),
        ({"code": "unknown_check", "severity": "info"}, "unknown_check", "warning"),
    ],
)
def test_flag_view_labels_the_kind_and_knows_two_severities(flag, label, severity):
    """Label a flag by its kind (the part before ":"); anything but "error" is a warning."""
    view = flag_view(flag)
    assert (str(view["label"]), view["severity"], view["code"]) == (label, severity, flag["code"])


def test_word_highlights_scale_the_intensity_and_drop_misaligned_words():
    """Full colour from a half share of the attribution; words and shares of different lengths show nothing."""
    # when
    words = word_highlights({"words": ["RED", "MUG", "SET"], "normalized": [0.6, -0.25, 0.15]})
    # then
    assert [(w.word, w.intensity, w.positive) for w in words] == [
        ("RED", 1.0, True),
        ("MUG", 0.5, False),
        ("SET", 0.3, True),
    ]
    assert word_highlights({"words": ["RED"], "normalized": []}) == []
    assert word_highlights(None) == []


def test_flag_messages_are_read_in_the_readers_language():
    """Stored in English by the checks; a Japanese reader gets them in Japanese, quoting the flagged text."""
    from django.utils import translation

    entity = {"code": "hallucinated_entity", "message": "“vintage” is not in the evidence for this recommendation.",
              "text": "vintage", "start": 0, "end": 7}  # fmt: skip
    policy = {"code": "risky_claim:guarantee", "message": "Makes a guarantee or absolute claim.", "text": "always"}
    unknown = {"code": "claim:frequency", "message": "A message no catalogue knows.", "text": "often"}
    with translation.override("en"):
        assert flag_view(entity)["message"] == entity["message"]
    with translation.override("ja"):
        assert flag_view(entity)["message"] == "「vintage」はこの推薦の根拠にありません。"
        assert flag_view(policy)["message"] == "保証や断定的な主張をしています。"
        assert flag_view(unknown)["message"] == "A message no catalogue knows."
