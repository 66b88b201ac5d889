"""The evaluation report keeps the sections other scripts wrote into docs/evaluation.md."""

from recommendations.evaluation.report import keep_marked_sections


def test_a_new_report_keeps_marked_sections_it_does_not_write():
    # Given a report file with a section written by another script
    section = "<!-- evidence-coverage:start -->\n## Evidence coverage\n79%\n<!-- evidence-coverage:end -->"
    old = f"# Old report\n\n{section}\n"
    # When a new report replaces it
    new = keep_marked_sections(old, "# New report\n")
    # Then the new report is there, followed by the kept section, once
    assert new.startswith("# New report\n")
    assert new.count("## Evidence coverage") == 1 and "# Old report" not in new
    # And a section the new report writes itself is not duplicated
    assert keep_marked_sections(old, new) == new
