"""Server-rendered customer pages: the searchable list and one customer's recommendations."""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from recommendations import selectors
from recommendations.models import Customer

CUSTOMERS_PER_PAGE = 25

SORT_CHOICES = [
    ("-last_purchase_at", _("Most recent purchase first")),
    ("last_purchase_at", _("Oldest last purchase first")),
    ("-revenue", _("Highest revenue first")),
    ("revenue", _("Lowest revenue first")),
    ("-order_count", _("Most orders first")),
    ("order_count", _("Fewest orders first")),
]


class CustomerFilterForm(forms.Form):
    """The search, region and sort controls above the customer list (submitted with GET)."""

    q = forms.CharField(
        label=_("Pseudonym starts with"),
        required=False,
        max_length=selectors.PSEUDONYM_SEARCH_MAX_LENGTH,
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off", "spellcheck": "false"}),
    )
    region = forms.ChoiceField(label=_("Region"), required=False)
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=SORT_CHOICES)

    def __init__(self, *args, regions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [("", _("All regions")), *((r, r) for r in regions)]

    def clean_q(self) -> str | None:
        try:
            return selectors.normalize_pseudonym_search(self.cleaned_data.get("q"))
        except selectors.InvalidCustomerQuery as exc:
            raise forms.ValidationError(exc.message) from exc


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
    """List the customers the user may see, with search, region filter, sorting and pages."""
    regions = selectors.customer_region_choices(user=request.user)
    form = CustomerFilterForm(request.GET or None, regions=regions)
    # Invalid fields are reported next to the control and ignored; valid ones still apply.
    params = {}
    if form.is_bound:
        form.is_valid()
        params = form.cleaned_data
    ordering = params.get("sort") or selectors.DEFAULT_CUSTOMER_ORDERING
    customers = selectors.customer_list(
        user=request.user,
        region=params.get("region") or None,
        search=params.get("q") or None,
        ordering=ordering,
    )
    page = Paginator(customers, CUSTOMERS_PER_PAGE).get_page(request.GET.get("page"))
    is_filtered = bool(params.get("region") or params.get("q"))
    return render(
        request,
        "recommendations/customer_list.html",
        {
            "form": form,
            "page": page,
            "columns": _sortable_columns(ordering),
            "is_filtered": is_filtered,
        },
    )


@login_required
def customer_detail(request: HttpRequest, pseudonym: str) -> HttpResponse:
    """Show one customer's profile, active recommendations and recent purchases."""
    try:
        customer = selectors.customer_get(user=request.user, pseudonym=pseudonym)
    except Customer.DoesNotExist:
        raise Http404(_("No customer with this pseudonym.")) from None
    recommendations = selectors.recommendations_for_customer(user=request.user, customer=customer)
    purchases = selectors.customer_recent_purchases(user=request.user, customer=customer)
    # The score bar spans 0..1 (cosine similarity) unless a recommender scores above that.
    score_max = max([1.0, *(r.score for r in recommendations)])
    score_min = min([0.0, *(r.score for r in recommendations)])
    return render(
        request,
        "recommendations/customer_detail.html",
        {
            "customer": customer,
            "recommendations": recommendations,
            "purchases": purchases,
            "score_min": score_min,
            "score_max": score_max,
        },
    )
