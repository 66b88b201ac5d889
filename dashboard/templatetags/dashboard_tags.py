"""Number formatting for the dashboard: shares as percentages, intervals, hours."""

from __future__ import annotations

from django import template
from django.utils import formats
from django.utils.translation import gettext as _

register = template.Library()


@register.filter
def pct(value, digits: int = 1) -> str:
    """Format a share (0..1) as a localized percentage; — when there is none."""
    if value is None or value == "":
        return "—"
    return formats.number_format(float(value) * 100, int(digits), use_l10n=True) + "%"


@register.filter
def pp(value, digits: int = 1) -> str:
    """Format a difference of two shares in percentage points, with its sign."""
    if value is None:
        return "—"
    sign = "+" if value > 0 else ("−" if value < 0 else "±")
    return _("%(sign)s%(value)s pp") % {
        "sign": sign,
        "value": formats.number_format(abs(float(value)) * 100, int(digits), use_l10n=True),
    }


@register.filter
def interval(pair, kind: str = "pct") -> str:
    """Format a (low, high) pair as "low–high" (percentages or percentage points)."""
    if not pair:
        return "—"
    fmt = pct if kind == "pct" else pp
    return f"{fmt(pair[0])} – {fmt(pair[1])}"


@register.filter
def hours(value) -> str:
    """Format a duration in hours: minutes under an hour, days above two days."""
    if value is None:
        return "—"
    value = float(value)
    if value < 1:
        return _("%(n)s min") % {"n": formats.number_format(value * 60, 0, use_l10n=True)}
    if value < 48:
        return _("%(n)s h") % {"n": formats.number_format(value, 1, use_l10n=True)}
    return _("%(n)s days") % {"n": formats.number_format(value / 24, 1, use_l10n=True)}
