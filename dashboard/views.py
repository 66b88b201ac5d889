"""The manager dashboard: KPIs with server-rendered SVG charts, filters, live/replay toggle and CSV exports."""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import sales_users
from core.exports import csv_response
from core.permissions import MANAGER, role_required
from dashboard import model_selectors, panels, selectors
from dashboard.forms import LIVE, REPLAY, DashboardFilterForm
from dashboard.tables import Column, Table
from outcomes.models import Exposure, Outcome

SECTIONS = ("deals", "reviews", "quality", "fairness", "drift", "evaluation")


def _default_mode(replay_run) -> str:
    """Show the replay until sales have produced live data, so a fresh demo shows real numbers."""
    if replay_run is None:
        return LIVE
    has_live = Exposure.objects.filter(first_shown_at__isnull=False).exists() or Outcome.objects.exists()
    return LIVE if has_live else REPLAY


def _section(name: str, *, user, filters: selectors.Filters, mode: str, replay_run, live_deals=None):
    """Return one dashboard section (its panels and tables) and the KPI object behind it."""
    if name == "deals":
        if mode == REPLAY and replay_run is not None:
            kpis = selectors.replay_deal_kpis(user=user, filters=filters, run=replay_run)
        else:
            kpis = live_deals or selectors.deal_kpis(user=user, filters=filters)
        return panels.deals_section(kpis), kpis
    if name == "reviews":
        live = live_deals or selectors.deal_kpis(user=user, filters=filters)
        kpis = selectors.review_kpis(user=user, filters=filters)
        return panels.reviews_section(kpis, not_relevant=live.not_relevant), kpis
    if name == "quality":
        kpis = model_selectors.quality_kpis(user=user, filters=filters)
        return panels.quality_section(kpis), kpis
    if name == "fairness":
        rows = model_selectors.fairness_by_region(user=user, filters=filters)
        return panels.fairness_section(rows), rows
    if name == "drift":
        points = model_selectors.embedding_drift(user=user, filters=filters)
        return panels.drift_section(points), points
    if name == "evaluation":
        run = model_selectors.evaluation_latest()
        return panels.evaluation_section(run), run
    raise Http404


@role_required(MANAGER)
def dashboard(request: HttpRequest) -> HttpResponse:
    """Show the KPIs for the filters; ``?export=<table>`` downloads one table as CSV."""
    users = [(u.pk, u.get_full_name() or u.get_username()) for u in sales_users()]
    form = DashboardFilterForm(
        request.GET or None, regions=selectors.region_choices(user=request.user), sales_users=users
    )
    filters = form.filters()
    replay_run = selectors.replay_run_latest()
    mode = form.selected_mode() or _default_mode(replay_run)
    if mode == REPLAY and replay_run is None:
        mode = LIVE
    export = request.GET.get("export")
    if export:
        return _export(request, export, filters=filters, mode=mode, replay_run=replay_run)

    live_deals = selectors.deal_kpis(user=request.user, filters=filters)
    sections, kpis = [], {}
    for name in SECTIONS:
        section, data = _section(
            name, user=request.user, filters=filters, mode=mode, replay_run=replay_run, live_deals=live_deals
        )
        sections.append(section)
        kpis[name] = data
    return render(
        request,
        "dashboard/dashboard.html",
        {
            "form": form,
            "filters": filters,
            "mode": mode,
            "replay_run": replay_run,
            "is_replay": mode == REPLAY,
            "sections": sections,
            "deals": kpis["deals"],
            "reviews": kpis["reviews"],
            "quality": kpis["quality"],
            "live_deals": live_deals,
            "evaluation": kpis["evaluation"],
            "is_filtered": bool(filters.date_from or filters.date_to or filters.region or filters.sales_user_id),
        },
    )


def _export(request: HttpRequest, key: str, *, filters, mode: str, replay_run) -> HttpResponse:
    name = key.split("-", 1)[0]
    if name not in SECTIONS:
        raise Http404
    section, _data = _section(name, user=request.user, filters=filters, mode=mode, replay_run=replay_run)
    table: Table | None = section.tables.get(key)
    if table is None:
        raise Http404
    if name == "deals" and mode == REPLAY:
        # Say in the file itself that these numbers come from a replay, not from sales.
        label = _("Replay of %(cutoff)s (real purchases, simulated pitching)") % {
            "cutoff": timezone.localtime(replay_run.cutoff).date().isoformat()
        }
        table = Table(table.key, table.title, [*table.columns, Column(_("Data"), "text")],
                      [[*row, label] for row in table.csv_rows])  # fmt: skip
    suffix = f"-{mode}" if name == "deals" else ""
    return csv_response(filename=f"dashboard-{key}{suffix}.csv", header=table.header, rows=table.csv_rows)
