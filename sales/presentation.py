"""What a viewer sees of a recommendation and its explanation: the one place that decides it.

``recommendation_card`` turns a recommendation, its explanation and the viewer's roles into a
``Card``. The customer page's template and the customers API's serializer both render Cards and
decide nothing themselves, so the page and the API cannot disagree.

A Card is plain, immutable data (strings, numbers, tuples, small dicts): no model instances and
no querysets, so that a rendered card can be cached by batch and explanation versions, the
viewer's language and ``Viewer.cache_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from core.permissions import UserLike, user_is_reviewer, user_is_sales_only
from explanations.models import Explanation
from explanations.presentation import (
    EvidenceLine,
    Necessity,
    ReasonSegment,
    WordHighlight,
    concepts_shared_first,
    evidence_lines,
    flag_view,
    necessity_view,
    reason_segments,
    template_reason_text,
    word_highlights,
)
from explanations.review import reason_readable
from recommendations.models import Recommendation

REASON_VISIBLE = "visible"
REASON_UNDER_REVIEW = "under_review"
# The recommendation is in the A/B control arm: sales never get its reason (outcomes.services).
REASON_NOT_SHOWN = "not_shown"
REASON_STATUSES = (REASON_VISIBLE, REASON_UNDER_REVIEW, REASON_NOT_SHOWN)


@dataclass(frozen=True)
class Viewer:
    """Who looks at a card, reduced to what the card depends on (roles, never identity)."""

    reviewer: bool  # reads every reason and the automatic checks' flags (reviewers, managers, admins)
    sales_only: bool  # a sales person only: the A/B control arm hides reasons from them
    authenticated: bool = True

    @property
    def cache_key(self) -> str:
        """The part of a cached card's key that stands for the viewer."""
        return f"r{int(self.reviewer)}s{int(self.sales_only)}a{int(self.authenticated)}"


def viewer_for(user: UserLike) -> Viewer:
    """Return the Viewer for ``user`` (the user's roles are read once and cached on it)."""
    return Viewer(
        reviewer=user_is_reviewer(user=user),
        sales_only=user_is_sales_only(user=user),
        authenticated=bool(getattr(user, "is_authenticated", False)),
    )


@dataclass(frozen=True)
class ExplanationCard:
    """The explanation of one recommendation as one viewer may see it."""

    status: str
    failed: bool
    reason_status: str  # one of REASON_STATUSES
    reason: str | None  # the reason text, only when the viewer may read it
    reason_segments: tuple[ReasonSegment, ...]  # the same text split at the flagged spans
    template_text: str | None  # the reason built only from the evidence; None in the control arm or if it is the reason
    flags: tuple[dict, ...] | None  # None for viewers who do not review explanations
    evidence: tuple[EvidenceLine, ...]
    necessity: Necessity | None
    concepts: tuple[dict, ...]  # shared ones first
    product_words: tuple[WordHighlight, ...]
    evidence_words: tuple[WordHighlight, ...]
    evidence_words_description: str
    evidence_words_product_id: int | None
    confidence: float | None  # calibrated probability of a purchase within 90 days
    consistency: float | None  # of the reason text: None when the viewer may not read it
    versions: dict
    generated_at: datetime

    @property
    def reason_visible(self) -> bool:
        return self.reason_status == REASON_VISIBLE

    @property
    def reason_withheld(self) -> bool:
        return self.reason_status == REASON_NOT_SHOWN

    @property
    def shared_concepts(self) -> list[dict]:
        return [c for c in self.concepts if c.get("shared")]

    @property
    def confidence_percent(self) -> float | None:
        return None if self.confidence is None else self.confidence * 100

    @property
    def confidence_digits(self) -> int:
        """Decimals to show: 3.8% rather than 4% below ten percent."""
        percent = self.confidence_percent
        return 1 if percent is not None and percent < 10 else 0


@dataclass(frozen=True)
class Card:
    """One recommendation card: the product, its score and rank, and its explanation (None: pending)."""

    recommendation_id: int
    rank: int
    score: float
    stock_code: str
    description: str
    generated_at: datetime
    explanation: ExplanationCard | None
    control_badge: bool  # the A/B control arm, labelled for viewers who are not sales only


def recommendation_card(
    *, recommendation: Recommendation, explanation: Explanation | None, viewer: Viewer, control: bool = False
) -> Card:
    """Return what ``viewer`` may see of ``recommendation`` and its explanation (no queries).

    - The reason text only when the viewer may read it (reviewers always; others once approved);
      otherwise "under review". The template reason (built only from the evidence, so it says
      nothing the evidence lines beside it do not show) stands in, and is shown next to a readable
      reason as a summary. In the A/B control arm (``control``) a sales-only viewer gets neither.
    - Flags only for reviewers, marked in the reason where their offsets match it.
    - Evidence lines, the necessity counterfactual (only when purchases were left out), concepts,
      word highlights and confidence for every viewer.
    """
    product = recommendation.product
    panel = None if explanation is None else _explanation_card(recommendation, explanation, viewer, control)
    return Card(
        recommendation_id=recommendation.pk,
        rank=recommendation.rank,
        score=recommendation.score,
        stock_code=product.stock_code,
        description=product.description,
        generated_at=recommendation.generated_at,
        explanation=panel,
        control_badge=control and not viewer.sales_only,
    )


# Stands in for the viewer where a card cannot depend on it: no explanation, not in the control arm.
_ANYONE = Viewer(reviewer=False, sales_only=False, authenticated=False)


def recommendation_cards(
    *,
    recommendations: Sequence[Recommendation],
    viewer: Viewer | Callable[[], Viewer],
    control_ids: Collection[int] = (),
) -> list[Card]:
    """Return the cards of recommendations loaded with their explanations (``select_related``).

    ``viewer`` may be a function returning the Viewer: it is then called only if some card depends
    on the viewer (an explained or control-arm recommendation), which spares a role query for a
    list of recommendations not explained yet.
    """
    resolved: list[Viewer] = []

    def current_viewer() -> Viewer:
        if not resolved:
            resolved.append(viewer() if callable(viewer) else viewer)
        return resolved[0]

    cards = []
    for rec in recommendations:
        explanation = getattr(rec, "explanation", None)  # None while not generated yet
        control = rec.pk in control_ids
        who = current_viewer() if explanation is not None or control else _ANYONE
        cards.append(recommendation_card(recommendation=rec, explanation=explanation, viewer=who, control=control))
    return cards


def _explanation_card(
    recommendation: Recommendation, explanation: Explanation, viewer: Viewer, control: bool
) -> ExplanationCard:
    withheld = control and viewer.sales_only
    visible = not withheld and reason_readable(
        status=explanation.status, reviewer=viewer.reviewer, authenticated=viewer.authenticated
    )
    reason_status = REASON_NOT_SHOWN if withheld else (REASON_VISIBLE if visible else REASON_UNDER_REVIEW)
    flags = tuple(flag_view(f) for f in explanation.flags or []) if viewer.reviewer else None
    text = (explanation.reason_text or None) if visible else None
    words = explanation.word_attributions or {}
    evidence_attr = words.get("evidence") or {}
    evidence = tuple(evidence_lines(explanation.evidence or [], recommendation.score))
    top = next((line for line in evidence if line.product_id is not None), None)
    top_n = recommendation.batch.params.get("top_n") or settings.ELM_RECOMMENDATIONS_PER_CUSTOMER
    return ExplanationCard(
        status=explanation.status,
        failed=explanation.status == Explanation.Status.FAILED,
        reason_status=reason_status,
        reason=text,
        reason_segments=tuple(reason_segments(text, flags or ())) if text else (),
        # Not repeated when it is the reason itself (the language model's fallback).
        # In the viewer's language: the template is rebuilt from the fact sheet through gettext.
        template_text=None
        if withheld or explanation.template_text == text
        else (template_reason_text(explanation) or None),
        flags=flags,
        evidence=evidence,
        necessity=necessity_view(explanation.necessity, top_n=top_n),
        concepts=tuple(concepts_shared_first(explanation.concepts, explanation.reason_facts)),
        product_words=tuple(word_highlights(words.get("product"))),
        evidence_words=tuple(word_highlights(evidence_attr)),
        evidence_words_description=evidence_attr.get("text") or (top.description if top else ""),
        evidence_words_product_id=evidence_attr.get("product_id"),
        confidence=explanation.confidence,
        consistency=explanation.consistency if visible else None,
        versions=dict(explanation.versions or {}),
        generated_at=explanation.generated_at,
    )
