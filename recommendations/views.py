"""Server-rendered customer pages: the searchable list, one customer's explained recommendations, outcomes."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from core.permissions import ADMIN, REVIEWER, SALES, role_required, user_has_role
from explanations.models import Explanation
from explanations.selectors import customer_description_for
from outcomes.models import COMMENT_MAX_LENGTH, Exposure, Outcome
from outcomes.selectors import is_sales_only, outcomes_by_recommendation
from outcomes.services import exposures_for, exposures_mark_shown, outcome_record
from recommendations import selectors
from recommendations.models import Customer, Recommendation, RecommendationBatch

CUSTOMERS_PER_PAGE = 25
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

SORT_CHOICES = [
    ("-last_purchase_at", _("Most recent purchase first")),
    ("last_purchase_at", _("Oldest last purchase first")),
    ("-revenue", _("Highest revenue first")),
    ("revenue", _("Lowest revenue first")),
    ("-order_count", _("Most orders first")),
    ("order_count", _("Fewest orders first")),
    ("-open_count", _("Most open recommendations first")),
    ("open_count", _("Fewest open recommendations first")),
]
OPEN_CHOICES = [("", _("Any")), ("yes", _("With open recommendations")), ("no", _("Without open recommendations"))]
# Namespace of the per-outcome idempotency tokens derived from a form's token (see outcome_create).
_OUTCOME_TOKEN_NAMESPACE = uuid.UUID("6f0d3c1e-9a57-4d1b-8a0e-2f4f1d6c2b10")


class CustomerFilterForm(forms.Form):
    """The search, region and sort controls above the customer list (submitted with GET)."""

    q = forms.CharField(
        label=_("Pseudonym starts with"),
        required=False,
        max_length=selectors.PSEUDONYM_SEARCH_MAX_LENGTH,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "spellcheck": "false"}),
    )
    region = forms.ChoiceField(label=_("Region"), required=False)
    last_from = forms.DateField(
        label=_("Last purchase from"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    last_to = forms.DateField(
        label=_("Last purchase to"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )
    open = forms.ChoiceField(label=_("Open recommendations"), required=False, choices=OPEN_CHOICES)
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=SORT_CHOICES)

    def __init__(self, *args, regions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [("", _("All regions")), *((r, r) for r in regions)]

    def clean_q(self) -> str | None:
        try:
            return selectors.normalize_pseudonym_search(self.cleaned_data.get("q"))
        except selectors.InvalidCustomerQuery as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean(self) -> dict:
        data = super().clean()
        start, end = data.get("last_from"), data.get("last_to")
        if start and end and start > end:
            self.add_error("last_to", _("The end date is before the start date."))
            data.pop("last_to", None)
        return data

    def filter_kwargs(self) -> dict:
        """Return the selector arguments of the valid fields (invalid ones are reported and ignored)."""
        data = self.cleaned_data if self.is_bound else {}
        has_open = {"yes": True, "no": False}.get(data.get("open") or "")
        return {
            "region": data.get("region") or None,
            "search": data.get("q") or None,
            "last_purchase_from": data.get("last_from"),
            "last_purchase_to": data.get("last_to"),
            "has_open": has_open,
        }


@dataclass(frozen=True)
class SortableColumn:
    """A column header that sorts the list when followed (descending first, then ascending)."""

    key: str
    label: str
    next_sort: str
    aria_sort: str  # "ascending" | "descending" | "none"


def _sortable_columns(current: str) -> list[SortableColumn]:
    labels = {
        "last_purchase_at": _("Last purchase"),
        "order_count": _("Orders"),
        "revenue": _("Revenue (GBP)"),
        "open_count": _("Open recommendations"),
    }
    columns = []
    for key, label in labels.items():
        if current == f"-{key}":
            columns.append(SortableColumn(key, label, key, "descending"))
        elif current == key:
            columns.append(SortableColumn(key, label, f"-{key}", "ascending"))
        else:
            columns.append(SortableColumn(key, label, f"-{key}", "none"))
    return columns


@login_required
def customer_list(request: HttpRequest) -> HttpResponse:
    """List the customers the user may see, with search, filters, sortable columns and pages."""
    regions = selectors.customer_region_choices(user=request.user)
    form = CustomerFilterForm(request.GET or None, regions=regions)
    # Invalid fields are reported next to the control and ignored; valid ones still apply.
    if form.is_bound:
        form.is_valid()
    filters = form.filter_kwargs()
    ordering = (form.cleaned_data.get("sort") if form.is_bound else None) or selectors.DEFAULT_CUSTOMER_ORDERING
    customers = selectors.customer_list(user=request.user, ordering=ordering, **filters)
    page = Paginator(customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    is_filtered = any(value is not None for value in filters.values())
    return render(
        request,
        "recommendations/customer_list.html",
        {
            "form": form,
            "page": page,
            "columns": _sortable_columns(ordering),
            "is_filtered": is_filtered,
            # Sales people see their own book; everyone else reads all accounts.
            "is_my_accounts": is_sales_only(request.user),
        },
    )


# --------------------------------------------------------------------------- customer page


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

    @property
    def is_rest(self) -> bool:
        return self.stock_code is None and not self.is_base

    @property
    def is_base(self) -> bool:
        return self.kind == "popularity"


@dataclass(frozen=True)
class ReasonSegment:
    """A piece of the reason text; ``flag`` is set on pieces an automatic check flagged."""

    text: str
    flag: dict | None = None


@dataclass(frozen=True)
class Necessity:
    removed_count: int
    drops_out: bool
    new_rank: int | None
    top_n: int


@dataclass(frozen=True)
class ExplanationPanel:
    """Everything the customer page shows about one explanation, already decided for the viewer."""

    explanation: Explanation
    failed: bool
    reason_visible: bool
    # The recommendation is in the A/B control arm: sales sees no reason (and no "under review").
    reason_withheld: bool
    reason_segments: list[ReasonSegment]
    flags: list[dict]  # empty for viewers who do not review explanations
    confidence_percent: float | None
    confidence_digits: int
    evidence: list[EvidenceLine]
    necessity: Necessity | None
    shared_concepts: list[dict]
    product_words: list[WordHighlight]
    evidence_words: list[WordHighlight]
    evidence_words_description: str
    generated_at: datetime


@dataclass(frozen=True)
class RecommendationCard:
    recommendation: Recommendation
    panel: ExplanationPanel | None = None
    exposure: Exposure | None = None
    outcomes: list[Outcome] = field(default_factory=list)  # newest first
    form_token: str = ""  # the outcome form's idempotency token (one per rendering)

    @property
    def latest_outcome(self) -> Outcome | None:
        return self.outcomes[0] if self.outcomes else None


def _word_highlights(data: dict | None) -> list[WordHighlight]:
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


def _evidence_lines(rows: list[dict], score: float) -> list[EvidenceLine]:
    lines = []
    for row in rows:
        share = float(row.get("share") or 0.0)
        percent = share / score * 100 if score else 0.0
        lines.append(
            EvidenceLine(
                description=row.get("description") or "",
                stock_code=row.get("stock_code") if row.get("product_id") is not None else None,
                share=share,
                percent=percent,
                bar_percent=round(max(0.0, min(100.0, percent)), 2),
                count=row.get("count"),
                kind=row.get("kind") or "purchase",
            )
        )
    return lines


def _reason_segments(text: str, flags: list[dict]) -> list[ReasonSegment]:
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


def _flag_view(flag: dict) -> dict:
    code = str(flag.get("code") or "")
    kind = code.split(":", 1)[0]
    severity = "error" if flag.get("severity") == "error" else "warning"
    return {**flag, "label": FLAG_LABELS.get(kind, code), "severity": severity}


def _necessity(data: dict, recommendation: Recommendation) -> Necessity | None:
    if not isinstance(data, dict) or "drops_out" not in data:
        return None
    removed = data.get("removed") or []
    if not removed:
        return None  # nothing was left out, so there is no counterfactual to describe
    top_n = recommendation.batch.params.get("top_n") or settings.ELM_RECOMMENDATIONS_PER_CUSTOMER
    return Necessity(
        removed_count=len(removed),
        drops_out=bool(data["drops_out"]),
        new_rank=data.get("new_rank"),
        top_n=int(top_n),
    )


def _explanation_panel(
    request: HttpRequest, recommendation: Recommendation, explanation: Explanation, *, withheld: bool = False
) -> ExplanationPanel:
    reviewer = selectors.user_is_reviewer(user=request.user)
    reason_visible = not withheld and selectors.reason_visible_to(request.user, explanation)
    flags = [_flag_view(f) for f in explanation.flags or []] if reviewer else []
    text = explanation.reason_text if reason_visible else ""
    evidence_attr = (explanation.word_attributions or {}).get("evidence") or {}
    top = next((r for r in explanation.evidence or [] if r.get("product_id") is not None), None)
    confidence = explanation.confidence
    percent = confidence * 100 if confidence is not None else None
    return ExplanationPanel(
        explanation=explanation,
        failed=explanation.status == Explanation.Status.FAILED,
        reason_visible=reason_visible,
        reason_withheld=withheld,
        reason_segments=_reason_segments(text, flags) if text else [],
        flags=flags,
        confidence_percent=percent,
        confidence_digits=1 if percent is not None and percent < 10 else 0,
        evidence=_evidence_lines(explanation.evidence or [], recommendation.score),
        necessity=_necessity(explanation.necessity, recommendation),
        shared_concepts=[c for c in selectors.explanation_concepts(explanation) if c.get("shared")],
        product_words=_word_highlights((explanation.word_attributions or {}).get("product")),
        evidence_words=_word_highlights(evidence_attr),
        evidence_words_description=evidence_attr.get("text") or (top or {}).get("description", ""),
        generated_at=explanation.generated_at,
    )


@login_required
def customer_detail(request: HttpRequest, pseudonym: str) -> HttpResponse:
    """Show one customer's profile and concepts, explained recommendations and recent purchases."""
    try:
        customer = selectors.customer_get(user=request.user, pseudonym=pseudonym, with_concepts=True)
    except Customer.DoesNotExist:
        raise Http404(_("No customer with this pseudonym.")) from None
    recommendations = selectors.recommendations_for_customer(user=request.user, customer=customer)
    purchases = selectors.customer_recent_purchases(user=request.user, customer=customer)
    description, description_visible = customer_description_for(user=request.user, customer=customer)
    sales_only = is_sales_only(request.user)
    # Showing the page to a sales person is the exposure the A/B test counts; others only read the arm.
    if sales_only:
        exposures = exposures_mark_shown(recommendations=recommendations)
    else:
        exposures = exposures_for(recommendations=recommendations)
    outcomes = outcomes_by_recommendation(recommendations=recommendations)
    cards = []
    for rec in recommendations:
        explanation = selectors.explanation_or_none(rec)
        exposure = exposures.get(rec.pk)
        withheld = sales_only and exposure is not None and exposure.is_control
        panel = _explanation_panel(request, rec, explanation, withheld=withheld) if explanation else None
        cards.append(
            RecommendationCard(rec, panel, exposure=exposure, outcomes=outcomes[rec.pk], form_token=str(uuid.uuid4()))
        )
    pending = sum(1 for card in cards if card.panel is None)
    # Progress is only worth a query when something is still waiting for its explanation.
    explain_job = selectors.explain_job_running(user=request.user) if pending else None
    # The score bar spans 0..1 (cosine similarity) unless a recommender scores above that.
    score_max = max([1.0, *(r.score for r in recommendations)])
    score_min = min([0.0, *(r.score for r in recommendations)])
    return render(
        request,
        "recommendations/customer_detail.html",
        {
            "customer": customer,
            "concepts": getattr(customer, "concept_scores", None) or [],
            "recommendations": recommendations,
            "cards": cards,
            "pending_count": pending,
            "explain_job": explain_job,
            "purchases": purchases,
            "score_min": score_min,
            "score_max": score_max,
            "can_record_outcomes": user_has_role(request.user, SALES),
            "is_my_accounts": sales_only,
            "description": description,
            "description_visible": description_visible,
            "can_review_description": user_has_role(request.user, REVIEWER, ADMIN),
            "search_url": reverse("product-search") + "?" + urlencode({"customer": customer.pseudonym}),
            "show_arms": not sales_only,
            "outcome_kinds": Outcome.Kind.choices,
            "comment_max_length": COMMENT_MAX_LENGTH,
        },
    )


# --------------------------------------------------------------------------- outcomes


class OutcomeForm(forms.Form):
    """The outcome buttons of a recommendation card: the pressed button's kind, a comment, the form's token."""

    kind = forms.ChoiceField(choices=Outcome.Kind.choices)
    comment = forms.CharField(required=False, max_length=COMMENT_MAX_LENGTH, strip=True)
    token = forms.UUIDField(required=False)


@require_POST
@role_required(SALES)
def outcome_create(request: HttpRequest, pseudonym: str, recommendation_id: int) -> HttpResponse:
    """Record an outcome from a recommendation card and return to it (POST/redirect/GET, works without JS)."""
    try:
        customer = selectors.customer_get(user=request.user, pseudonym=pseudonym)
    except Customer.DoesNotExist:
        raise Http404(_("No customer with this pseudonym.")) from None
    recommendation = (
        Recommendation.objects.filter(
            pk=recommendation_id,
            customer=customer,
            batch__status__in=[RecommendationBatch.Status.ACTIVE, RecommendationBatch.Status.SUPERSEDED],
        )
        .select_related("batch", "product")
        .defer("product__embedding")
        .first()
    )
    if recommendation is None:
        raise Http404(_("No such recommendation for this customer."))
    back = reverse("customer-detail", kwargs={"pseudonym": customer.pseudonym}) + f"#rec-{recommendation.rank}"
    form = OutcomeForm(request.POST)
    if not form.is_valid():
        errors = "; ".join(str(e) for errs in form.errors.values() for e in errs)
        messages.error(request, _("The outcome was not recorded: %(errors)s") % {"errors": errors})
        return HttpResponseRedirect(back)
    kind = form.cleaned_data["kind"]
    form_token = form.cleaned_data["token"]
    # One token per rendered card: pressing the same button twice records once, while pressing
    # "pitched" and then "won" on the same rendering records both.
    token = uuid.uuid5(_OUTCOME_TOKEN_NAMESPACE, f"{form_token}:{kind}") if form_token else None
    try:
        outcome = outcome_record(
            user=request.user,
            recommendation=recommendation,
            kind=kind,
            comment=form.cleaned_data["comment"],
            client_token=token,
        )
    except ValidationError as exc:
        messages.error(request, _("The outcome was not recorded: %(errors)s") % {"errors": "; ".join(exc.messages)})
        return HttpResponseRedirect(back)
    label = outcome.get_kind_display()
    product = recommendation.product.description or recommendation.product.stock_code
    if getattr(outcome, "duplicate", False):
        messages.info(
            request, _("“%(kind)s” was already recorded for %(product)s.") % {"kind": label, "product": product}
        )
    else:
        messages.success(request, _("Recorded “%(kind)s” for %(product)s.") % {"kind": label, "product": product})
    return HttpResponseRedirect(back)
