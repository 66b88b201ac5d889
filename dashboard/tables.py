"""The dashboard's tables: one definition feeds the HTML table under a chart and its CSV export."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from django.utils import formats
from django.utils.translation import gettext_lazy as _

from dashboard import model_selectors, selectors
from dashboard.stats import Rate
from explanations.presentation import flag_kind_label

INT, PCT, NUM, NUM4, TEXT, DATE = "int", "pct", "num", "num4", "text", "date"


@dataclass(frozen=True)
class Column:
    label: str
    kind: str = INT


@dataclass(frozen=True)
class Cell:
    """A value whose display kind differs from its column's (summary tables mix counts, rates and hours)."""

    value: object
    kind: str


@dataclass(frozen=True)
class Table:
    """A table with raw cell values (the CSV gets them as they are; the page formats them by column kind)."""

    key: str
    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence]

    @property
    def header(self) -> list[str]:
        return [str(c.label) for c in self.columns]

    @property
    def csv_rows(self) -> list[list]:
        """Return the raw values (what the CSV holds)."""
        return [[v.value if isinstance(v, Cell) else v for v in row] for row in self.rows]

    @property
    def display_rows(self) -> list[list[dict]]:
        out = []
        for row in self.rows:
            cells = []
            for v, c in zip(row, self.columns, strict=True):
                kind = v.kind if isinstance(v, Cell) else c.kind
                value = v.value if isinstance(v, Cell) else v
                cells.append({"text": format_cell(value, kind), "num": kind != TEXT})
            out.append(cells)
        return out

    @property
    def filename(self) -> str:
        return f"{self.key}.csv"


def format_cell(value, kind: str) -> str:
    if value is None or value == "":
        return "—"
    if kind == PCT:
        return formats.number_format(value * 100, 1, use_l10n=True) + "%"
    if kind == NUM:
        return formats.number_format(value, 3, use_l10n=True)
    if kind == NUM4:
        return formats.number_format(value, 4, use_l10n=True)
    if kind == INT:
        return formats.number_format(value, 0, use_l10n=True, force_grouping=True)
    if kind == DATE:
        return formats.date_format(value, "SHORT_DATE_FORMAT")
    return str(value)


def _rate_cells(rate: Rate) -> list:
    return [rate.value, rate.low, rate.high]


RATE_COLUMNS = (Column(_("Rate"), PCT), Column(_("95% low"), PCT), Column(_("95% high"), PCT))
ARM_LABELS = {selectors.EXPLAINED: _("Explained (reason shown)"), selectors.CONTROL: _("Control (no reason)")}
KIND_LABELS = {selectors.REORDER: _("Re-orders"), selectors.NEW: _("New products")}
AGE_LABELS = dict(
    zip(selectors.AGE_KEYS, (_("Under 1 day"), _("1–2 days"), _("2–7 days"), _("Over 7 days")), strict=True)
)


def deal_tables(kpis: selectors.DealKpis) -> dict[str, Table]:
    replay = kpis.replay is not None
    summary = [
        (_("Recommendations shown"), kpis.shown),
        (_("Pitched"), kpis.pitched),
        (_("Won"), kpis.won),
        (_("Lost"), kpis.lost),
    ]
    if not replay:
        summary += [(_("Open (pitched, not decided)"), kpis.open), (_("Not relevant"), kpis.not_relevant)]
    else:
        summary += [(_("Customers"), kpis.customers), (_("Customers who bought a recommendation"), kpis.customers_won)]
    tables = {
        "deals-summary": Table(
            "deals-summary",
            _("Deals"),
            [Column(_("Measure"), TEXT), Column(_("Count"))],
            summary,
        ),
        "deals-arms": Table(
            "deals-arms",
            _("Win rate by A/B arm"),
            [
                Column(_("Arm"), TEXT),
                Column(_("Shown")),
                Column(_("Pitched")),
                Column(_("Won")),
                Column(_("Lost")),
                *RATE_COLUMNS,
            ],
            [
                [ARM_LABELS[arm], a.shown, a.pitched, a.won, a.lost, *_rate_cells(a.win_rate)]
                for arm, a in kpis.arms.items()
            ],
        ),
        "deals-kinds": Table(
            "deals-kinds",
            _("Re-orders and new products"),
            [
                Column(_("Kind"), TEXT),
                Column(_("Shown")),
                Column(_("Pitched")),
                Column(_("Won")),
                Column(_("Lost")),
                *RATE_COLUMNS,
            ],
            [[KIND_LABELS[k.kind], k.shown, k.pitched, k.won, k.lost, *_rate_cells(k.win_rate)] for k in kpis.kinds],
        ),
        "deals-regions": Table(
            "deals-regions",
            _("Win rate by region"),
            [Column(_("Region"), TEXT), Column(_("Pitched")), Column(_("Won")), Column(_("Lost")), *RATE_COLUMNS],
            [[r.region, r.pitched, r.won, r.lost, *_rate_cells(r.win_rate)] for r in kpis.regions],
        ),
    }
    if replay:
        tables["deals-weeks"] = Table(
            "deals-weeks",
            _("Replayed recommendations bought, by week"),
            [Column(_("Week starting"), DATE), Column(_("Won"))],
            [[w.week, w.values.get("won", 0)] for w in kpis.weeks],
        )
        tables["deals-ranks"] = Table(
            "deals-ranks",
            _("Win rate by rank"),
            [Column(_("Rank")), Column(_("Recommendations")), Column(_("Won")), *RATE_COLUMNS],
            [[rank, n, won, *_rate_cells(Rate(won, n))] for rank, n, won in kpis.ranks],
        )
    else:
        tables["deals-weeks"] = Table(
            "deals-weeks",
            _("Shown and outcomes by week"),
            [
                Column(_("Week starting"), DATE),
                Column(_("Shown")),
                Column(_("Pitched")),
                Column(_("Won")),
                Column(_("Lost")),
                Column(_("Not relevant")),
            ],
            [
                [w.week, *(w.values.get(k, 0) for k in ("shown", "pitched", "won", "lost", "not_relevant"))]
                for w in kpis.weeks
            ],
        )
    return tables


def review_tables(kpis: selectors.ReviewKpis, *, not_relevant: int) -> dict[str, Table]:
    return {
        "reviews-summary": Table(
            "reviews-summary",
            _("Reviews and interventions"),
            [Column(_("Measure"), TEXT), Column(_("Value"))],
            [
                (_("Review decisions"), kpis.decisions),
                (_("Approved"), kpis.approved),
                (_("Rejected by a reviewer"), kpis.rejected),
                (_("Changes requested by a reviewer"), kpis.changes_requested),
                (_("Texts edited by a reviewer"), kpis.edits),
                (_("Approved texts withdrawn"), kpis.withdrawn),
                (_("Marked not relevant by sales"), not_relevant),
                (_("Approval rate"), Cell(kpis.approval_rate.value, PCT)),
                (_("Median decision time (hours)"), Cell(kpis.median_hours, NUM)),
                (_("90th percentile decision time (hours)"), Cell(kpis.p90_hours, NUM)),
                (_("Decisions within the SLA"), Cell(kpis.within_sla.value, PCT)),
                (_("Waiting for review now"), kpis.pending),
                (_("Waiting longer than the SLA"), kpis.overdue),
                (_("Oldest waiting (hours)"), Cell(kpis.oldest_pending_hours, NUM)),
            ],
        ),
        "reviews-weeks": Table(
            "reviews-weeks",
            _("Review decisions by week"),
            [
                Column(_("Week starting"), DATE),
                Column(_("Approved")),
                Column(_("Rejected")),
                Column(_("Changes requested")),
            ],
            [[w.week, *(w.values.get(k, 0) for k in selectors.DECISIONS)] for w in kpis.weeks],
        ),
        "reviews-age": Table(
            "reviews-age",
            _("Review queue by age"),
            [Column(_("Waiting"), TEXT), Column(_("Explanations"))],
            [[AGE_LABELS[key], n] for key, n in kpis.age_buckets],
        ),
    }


def quality_tables(kpis: model_selectors.QualityKpis) -> dict[str, Table]:
    bins = [Column(_("From"), NUM), Column(_("To"), NUM), Column(_("Explanations"))]
    return {
        "quality-flags": Table(
            "quality-flags",
            _("Flag rates by type"),
            [Column(_("Flag"), TEXT), Column(_("Explanations flagged")), *RATE_COLUMNS],
            [
                [flag_kind_label(kind), n, *_rate_cells(rate)]
                for (kind, n), (_k, rate) in zip(kpis.flag_counts, kpis.flag_rates, strict=True)
            ],
        ),
        "quality-consistency": Table(
            "quality-consistency",
            _("Semantic consistency of the reasons"),
            bins,
            [[b.low, b.high, b.count] for b in kpis.consistency],
        ),
        "quality-confidence": Table(
            "quality-confidence",
            _("Calibrated confidence"),
            bins,
            [[b.low, b.high, b.count] for b in kpis.confidence],
        ),
    }


def fairness_tables(rows: list[model_selectors.RegionFairness]) -> dict[str, Table]:
    return {
        "fairness-regions": Table(
            "fairness-regions",
            _("Recommendation and approval rates by region"),
            [
                Column(_("Region"), TEXT),
                Column(_("Customers")),
                Column(_("With recommendations")),
                Column(_("Recommendation rate"), PCT),
                Column(_("Shown")),
                Column(_("Review decisions")),
                Column(_("Approved")),
                Column(_("Approval rate"), PCT),
                Column(_("95% low"), PCT),
                Column(_("95% high"), PCT),
            ],
            [
                [
                    r.region,
                    r.customers,
                    r.recommended,
                    r.recommendation_rate.value,
                    r.shown,
                    r.decisions,
                    r.approved,
                    *_rate_cells(r.approval_rate),
                ]
                for r in rows
            ],
        )
    }


def drift_tables(points: list[model_selectors.DriftPoint]) -> dict[str, Table]:
    return {
        "drift-months": Table(
            "drift-months",
            _("Embedding drift by month"),
            [
                Column(_("Month"), DATE),
                Column(_("Customer–product pairs")),
                Column(_("Shift from previous month"), NUM),
                Column(_("Drift from first month"), NUM),
            ],
            [[p.month, p.pairs, p.shift, p.from_first] for p in points],
        )
    }
