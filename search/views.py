"""The semantic product search page (optionally relative to an open customer)."""

from __future__ import annotations

from django import forms
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import gettext_lazy as _

from accounts.selectors import customer_get
from core.permissions import ADMIN, MANAGER, REVIEWER, SALES, role_required
from recommendations.models import Customer
from search import selectors, services

RESULTS_PER_PAGE = 20
# Not translated on purpose: the encoder and the product descriptions are English.
EXAMPLE_QUERIES = [
    "gifts for a garden centre",
    "christmas decorations for a shop window",
    "children's party tableware",
    "vintage kitchen storage",
]


class SearchForm(forms.Form):
    q = forms.CharField(
        label=_("What are you looking for?"),
        required=False,
        max_length=selectors.QUERY_MAX_LENGTH,
        widget=forms.TextInput(
            attrs={"type": "search", "placeholder": _("e.g. gifts for a garden centre"), "autocomplete": "off"}
        ),
    )
    customer = forms.CharField(required=False, max_length=64, widget=forms.HiddenInput)

    def clean_q(self) -> str:
        try:
            return selectors.normalize_query(self.cleaned_data.get("q"))
        except selectors.InvalidSearch as exc:
            raise forms.ValidationError(exc.message) from exc


@role_required(SALES, REVIEWER, MANAGER, ADMIN)
def product_search(request: HttpRequest) -> HttpResponse:
    """Search products by meaning; with ``customer`` the results lean towards that customer's taste."""
    form = SearchForm(request.GET or None)
    query, customer, hits, unavailable = "", None, [], None
    if form.is_bound and form.is_valid():
        query = form.cleaned_data["q"]
        pseudonym = form.cleaned_data["customer"]
        if pseudonym:
            try:
                customer = customer_get(user=request.user, pseudonym=pseudonym)
            except Customer.DoesNotExist:
                raise Http404(_("No customer with this pseudonym.")) from None
        if query:
            try:
                vector = services.query_encode(query)
            except services.SearchUnavailable as exc:
                unavailable = exc.message
            else:
                hits = selectors.product_search(
                    user=request.user, vector=vector, customer=customer, limit=RESULTS_PER_PAGE
                )
    return render(
        request,
        "search/product_search.html",
        {
            "form": form,
            "query": query,
            "customer": customer,
            "hits": hits,
            "unavailable": unavailable,
            "examples": EXAMPLE_QUERIES,
        },
        status=503 if unavailable else 200,
    )
