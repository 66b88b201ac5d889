"""How an explanation's stored facts read on a page: evidence lines, flagged reason segments, flag
labels, word highlights, the necessity counterfactual and the concepts.

Plain data built from the stored JSON, no queries: the review pages use it directly, and
``sales.presentation`` builds the sales card from it (the app above imports from here, never the
other way round).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

# A word whose |normalized share| reaches this gets the full highlight colour; weaker words get a
# proportionally lighter one (shares of a description's words add up to 1 in absolute value).
FULL_HIGHLIGHT_SHARE = 0.5
# Flag codes are "<kind>" or "<kind>:<detail>"; the kind gets a translated label.
FLAG_LABELS = {
    "hallucinated_entity": _("Not in the evidence"),
    "pii": _("Personal data"),
    "sensitive_attribute": _("Sensitive attribute"),
    "risky_claim": _("Risky claim"),
    "too_long": _("Too long"),
    "empty": _("Empty text"),
    "template_fallback": _("Template reason used"),
}


# Checks store their message in English at generation. The messages that quote the flagged text are
# rebuilt from it here, in the reader's language; the fixed ones are catalogue entries themselves.
FLAG_MESSAGES = {
    "hallucinated_entity": _("“%(text)s” is not in the evidence for this recommendation."),
    "hallucinated_entity:number": _("The number “%(text)s” is not in the evidence."),
}
# Fixed messages, so that the catalogue has them (the checks write them, in English, as data).
FIXED_FLAG_MESSAGES = (
    _("The text is empty."),
    _("The model wrote nothing usable."),
    _("The customer's own source id appears in the text."),
    _("Contains a e-mail address."),
    _("Contains a bank account number (IBAN)."),
    _("Contains a payment card number."),
    _("Contains a the customer's own id."),
    _("Contains a phone number."),
    _("Contains a postal address."),
    _("Contains a person's name."),
    _("Uses the customer's age as a reason."),
    _("Uses the customer's gender as a reason."),
    _("Uses ethnicity or race as a reason."),
    _("Uses religion as a reason."),
    _("Uses health or disability as a reason."),
    _("Uses nationality as a reason."),
    _("Makes a guarantee or absolute claim."),
    _("Claims an unsupported effect (e.g. on sales)."),
)


@dataclass(frozen=True)
class WordHighlight:
    """One word of a description with its signed SIG share and the strength of its highlight (0..1)."""

    word: str
    share: float
    intensity: float

    @property
    def positive(self) -> bool:
        return self.share >= 0

    @property
    def percent(self) -> float:
        return self.share * 100


@dataclass(frozen=True)
class EvidenceLine:
    """A past purchase (or the aggregated rest) with its share of the score."""

    description: str
    stock_code: str | None
    share: float
    percent: float  # share of the recommendation score, in percent (may be negative)
    bar_percent: float  # the same clamped to 0..100 for the bar
    count: int | None = None  # purchases aggregated in the "other purchases" row
    kind: str = "purchase"  # or "popularity": the hybrid's non-personal base term
    product_id: int | None = None  # None for the aggregated rest and the popularity term
    weight: float | None = None  # the purchase's recency/quantity weight in the profile
    family: str = ""  # a grouped line's family word ("lantern"); its description is the family's top purchase
    co_buyers_rate: float | None = None  # share of the buyers of this purchase who also bought the item
    co_buyers: int | None = None  # how many customers bought this purchase

    @property
    def is_rest(self) -> bool:
        return self.stock_code is None and not self.is_base

    @property
    def is_base(self) -> bool:
        return self.kind == "popularity"

    @property
    def is_repeat(self) -> bool:
        """The line is the recommended product itself, bought before."""
        return self.kind == "self"

    @property
    def is_family(self) -> bool:
        return self.kind == "family"

    @property
    def others(self) -> int:
        """Purchases of the family besides the one named."""
        return max(0, (self.count or 1) - 1) if self.is_family else 0

    @property
    def co_buyers_percent(self) -> float | None:
        return None if self.co_buyers_rate is None else self.co_buyers_rate * 100

    @property
    def line_kind(self) -> str:
        """What the line stands for: "purchase", "family" (similar purchases grouped), "self" (the item itself,
        bought before), "rest" (the aggregated other purchases) or "popularity"."""
        if self.is_base:
            return "popularity"
        if self.is_rest:
            return "rest"
        return self.kind if self.kind in ("family", "self") else "purchase"


@dataclass(frozen=True)
class ReasonSegment:
    """A piece of the reason text; ``flag`` is set on pieces an automatic check flagged."""

    text: str
    flag: dict | None = None


@dataclass(frozen=True)
class Necessity:
    """The counterfactual: the recommendation recomputed without its top evidence purchases."""

    removed: tuple[int, ...]  # product ids left out of the profile
    drops_out: bool  # whether the item leaves the top N
    new_rank: int | None
    counterfactual_score: float | None
    top_n: int

    @property
    def removed_count(self) -> int:
        return len(self.removed)


def word_highlights(data: dict | None) -> list[WordHighlight]:
    """Return the highlighted words of one SIG attribution (``{words, normalized}``), [] if malformed."""
    if not data:
        return []
    words = data.get("words") or []
    shares = data.get("normalized") or []
    if len(words) != len(shares):
        return []  # malformed attributions are not shown rather than shown misaligned
    return [
        WordHighlight(word=w, share=float(x), intensity=round(min(1.0, abs(float(x)) / FULL_HIGHLIGHT_SHARE), 3))
        for w, x in zip(words, shares, strict=True)
    ]


def _evidence_line(row: dict, score: float, **extra) -> EvidenceLine:
    """One stored evidence row (a purchase or a group of them) with its share of ``score`` in percent."""
    share = float(row.get("share") or 0.0)
    percent = share / score * 100 if score else 0.0
    product_id = row.get("product_id")
    return EvidenceLine(
        description=row.get("description") or "",
        stock_code=row.get("stock_code") if product_id is not None else None,
        share=share,
        percent=percent,
        bar_percent=round(max(0.0, min(100.0, percent)), 2),
        count=row.get("count"),
        kind=row.get("kind") or "purchase",
        product_id=product_id,
        **extra,
    )


def evidence_lines(rows: Sequence[dict], score: float) -> list[EvidenceLine]:
    """Return the stored evidence rows as lines with their share of ``score`` in percent."""
    return [
        _evidence_line(row, score, weight=float(row["weight"]) if row.get("weight") is not None else None)
        for row in rows
    ]


def evidence_group_lines(groups: dict | None, score: float) -> list[EvidenceLine]:
    """Return the concise evidence (``Explanation.evidence_groups``): at most five lines summing to ``score``."""
    return [
        _evidence_line(
            row,
            score,
            family=row.get("family") or "",
            co_buyers_rate=float(row["co_buyers_rate"]) if row.get("co_buyers_rate") is not None else None,
            co_buyers=row.get("co_buyers"),
        )
        for row in (groups or {}).get("lines") or []
    ]


def reason_segments(text: str, flags: Sequence[dict]) -> list[ReasonSegment]:
    """Split the reason so that the spans the checks flagged can be marked for reviewers."""
    spans = []
    for flag in flags:
        start, end = flag.get("start"), flag.get("end")
        # Offsets are data: use a span only when it really points at the flagged text.
        if not isinstance(start, int) or not isinstance(end, int) or not 0 <= start < end <= len(text):
            continue
        if flag.get("text") and text[start:end] != flag["text"]:
            continue
        spans.append((start, end, flag))
    segments, cursor = [], 0
    for start, end, flag in sorted(spans, key=lambda s: (s[0], s[1])):
        if start < cursor:
            continue  # overlapping spans: the first one wins
        if start > cursor:
            segments.append(ReasonSegment(text[cursor:start]))
        segments.append(ReasonSegment(text[start:end], flag))
        cursor = end
    if cursor < len(text):
        segments.append(ReasonSegment(text[cursor:]))
    return segments


def flag_kind_label(kind: str) -> str:
    """Return the translated label of a flag kind ("pii" -> "Personal data"), the kind itself if unknown."""
    return str(FLAG_LABELS.get(kind, kind))


def flag_message(flag: dict) -> str:
    """Return a stored flag's message in the active language (as stored where no translation exists)."""
    template = FLAG_MESSAGES.get(str(flag.get("code") or ""))
    if template is not None and flag.get("text"):
        return str(template) % {"text": flag["text"]}
    message = str(flag.get("message") or "")
    return gettext(message) if message else ""


def flag_view(flag: dict) -> dict:
    """Return a stored flag with its translated ``label`` and ``message`` and a severity of "error" or "warning"."""
    code = str(flag.get("code") or "")
    kind = code.split(":", 1)[0]
    severity = "error" if flag.get("severity") == "error" else "warning"
    return {**flag, "label": FLAG_LABELS.get(kind, code), "message": flag_message(flag), "severity": severity}


def necessity_view(data: dict | None, *, top_n: int) -> Necessity | None:
    """Return the stored counterfactual, or None when there is none to describe.

    None when it was not computed, and when nothing was left out of the profile (no evidence
    purchase to remove, so "without the top purchases" would describe nothing).
    """
    if not isinstance(data, dict) or "drops_out" not in data:
        return None
    removed = data.get("removed") or []
    if not removed:
        return None
    score = data.get("counterfactual_score")
    return Necessity(
        removed=tuple(int(pk) for pk in removed),
        drops_out=bool(data["drops_out"]),
        new_rank=data.get("new_rank"),
        counterfactual_score=float(score) if score is not None else None,
        top_n=int(top_n),
    )


def concepts_shared_first(concepts: Sequence[dict] | None, sheet: dict | None = None) -> list[dict]:
    """Return an explanation's concepts, shared ones first (stable within each group), each with ``as_fact``:
    False when the customer's own orders contradict the concept's rule (from the reason's fact sheet), so
    that its chip reads as a similarity to the concept's profile rather than a false fact."""
    contradicted = {c["name"] for c in (sheet or {}).get("concepts", []) if c.get("holds") is False}
    ordered = sorted(concepts or [], key=lambda c: not c.get("shared"))
    return [{**c, "as_fact": c.get("concept") not in contradicted} for c in ordered]


def template_reason_text(explanation) -> str:
    """Return the explanation's template reason in the active language, rebuilt from its fact sheet (the
    stored ``template_text`` is the English one; an explanation without a sheet keeps it)."""
    import zlib

    from explanations.services.reasons import template_text

    if not explanation.reason_facts:
        return explanation.template_text
    variant = zlib.crc32(str(explanation.recommendation_id).encode())
    return template_text(explanation.reason_facts, variant=variant)


# --------------------------------------------------------------------------- confidence

# Bands of the calibrated purchase probability, highest first: (lowest probability, band, label). About one
# served recommendation in nine is bought within 90 days, so "medium" is around that and "high" twice it.
CONFIDENCE_BANDS = ((0.20, "high", _("High")), (0.08, "medium", _("Medium")), (-math.inf, "low", _("Low")))


@dataclass(frozen=True)
class ConfidenceView:
    """The confidence as a sales person reads it: its band and what the figure means, in one line."""

    band: str  # "high", "medium" or "low"
    label: str
    meaning: str


def confidence_view(probability: float | None) -> ConfidenceView | None:
    """Return the band and one-line meaning of a calibrated probability (None: not calibrated yet)."""
    if probability is None or not math.isfinite(probability):
        return None
    band, label = next((b, lbl) for low, b, lbl in CONFIDENCE_BANDS if probability >= low)
    count = round(probability * 100)
    if count < 1:
        meaning = _("Fewer than 1 in 100 recommendations like this one led to a purchase within 90 days.")
    else:
        meaning = _("About %(count)d in 100 recommendations like this one led to a purchase within 90 days.") % {
            "count": count
        }
    return ConfidenceView(band, str(label), str(meaning))
