"""The dashboard's filter bar (submitted with GET)."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from dashboard.selectors import Filters

LIVE, REPLAY = "live", "replay"


class DashboardFilterForm(forms.Form):
    date_from = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    region = forms.ChoiceField(label=_("Region"), required=False)
    sales_user = forms.TypedChoiceField(label=_("Sales person"), required=False, coerce=int, empty_value=None)
    mode = forms.ChoiceField(
        label=_("Data"),
        required=False,
        choices=[(LIVE, _("Live")), (REPLAY, _("Replay"))],
        widget=forms.HiddenInput,
    )

    def __init__(self, *args, regions: list[str], sales_users: list[tuple[int, str]], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["region"].choices = [("", _("All regions")), *((r, r) for r in regions)]
        self.fields["sales_user"].choices = [("", _("All sales people")), *sales_users]

    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", _("The end date is before the start date."))
        return data

    def filters(self) -> Filters:
        """Return the valid filters (an invalid field is reported next to its control and ignored)."""
        if not self.is_bound:
            return Filters()
        self.is_valid()
        data = self.cleaned_data
        return Filters(
            date_from=data.get("date_from"),
            date_to=data.get("date_to") if "date_to" not in self.errors else None,
            region=data.get("region") or None,
            sales_user_id=data.get("sales_user"),
        )

    def selected_mode(self) -> str | None:
        """Return the requested data mode, or None to let the page choose."""
        value = self.data.get("mode") if self.is_bound else None
        return value if value in (LIVE, REPLAY) else None
