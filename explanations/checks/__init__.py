"""Automatic checks on reason texts (generated or reviewer-edited) and on imported free text.

``check_text`` runs every check and returns ``Flag``s with offsets into the text, so a reviewer
page can highlight them:

* ``empty`` / ``too_long`` (more than 3 sentences or 400 characters);
* ``pii:<type>`` (email, phone, person, address, card, iban, source_id), see ``pii``;
* ``sensitive_attribute:<category>`` and ``risky_claim:guarantee|causal``, see ``policy``;
* ``hallucinated_entity`` and ``hallucinated_entity:number`` (only with ``evidence``), see ``entities``.

Pure Python; importing this package loads neither Presidio nor torch. Presidio loads on the
first PII check (call ``warm_up()`` at worker/web start to pay the ~2 s up front).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from explanations.checks.base import ERROR, SEVERITIES, WARNING, Evidence, Flag
from explanations.checks.entities import build_vocabulary, find_hallucinated_entities
from explanations.checks.pii import find_pii, scrub
from explanations.checks.policy import CATEGORIES, Term, TermList, find_policy_issues, validate_term

__all__ = [
    "CATEGORIES",
    "ERROR",
    "MAX_CHARS",
    "MAX_SENTENCES",
    "SEVERITIES",
    "WARNING",
    "Evidence",
    "Flag",
    "Term",
    "TermList",
    "build_vocabulary",
    "check_length",
    "check_text",
    "has_errors",
    "scrub",
    "validate_term",
    "warm_up",
]

MAX_SENTENCES = 3
MAX_CHARS = 400

# A sentence ends at . ! or ? followed by a space and a capital/digit/quote, or at the end of the
# text; but not after a title or a common abbreviation ("Mr. Smith", "e.g. mugs", "St. Ives").
_SENTENCE_END = re.compile(
    r"(?<!\b(?:Mr|Ms|Dr|St|vs|no|No))(?<!\b(?:Mrs|etc))(?<!\bapprox)(?<!\be\.g|\bi\.e)[.!?]+(?=\s+[\"“(A-Z0-9]|\s*$)"
)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Return (start, end) of each sentence of ``text``."""
    spans, start = [], 0
    for m in _SENTENCE_END.finditer(text):
        if text[start : m.end()].strip():
            spans.append((start, m.end()))
        start = m.end()
    if text[start:].strip():
        spans.append((start, len(text)))
    return [(s + len(text[s:e]) - len(text[s:e].lstrip()), e) for s, e in spans]


def check_length(text: str) -> list[Flag]:
    """Return ``empty`` for a blank text, ``too_long`` past 3 sentences or 400 characters."""
    if not text or not text.strip():
        return [Flag("empty", "The text is empty.", 0, len(text or ""), text or "", ERROR)]
    sentences = sentence_spans(text)
    cut_points = []
    if len(sentences) > MAX_SENTENCES:
        cut_points.append(sentences[MAX_SENTENCES][0])
    if len(text) > MAX_CHARS:
        cut_points.append(MAX_CHARS)
    if not cut_points:
        return []
    start = min(cut_points)
    message = (
        f"Too long: {len(sentences)} sentences and {len(text)} characters "
        f"(at most {MAX_SENTENCES} sentences and {MAX_CHARS} characters)."
    )
    return [Flag("too_long", message, start, len(text), text[start:], WARNING)]


def _in_evidence(phrase: str, evidence_text: str) -> bool:
    words = [re.escape(w) for w in phrase.lower().split()]
    return bool(words) and re.search(r"(?<!\w)" + r"\s+".join(words) + r"(?!\w)", evidence_text) is not None


def check_text(
    text: str,
    *,
    evidence: Evidence | None = None,
    source_ids: Iterable[str] = (),
    terms: TermList | None = None,
) -> list[Flag]:
    """Run every check on ``text`` and return the flags in text order.

    ``evidence`` enables the hallucinated-entity check and excuses names and sensitive words that
    the evidence itself contains (a product called "CHARLIE + LOLA ..." or "FRENCH STYLE BASKET").
    ``source_ids`` are the customer's own ids (CustomerID), flagged as ``pii:source_id``.
    ``terms`` is the policy TermList (defaults plus admin terms); the defaults if None.
    """
    flags = check_length(text)
    if flags and flags[0].code == "empty":
        return flags
    evidence_text = " ".join(t for t in evidence.texts() if t).lower() if evidence else ""

    pii = find_pii(text, source_ids=source_ids)
    if evidence_text:
        # A name that the product descriptions contain ("Charlie and Lola") is a product, not a person.
        pii = [f for f in pii if not (f.code == "pii:person" and _in_evidence(f.text, evidence_text))]
    flags += pii

    policy = find_policy_issues(text, terms=terms)
    if evidence_text:
        policy = [
            f for f in policy if not (f.code.startswith("sensitive_attribute:") and _in_evidence(f.text, evidence_text))
        ]
    flags += policy

    if evidence is not None:
        # Digits inside a phone number or an id are PII already; do not report them twice.
        flags += [
            f
            for f in find_hallucinated_entities(text, evidence)
            if not any(f.start < p.end and p.start < f.end for p in pii)
        ]
    flags.sort(key=lambda f: (f.start, f.end, f.code))
    return flags


def has_errors(flags: Iterable[Flag]) -> bool:
    """Return True if any flag has severity ``error`` (the text must not reach a sales user as is)."""
    return any(f.severity == ERROR for f in flags)


def warm_up() -> None:
    """Build the Presidio analyzer and compile the default terms now rather than on the first check."""
    from explanations.checks.pii import get_analyzer
    from explanations.checks.policy import default_terms

    get_analyzer()
    default_terms().compiled  # noqa: B018  (compiles the regexes)
    find_pii("Warm up: call 020 7946 0958 or mail a@example.com.")
