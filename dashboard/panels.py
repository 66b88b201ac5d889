"""Dashboard panels: a chart and the table with its numbers, grouped into sections, for one set of filters."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.utils.formats import date_format
from django.utils.translation import gettext as _

from dashboard import model_selectors, selectors, tables
from dashboard.charts import Chart, Series
from dashboard.stats import Rate
from explanations.presentation import flag_kind_label


@dataclass(frozen=True)
class Panel:
    key: str
    title: str
    table: tables.Table | None
    chart: Chart | None = None
    note: str = ""
    wide: bool = False


@dataclass
class Section:
    key: str
    title: str
    panels: list[Panel] = field(default_factory=list)
    note: str = ""

    @property
    def tables(self) -> dict[str, tables.Table]:
        return {p.table.key: p.table for p in self.panels if p.table is not None}


def _week_label(week) -> str:
    return date_format(week, "SHORT_DATE_FORMAT")


def _rate_series(name: str, rates: list[Rate]) -> Series:
    return Series(name, [r.value for r in rates], [r.interval for r in rates])


def deals_section(kpis: selectors.DealKpis) -> Section:
    t = tables.deal_tables(kpis)
    arms = list(kpis.arms.values())
    arm_labels = [str(tables.ARM_LABELS[a.arm]) for a in arms]
    replay = kpis.replay is not None
    panels = [
        Panel(
            "deals-arms",
            _("Win rate: explained vs control"),
            t["deals-arms"],
            Chart(
                _("Win rate by A/B arm"),
                _("Won ÷ (won + lost) for recommendations shown with and without a reason; bars show 95% intervals."),
                arm_labels,
                [_rate_series(_("Win rate"), [a.win_rate for a in arms])],
                percent=True,
            ),
        ),
    ]
    if replay:
        panels.append(
            Panel(
                "deals-ranks",
                _("Win rate by rank"),
                t["deals-ranks"],
                Chart(
                    _("Win rate by rank"),
                    _("Share of replayed recommendations at each rank that the customer bought within the horizon."),
                    [str(rank) for rank, _n, _w in kpis.ranks],
                    [_rate_series(_("Win rate"), [Rate(w, n) for _r, n, w in kpis.ranks])],
                    percent=True,
                ),
            )
        )
        panels.append(
            Panel(
                "deals-weeks",
                _("Recommendations bought, by week after the cutoff"),
                t["deals-weeks"],
                Chart(
                    _("Replayed recommendations bought, by week"),
                    _("Number of replayed recommendations first bought in each week after the cutoff."),
                    [_week_label(w.week) for w in kpis.weeks],
                    [Series(_("Won"), [w.values.get("won", 0) for w in kpis.weeks])],
                    kind="line",
                ),
            )
        )
    else:
        keys = [
            ("shown", _("Shown")),
            ("pitched", _("Pitched")),
            ("won", _("Won")),
            ("not_relevant", _("Not relevant")),
        ]
        panels.append(
            Panel(
                "deals-weeks",
                _("Shown and outcomes by week"),
                t["deals-weeks"],
                Chart(
                    _("Recommendations shown and outcomes by week"),
                    _("Weekly counts of recommendations first shown and of outcomes recorded by sales."),
                    [_week_label(w.week) for w in kpis.weeks],
                    [Series(label, [w.values.get(k, 0) for w in kpis.weeks]) for k, label in keys],
                    kind="line",
                ),
            )
        )
    panels.append(
        Panel(
            "deals-kinds",
            _("Win rate: re-orders vs new products"),
            t["deals-kinds"],
            Chart(
                _("Win rate by kind of recommendation"),
                _("Won ÷ (won + lost) for products the customer bought before and for products new to them."),
                [str(tables.KIND_LABELS[k.kind]) for k in kpis.kinds],
                [_rate_series(_("Win rate"), [k.win_rate for k in kpis.kinds])],
                percent=True,
            ),
        )
    )
    panels.append(
        Panel(
            "deals-regions",
            _("Win rate by region"),
            t["deals-regions"],
            Chart(
                _("Win rate by region"),
                _("Won ÷ (won + lost) per customer region, with 95% intervals."),
                [r.region for r in kpis.regions],
                [_rate_series(_("Win rate"), [r.win_rate for r in kpis.regions])],
                percent=True,
            ),
        )
    )
    panels.append(Panel("deals-summary", _("Deal counts"), t["deals-summary"]))
    return Section("deals", _("Deals"), panels)


def reviews_section(kpis: selectors.ReviewKpis, *, not_relevant: int) -> Section:
    t = tables.review_tables(kpis, not_relevant=not_relevant)
    labels = {"approved": _("Approved"), "rejected": _("Rejected"), "changes_requested": _("Changes requested")}
    panels = [
        Panel(
            "reviews-weeks",
            _("Review throughput"),
            t["reviews-weeks"],
            Chart(
                _("Review decisions by week"),
                _("Number of approvals, rejections and change requests per week."),
                [_week_label(w.week) for w in kpis.weeks],
                [Series(str(label), [w.values.get(k, 0) for w in kpis.weeks]) for k, label in labels.items()],
            ),
        ),
        Panel(
            "reviews-age",
            _("Review queue by age"),
            t["reviews-age"],
            Chart(
                _("Explanations waiting for review, by age"),
                _("How long the explanations now waiting for a reviewer have waited."),
                [str(tables.AGE_LABELS[k]) for k, _n in kpis.age_buckets],
                [Series(_("Explanations"), [n for _k, n in kpis.age_buckets])],
            ),
        ),
        Panel("reviews-summary", _("Reviews and interventions"), t["reviews-summary"]),
    ]
    return Section("reviews", _("Reviews and interventions"), panels)


def quality_section(kpis: model_selectors.QualityKpis) -> Section:
    t = tables.quality_tables(kpis)
    panels = [
        Panel(
            "quality-flags",
            _("Flag rates by type"),
            t["quality-flags"],
            Chart(
                _("Flag rates by type"),
                _("Share of explanations with at least one automatic flag of each type, with 95% intervals."),
                [flag_kind_label(kind) for kind, _n in kpis.flag_counts],
                [_rate_series(_("Flag rate"), [rate for _k, rate in kpis.flag_rates])],
                percent=True,
            ),
        ),
        Panel(
            "quality-consistency",
            _("Consistency distribution"),
            t["quality-consistency"],
            Chart(
                _("Semantic consistency of the reasons"),
                _("Histogram of the cosine between each reason's embedding and the vectors it explains."),
                [b.label for b in kpis.consistency],
                [Series(_("Explanations"), [b.count for b in kpis.consistency])],
            ),
        ),
        Panel(
            "quality-confidence",
            _("Confidence distribution"),
            t["quality-confidence"],
            Chart(
                _("Calibrated confidence"),
                _("Histogram of the calibrated probability that the customer buys the product within 90 days."),
                [b.label for b in kpis.confidence],
                [Series(_("Explanations"), [b.count for b in kpis.confidence])],
            ),
        ),
    ]
    return Section("quality", _("Explanation quality"), panels)


def fairness_section(rows: list[model_selectors.RegionFairness]) -> Section:
    t = tables.fairness_tables(rows)
    regions = [r.region for r in rows]
    return Section(
        "fairness",
        _("Fairness by region"),
        [
            Panel(
                "fairness-recommendation",
                _("Recommendation rate by region"),
                None,
                Chart(
                    _("Recommendation rate by region"),
                    _("Share of each region's customers with at least one active recommendation."),
                    regions,
                    [_rate_series(_("Recommendation rate"), [r.recommendation_rate for r in rows])],
                    percent=True,
                ),
            ),
            Panel(
                "fairness-approval",
                _("Approval rate by region"),
                None,
                Chart(
                    _("Approval rate by region"),
                    _("Share of review decisions that approved the reason, per customer region, with 95% intervals."),
                    regions,
                    [_rate_series(_("Approval rate"), [r.approval_rate for r in rows])],
                    percent=True,
                ),
            ),
            Panel("fairness-regions", _("Rates by region"), t["fairness-regions"], wide=True),
        ],
    )


def drift_section(points: list[model_selectors.DriftPoint]) -> Section:
    t = tables.drift_tables(points)
    labels = [date_format(p.month, "YEAR_MONTH_FORMAT") for p in points]
    return Section(
        "drift",
        _("Embedding drift"),
        [
            Panel(
                "drift-months",
                _("Drift of the purchase centroid by month"),
                t["drift-months"],
                Chart(
                    _("Embedding drift by month"),
                    _(
                        "One minus the cosine between the month's purchase centroid in the product embedding space "
                        "and the previous month's (shift), and the first month's (drift)."
                    ),
                    labels,
                    [
                        Series(_("Shift from previous month"), [p.shift for p in points]),
                        Series(_("Drift from first month"), [p.from_first for p in points]),
                    ],
                    kind="line",
                ),
                wide=True,
            )
        ],
    )


# Test metrics shown from an evaluation run, in this order (others the run has follow).
EVALUATION_METRICS = ("ndcg@10", "recall@10", "recall@20", "mrr", "map@10", "hit_rate@10", "coverage@10", "novelty@10")


def evaluation_table(run) -> tables.Table:
    """Return one row per model: whether it is a baseline, NDCG@10 with its interval, then the other metrics.

    ``run.metrics`` maps each model to ``{baseline, version, test: {metric: {mean, ci95}}}``.
    """
    models = {name: m for name, m in (run.metrics or {}).items() if isinstance(m, dict)}
    present = {metric for m in models.values() for metric in (m.get("test") or {})}
    names = [m for m in EVALUATION_METRICS if m in present] + sorted(present - set(EVALUATION_METRICS))
    rows = []
    for model, m in sorted(models.items(), key=lambda kv: -_mean(kv[1], "ndcg@10")):
        test = m.get("test") or {}
        ci = (test.get("ndcg@10") or {}).get("ci95") or [None, None]
        role = _("production") if model == run.chosen_model else (_("baseline") if m.get("baseline") else _("ours"))
        rows.append([model, role, *ci, *((test.get(n) or {}).get("mean") for n in names)])
    columns = [
        tables.Column(_("Model"), tables.TEXT),
        tables.Column(_("Role"), tables.TEXT),
        tables.Column(_("NDCG@10 95% low"), tables.NUM4),
        tables.Column(_("NDCG@10 95% high"), tables.NUM4),
        *(tables.Column(n, tables.NUM4) for n in names),
    ]
    return tables.Table("evaluation-models", _("Offline test metrics of the latest evaluation run"), columns, rows)


def _mean(model: dict, metric: str) -> float:
    value = ((model.get("test") or {}).get(metric) or {}).get("mean")
    return float(value) if isinstance(value, int | float) else float("-inf")


def evaluation_section(run) -> Section:
    if run is None:
        return Section("evaluation", _("Offline model metrics"), [], note=_("No evaluation run yet."))
    table = evaluation_table(run)
    models = [(row[0], row) for row in table.rows]
    ndcg = [((run.metrics[name].get("test") or {}).get("ndcg@10") or {}) for name, _row in models]
    chart = Chart(
        _("NDCG@10 by model"),
        _("Test-window NDCG@10 of every model of the latest offline evaluation, with bootstrap 95% intervals."),
        [name for name, _row in models],
        [Series("NDCG@10", [m.get("mean") for m in ndcg], [tuple(m["ci95"]) if m.get("ci95") else None for m in ndcg])],
    )
    note = _("Chosen for production: %(model)s.") % {"model": run.chosen_model} if run.chosen_model else ""
    if run.reduced:
        note = (note + " " + _("This run used a reduced slice of the data.")).strip()
    return Section(
        "evaluation",
        _("Offline model metrics"),
        [Panel("evaluation-chart", _("NDCG@10 by model"), None, chart), Panel("evaluation-models", table.title, table)],
        note=note,
    )
