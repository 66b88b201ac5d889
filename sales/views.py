"""Server-rendered sales pages: the searchable customer list, one customer's cards, the outcome form."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from accounts.selectors import customer_region_choices
from core.permissions import ADMIN, REVIEWER, SALES, role_required, user_has_role, user_roles
from explanations.selectors import customer_description_get, customer_description_readable
from outcomes.models import COMMENT_MAX_LENGTH, Outcome
from outcomes.selectors import outcomes_by_recommendation
from outcomes.services import exposures_for, exposures_mark_shown, exposures_mark_shown_by_id, outcome_record
from recommendations.models import Customer, Recommendation
from recommendations.selectors import NEW, RECOMMENDATION_KINDS, REORDER, customer_recent_purchases
from sales import selectors
from sales.cache import (
    CSRF_PLACEHOLDER,
    FORM_TOKEN_PLACEHOLDER,
    PROGRESS_PLACEHOLDER,
    CustomerCards,
    CustomerPage,
    RenderedCard,
    cached_cards,
    customer_cards_render,
    customer_page_fill,
)
from sales.forms import CustomerFilterForm, OutcomeForm
from sales.presentation import Viewer, recommendation_cards, viewer_for

CUSTOMERS_PER_PAGE = 25
# Namespace of the per-outcome idempotency tokens derived from a form's token (see outcome_create).
_OUTCOME_TOKEN_NAMESPACE = uuid.UUID("6f0d3c1e-9a57-4d1b-8a0e-2f4f1d6c2b10")


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
    regions = customer_region_choices(user=request.user)
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
        "sales/customer_list.html",
        {
            "form": form,
            "page": page,
            "columns": _sortable_columns(ordering),
            "is_filtered": is_filtered,
            # Sales people see their own book; everyone else reads all accounts.
            "is_my_accounts": viewer_for(request.user).sales_only,
        },
    )


@dataclass(frozen=True)
class CardRow:
    """A rendered card with what only this request has: the outcomes recorded so far and the form's token."""

    card: RenderedCard
    outcomes: list[Outcome] = field(default_factory=list)  # newest first
    form_token: str = ""  # the outcome form's idempotency token (one per rendering)

    @property
    def latest_outcome(self) -> Outcome | None:
        return self.outcomes[0] if self.outcomes else None


def _customer_cards(request: HttpRequest, customer: Customer, viewer: Viewer, kind: str) -> CustomerCards:
    """Build and render the customer's cards (a cache miss): recommendations, A/B arms, description."""
    recommendations = selectors.recommendations_for_customer(
        user=request.user, customer=customer, kind=kind, language=viewer.language
    )
    # Showing the page to a sales person is the exposure the A/B test counts; others only read the arm.
    # Either way the missing arms are stored here, so that a cached page's exposures exist.
    if viewer.sales_only:
        exposures = exposures_mark_shown(recommendations=recommendations)
    else:
        exposures = exposures_for(recommendations=recommendations)
    control_ids = {pk for pk, exposure in exposures.items() if exposure.is_control}
    summary = selectors.customer_summary(customer=customer)
    concept_scores = summary.get("concept_scores") or []
    cards = recommendation_cards(
        recommendations=recommendations,
        viewer=viewer,
        control_ids=control_ids,
        # Explanations store concepts by their English name; the customer's scores carry the page's names.
        concept_names={c["key"]: c["name"] for c in concept_scores},
    )
    return customer_cards_render(
        cards=cards,
        generated_at=recommendations[0].generated_at if recommendations else None,
        description=customer_description_get(customer=customer),
        purchases=customer_recent_purchases(user=request.user, customer=customer),
        outcomes=outcomes_by_recommendation(recommendations=recommendations),
        summary=summary,
    )


def _customer_page(request: HttpRequest, customer: Customer, viewer: Viewer, kind: str) -> CustomerPage:
    """Render the customer page below its header (a cache miss), with placeholders for each request's values."""
    page = _customer_cards(request, customer, viewer, kind)
    rows = [
        CardRow(c, outcomes=page.outcomes.get(c.recommendation_id, []), form_token=FORM_TOKEN_PLACEHOLDER)
        for c in page.cards
    ]
    context = {
        "customer": customer,
        "concepts": page.summary.get("concept_scores") or [],
        "recommendations_generated_at": page.generated_at,
        "rows": rows,
        "explain_progress": mark_safe(PROGRESS_PLACEHOLDER),  # noqa: S308 (a constant comment)
        "csrf_token": CSRF_PLACEHOLDER,
        "purchases": page.purchases,
        "can_record_outcomes": user_has_role(request.user, SALES),
        "is_my_accounts": viewer.sales_only,
        "description": page.description,
        "description_visible": customer_description_readable(user=request.user, description=page.description),
        "can_review_description": user_has_role(request.user, REVIEWER, ADMIN),
        "search_url": reverse("product-search") + "?" + urlencode({"customer": customer.pseudonym}),
        "outcome_kinds": Outcome.Kind.choices,
        "kind": kind,
        "kind_choices": [("", _("All")), (REORDER, _("Re-orders")), (NEW, _("New products"))],
        "comment_max_length": COMMENT_MAX_LENGTH,
    }
    return CustomerPage(
        html=render_to_string("sales/_customer_body.html", context),
        recommendation_ids=tuple(page.recommendation_ids),
        pending_count=page.pending_count,
        recommendation_count=page.summary.get("recommendation_count", 0),
        explained_count=page.summary.get("explained_count", 0),
    )


@login_required
def customer_detail(request: HttpRequest, pseudonym: str) -> HttpResponse:
    """Show one customer's profile and concepts, explained recommendations and recent purchases.

    Everything below the header comes rendered from the card cache (``sales.cache``) when nothing it
    shows changed; each request fills in its CSRF and outcome-form tokens and the explanation progress,
    and writes the exposures' show count.
    """
    try:
        # Scope and versions only: the counts and concepts come with the cached page.
        customer = selectors.customer_get(user=request.user, pseudonym=pseudonym, with_versions=True, with_counts=False)
    except Customer.DoesNotExist:
        raise Http404(_("No customer with this pseudonym.")) from None
    viewer = viewer_for(request.user)
    # The re-order / new filter is part of the cache key: each selection is its own list of cards.
    kind = request.GET.get("kind") if request.GET.get("kind") in RECOMMENDATION_KINDS else ""
    page, hit = cached_cards(
        kind=f"page:{kind or 'all'}",
        customer=customer,
        viewer=viewer,
        build=lambda: _customer_page(request, customer, viewer, kind),
        # The roles decide the page's forms (outcomes, description review) beyond what the viewer's key says.
        variant=",".join(sorted(user_roles(request.user))),
    )
    customer.recommendation_count = page.recommendation_count
    customer.explained_count = page.explained_count
    if hit and viewer.sales_only and page.recommendation_ids:
        exposures_mark_shown_by_id(recommendation_ids=list(page.recommendation_ids))  # a miss counted it
    # Progress is only worth a query when something is still waiting for its explanation.
    explain_job = selectors.explain_job_running(user=request.user) if page.pending_count else None
    progress = render_to_string("sales/_explain_progress.html", {"explain_job": explain_job}) if explain_job else ""
    body = customer_page_fill(page=page, csrf_token=lambda: get_token(request), progress=progress)
    return render(
        request,
        "sales/customer_detail.html",
        {"customer": customer, "body": body, "is_my_accounts": viewer.sales_only},
    )


@require_POST
@role_required(SALES)
def outcome_create(request: HttpRequest, pseudonym: str, recommendation_id: int) -> HttpResponse:
    """Record an outcome from a recommendation card and return to it (POST/redirect/GET, works without JS)."""
    try:
        recommendation = selectors.recommendation_for_outcome(
            user=request.user, pseudonym=pseudonym, recommendation_id=recommendation_id
        )
    except Customer.DoesNotExist:
        raise Http404(_("No customer with this pseudonym.")) from None
    except Recommendation.DoesNotExist:
        raise Http404(_("No such recommendation for this customer.")) from None
    back = (
        reverse("customer-detail", kwargs={"pseudonym": recommendation.customer.pseudonym})
        + f"#rec-{recommendation.rank}"
    )
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
