"""What the quality page shows, computed from stored runs: metric tables and the reliability diagram geometry.

Pure presentation: no queries (the selectors fetch), no model code (the web process never loads torch).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

METRICS = ("ndcg@10", "recall@10", "recall@20", "mrr", "map@10", "hit_rate@10", "coverage@10", "novelty@10")
METRIC_LABELS = {
    "ndcg@10": "NDCG@10",
    "recall@10": "Recall@10",
    "recall@20": "Recall@20",
    "mrr": "MRR",
    "map@10": "MAP@10",
    "hit_rate@10": "Hit rate@10",
    "coverage@10": "Coverage@10",
    "novelty@10": "Novelty@10",
}


@dataclass(frozen=True)
class Cell:
    mean: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class ModelRow:
    name: str
    is_production: bool
    is_baseline: bool
    validation: float | None
    cells: list[Cell]
    version: str


def metric_rows(metrics: Mapping[str, Mapping], *, production: str) -> list[ModelRow]:
    """Return one row per model, best test NDCG@10 first, each metric with its 95% interval when it has one."""
    rows = []
    for name, entry in metrics.items():
        test = entry.get("test", {})
        cells = []
        for metric in METRICS:
            value = test.get(metric, {})
            ci = value.get("ci95") or (None, None)
            cells.append(Cell(value.get("mean", 0.0), ci[0], ci[1]))
        rows.append(
            ModelRow(
                name=name,
                is_production=name == production,
                is_baseline=bool(entry.get("baseline")),
                validation=entry.get("validation_ndcg@10_mean_over_folds"),
                cells=cells,
                version=entry.get("version", ""),
            )
        )
    rows.sort(key=lambda r: -r.cells[0].mean)
    return rows


@dataclass(frozen=True)
class RegionRow:
    region: str
    customers: int
    production: Cell
    baseline: Cell | None


def region_rows(by_region: Mapping[str, Mapping], *, production: str, baseline: str) -> list[RegionRow]:
    """Return the per-region test NDCG@10 of the production model and the best baseline, largest regions first."""
    rows = []
    for region, entry in by_region.get(production, {}).items():
        other = by_region.get(baseline, {}).get(region)
        rows.append(
            RegionRow(
                region=region,
                customers=int(entry.get("customers", 0)),
                production=_cell(entry.get("ndcg@10", {})),
                baseline=_cell(other["ndcg@10"]) if other else None,
            )
        )
    rows.sort(key=lambda r: (-r.customers, r.region))
    return rows


def _cell(value: Mapping) -> Cell:
    ci = value.get("ci95") or (None, None)
    return Cell(value.get("mean", 0.0), ci[0], ci[1])


# --------------------------------------------------------------------------- reliability diagram


@dataclass(frozen=True)
class Point:
    x: float
    y: float
    r: float
    predicted: float
    observed: float
    count: int


@dataclass
class Series:
    key: str
    label: str
    points: list[Point] = field(default_factory=list)

    @property
    def polyline(self) -> str:
        return " ".join(f"{p.x:.1f},{p.y:.1f}" for p in self.points)


@dataclass
class ReliabilityDiagram:
    """SVG geometry of a reliability diagram: predicted probability (x) against observed frequency (y)."""

    size: int
    margin: int
    series: list[Series]
    ticks: list[dict]

    @property
    def plot(self) -> int:
        return self.size - 2 * self.margin

    @property
    def origin(self) -> int:
        return self.size - self.margin

    @property
    def far(self) -> int:
        return self.margin


def reliability_diagram(
    tables: Sequence[tuple[str, str, Sequence[Mapping]]], *, size: int = 320, margin: int = 44
) -> ReliabilityDiagram:
    """Return the diagram of one or more reliability tables ``(key, label, rows)``; dots scale with bin counts."""
    plot = size - 2 * margin
    total = max(sum(int(row.get("count") or 0) for row in rows) for _, _, rows in tables) if tables else 1
    series = []
    for key, label, rows in tables:
        s = Series(key=key, label=label)
        for row in rows:
            count = int(row.get("count") or 0)
            if not count or row.get("predicted") is None or row.get("observed") is None:
                continue
            predicted, observed = float(row["predicted"]), float(row["observed"])
            s.points.append(
                Point(
                    x=margin + min(max(predicted, 0.0), 1.0) * plot,
                    y=size - margin - min(max(observed, 0.0), 1.0) * plot,
                    r=2.5 + 6.0 * (count / max(total, 1)) ** 0.5,
                    predicted=predicted,
                    observed=observed,
                    count=count,
                )
            )
        series.append(s)
    ticks = [
        {"value": v, "label": f"{v:.1f}", "x": margin + v * plot, "y": size - margin - v * plot}
        for v in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    ]
    return ReliabilityDiagram(size=size, margin=margin, series=series, ticks=ticks)
