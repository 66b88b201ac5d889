"""What a viewer sees of a recommendation and its explanation: the one place that decides it.

``recommendation_card`` turns a recommendation, its explanation and the viewer's roles into a
``Card``. The customer page's template and the customers API's serializer both render Cards and
decide nothing themselves, so the page and the API cannot disagree.

A Card is plain, immutable data (strings, numbers, tuples, small dicts): no model instances and
no querysets, so that a rendered card can be cached by batch and explanation versions, the
viewer's language and ``Viewer.cache_key``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.utils.translation import gettext, ngettext

from core.permissions import UserLike, user_is_reviewer, user_is_sales_only
from explanations.models import Explanation
from explanations.presentation import (
    ConfidenceView,
    EvidenceLine,
    Necessity,
    ReasonSegment,
    WordHighlight,
    concepts_shared_first,
    confidence_view,
    evidence_group_lines,
    evidence_lines,
    flag_view,
    necessity_view,
    reason_segments,
    template_reason_text,
    word_highlights,
)
from explanations.review import reader_language, reason_readable, reason_refused, reviewed_text_in
from recommendations.models import Recommendation
from recommendations.selectors import NEW, REORDER, recommendation_kind

REASON_VISIBLE = "visible"
REASON_UNDER_REVIEW = "under_review"
# The recommendation is in the A/B control arm: sales never get its reason (outcomes.services).
REASON_NOT_SHOWN = "not_shown"
# The written reason was refused (rejected or withdrawn): the template reason built from the evidence
# is the reason, or there is none at all. Never "under review": no one is reviewing it.
REASON_FROM_EVIDENCE = "from_evidence"
REASON_UNAVAILABLE = "unavailable"
REASON_STATUSES = (REASON_VISIBLE, REASON_UNDER_REVIEW, REASON_NOT_SHOWN, REASON_FROM_EVIDENCE, REASON_UNAVAILABLE)


@dataclass(frozen=True)
class Viewer:
    """Who looks at a card, reduced to what the card depends on (roles, never identity)."""

    reviewer: bool  # reads every reason and the automatic checks' flags (reviewers, managers, admins)
    sales_only: bool  # a sales person only: the A/B control arm hides reasons from them
    authenticated: bool = True
    language: str = settings.LANGUAGE_CODE  # the reason in this language, where one was written

    @property
    def cache_key(self) -> str:
        """The part of a cached card's key that stands for the viewer."""
        return f"r{int(self.reviewer)}s{int(self.sales_only)}a{int(self.authenticated)}l{self.language}"


def viewer_for(user: UserLike) -> Viewer:
    """Return the Viewer for ``user`` (the user's roles are read once and cached on it)."""
    return Viewer(
        reviewer=user_is_reviewer(user=user),
        sales_only=user_is_sales_only(user=user),
        authenticated=bool(getattr(user, "is_authenticated", False)),
        language=reader_language(),
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
    confidence_view: ConfidenceView | None  # its band (high / medium / low) and one-line meaning
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
    def reason_under_review(self) -> bool:
        return self.reason_status == REASON_UNDER_REVIEW

    @property
    def reason_from_evidence(self) -> bool:
        return self.reason_status == REASON_FROM_EVIDENCE

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
    kind: str = NEW  # REORDER (the customer bought it before) or NEW
    history: str = ""  # "Re-order: bought 4 times, last on 2011-10-02, about every 35 days" or "New to ..."

    @property
    def is_reorder(self) -> bool:
        return self.kind == REORDER


def recommendation_card(
    *,
    recommendation: Recommendation,
    explanation: Explanation | None,
    viewer: Viewer,
    control: bool = False,
    concept_names: Mapping[str, str] | None = None,
) -> Card:
    """Return what ``viewer`` may see of ``recommendation`` and its explanation (no queries).

    - The reason text only when the viewer may read it (reviewers always; others once approved);
      otherwise "under review". The template reason (built only from the evidence, so it says
      nothing the evidence lines beside it do not show) stands in, and is shown next to a readable
      reason as a summary. A refused reason (rejected, withdrawn) is not "under review": the template
      reason is the reason ("from_evidence"), or, without one, none is available ("unavailable").
      In the A/B control arm (``control``) a sales-only viewer gets neither.
    - Flags only for reviewers, marked in the reason where their offsets match it.
    - Evidence lines, the necessity counterfactual (only when purchases were left out), concepts,
      word highlights and confidence for every viewer. Each concept gets a ``label``: its name in the
      page's language from ``concept_names`` (stored name -> name), else the stored name.
    """
    product = recommendation.product
    panel = (
        None
        if explanation is None
        else _explanation_card(recommendation, explanation, viewer, control, concept_names or {})
    )
    return Card(
        recommendation_id=recommendation.pk,
        rank=recommendation.rank,
        score=recommendation.score,
        stock_code=product.stock_code,
        description=product.description,
        generated_at=recommendation.generated_at,
        explanation=panel,
        control_badge=control and not viewer.sales_only,
        kind=recommendation_kind(recommendation),
        history=history_text(recommendation),
    )


def history_text(recommendation: Recommendation) -> str:
    """Say whether the customer bought the product before: how often, when last, their usual interval."""
    times = recommendation.times_bought
    if not times or recommendation.last_bought is None:
        return gettext("New to this customer")
    text = ngettext(
        "Re-order: bought once, last on %(date)s",
        "Re-order: bought %(count)d times, last on %(date)s",
        times,
    ) % {"count": times, "date": recommendation.last_bought.isoformat()}
    if recommendation.usual_interval_days is not None:
        days = max(round(recommendation.usual_interval_days), 1)
        text += ngettext(", about every day", ", about every %(days)d days", days) % {"days": days}
    return text


# Stands in for the viewer where a card cannot depend on it: no explanation, not in the control arm.
_ANYONE = Viewer(reviewer=False, sales_only=False, authenticated=False)


def recommendation_cards(
    *,
    recommendations: Sequence[Recommendation],
    viewer: Viewer | Callable[[], Viewer],
    control_ids: Collection[int] = (),
    concept_names: Mapping[str, str] | None = None,
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
        cards.append(
            recommendation_card(
                recommendation=rec, explanation=explanation, viewer=who, control=control, concept_names=concept_names
            )
        )
    return cards


def _explanation_card(
    recommendation: Recommendation,
    explanation: Explanation,
    viewer: Viewer,
    control: bool,
    concept_names: Mapping[str, str],
) -> ExplanationCard:
    withheld = control and viewer.sales_only
    # The reason in the viewer's language, reviewed on its own (English where none was written).
    reviewed = reviewed_text_in(explanation, viewer.language)
    visible = not withheld and reason_readable(
        status=reviewed.status, reviewer=viewer.reviewer, authenticated=viewer.authenticated
    )
    template = reviewed.template_text or None
    if reviewed is explanation and viewer.language != settings.LANGUAGE_CODE:
        # No text of the viewer's language was written (numbers only, or explained before there were any):
        # the template is rebuilt from the stored fact sheet through gettext, in the viewer's language.
        template = template_reason_text(explanation) or template
    if withheld:
        reason_status = REASON_NOT_SHOWN
    elif visible:
        reason_status = REASON_VISIBLE
    elif reason_refused(status=reviewed.status):
        reason_status = REASON_FROM_EVIDENCE if template else REASON_UNAVAILABLE
    else:
        reason_status = REASON_UNDER_REVIEW
    flags = tuple(flag_view(f) for f in reviewed.flags or []) if viewer.reviewer else None
    text = (reviewed.reason_text or None) if visible else None
    words = explanation.word_attributions or {}
    evidence_attr = words.get("evidence") or {}
    # The concise lines (families, co-purchase facts) when the numbers pass wrote them; else the purchases.
    grouped = evidence_group_lines(explanation.evidence_groups, recommendation.score)
    evidence = tuple(grouped or evidence_lines(explanation.evidence or [], recommendation.score))
    top = next((line for line in evidence if line.product_id is not None and not line.is_repeat), None)
    top_n = recommendation.batch.params.get("top_n") or settings.ELM_RECOMMENDATIONS_PER_CUSTOMER
    return ExplanationCard(
        status=explanation.status,
        failed=explanation.status == Explanation.Status.FAILED,
        reason_status=reason_status,
        reason=text,
        reason_segments=tuple(reason_segments(text, flags or ())) if text else (),
        # Not repeated when it is the reason itself (the language model's fallback).
        template_text=None if withheld or template == text else template,
        flags=flags,
        evidence=evidence,
        necessity=necessity_view(explanation.necessity, top_n=top_n),
        concepts=tuple(
            {**c, "label": concept_names.get(c.get("concept"), c.get("concept"))}
            for c in concepts_shared_first(explanation.concepts, explanation.reason_facts)
        ),
        product_words=tuple(word_highlights(words.get("product"))),
        evidence_words=tuple(word_highlights(evidence_attr)),
        evidence_words_description=evidence_attr.get("text") or (top.description if top else ""),
        evidence_words_product_id=evidence_attr.get("product_id"),
        confidence=explanation.confidence,
        confidence_view=confidence_view(explanation.confidence),
        # Measured on the English text only (the encoder reads English).
        consistency=explanation.consistency if visible and reviewed is explanation else None,
        versions=dict(explanation.versions or {}),
        generated_at=explanation.generated_at,
    )
