"""The Confidence section of docs/evaluation.md: rendered from the measured report, replaced in place."""

from __future__ import annotations

from recommendations.evaluation.confidence_doc import confidence_section, write_confidence_section

REPORT = {
    "horizon_days": 90,
    "cutoffs": {"fitting": ["2011-04-28T00:00:00"], "validation": "2011-06-12T00:00:00",
                "test": "2011-09-10T00:00:00", "latest": "2011-12-09T12:50:00"},
    "features": [{"name": "rank", "meaning": "position in the customer's list"}],
    "candidates": [
        {"kind": "logistic", "params": {"C": 1.0}, "validation_auc": 0.74, "validation_within_list_auc": 0.62}
    ],
    "chosen": {"kind": "logistic", "params": {"C": 1.0}, "calibration": "isotonic"},
    "fitting_pairs": 100, "validation_pairs": 50,
    "test": {"pairs": 20, "buy_rate": 0.1, "mean_confidence": 0.1, "auc": 0.76, "within_list_auc": 0.58, "ece": 0.03,
             "by_rank": [{"rank": 1, "pairs": 10, "buy_rate": 0.2, "mean_confidence": 0.15},
                         {"rank": 2, "pairs": 10, "buy_rate": 0.0, "mean_confidence": 0.05}],
             "by_kind": {"reorder": {"pairs": 5, "buy_rate": 0.2, "mean_confidence": 0.2, "auc": None}}},
    "test_uncalibrated_ece": 0.05, "test_rank_only_auc": 0.55,
}  # fmt: skip


def test_the_section_states_each_goal_as_measured():
    """AUC 0.76 meets >= 0.75; within-list 0.58 misses >= 0.60; ECE 0.03 misses <= 0.02."""
    text = confidence_section(REPORT)
    assert "| ROC AUC over all served pairs | 0.7600 | >= 0.75: **met** |" in text
    assert ">= 0.60: **not met**" in text and "<= 0.02: **not met**" in text
    assert "falls from one rank to the next in 1 of 1 steps" in text
    assert "| reorder | 5 | 0.200 | 0.200 | — |" in text


def test_writing_replaces_the_section_and_keeps_the_rest(tmp_path):
    """A second write replaces the first section, whatever follows it stays."""
    doc = tmp_path / "evaluation.md"
    doc.write_text("# Offline evaluation\n\n## Result\n\nkept\n")
    write_confidence_section(doc, REPORT)
    write_confidence_section(doc, {**REPORT, "test": {**REPORT["test"], "auc": 0.70}})
    text = doc.read_text()
    assert text.count("## Confidence") == 1 and "kept" in text
    assert "| 0.7000 | >= 0.75: **not met** |" in text
    doc.write_text(text + "\n## Later section\n\nstays\n")
    write_confidence_section(doc, REPORT)
    assert doc.read_text().count("## Confidence") == 1 and "stays" in doc.read_text()
