"""Forms of the sales pages: the customer list's filters and a recommendation card's outcome buttons."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from outcomes.models import COMMENT_MAX_LENGTH, Outcome
from sales import selectors

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


class OutcomeForm(forms.Form):
    """The outcome buttons of a recommendation card: the pressed button's kind, a comment, the form's token."""

    kind = forms.ChoiceField(choices=Outcome.Kind.choices)
    comment = forms.CharField(required=False, max_length=COMMENT_MAX_LENGTH, strip=True)
    token = forms.UUIDField(required=False)
