"""Report how much of the personal score the first three evidence lines cover, over the active batch.

    .venv/bin/python scripts/evidence_coverage.py [--json docs/results/x.json] [--doc docs/evaluation.md]

For every recommendation of the active batch with numbers (``explain_numbers``), the personal score is
the score minus the non-personal popularity term; coverage is the sum of the shares of the first three
lines shown (grouped: purchase families, "bought it before") divided by it. Shares are signed (the
hybrid's EASE part can be negative), so a line set can cover more than 100% when the rest pulls the
score down. The same figure for the three largest single purchases (the lines cards showed before) is
the comparison. Goal (issue 13): median >= 60%, and >= 40% for 80% of the recommendations.
Writes the JSON and replaces the "Evidence coverage" section of docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.dev")
START, END = "<!-- evidence-coverage:start -->", "<!-- evidence-coverage:end -->"


def summary(values) -> dict:
    import numpy as np

    v = np.asarray(values, dtype=np.float64)
    return {
        "n": len(v),
        "median": float(np.median(v)),
        "p10": float(np.quantile(v, 0.1)),
        "p20": float(np.quantile(v, 0.2)),
        "p25": float(np.quantile(v, 0.25)),
        "p75": float(np.quantile(v, 0.75)),
        "share_at_least_40": float((v >= 0.4).mean()),
        "share_at_least_60": float((v >= 0.6).mean()),
        "share_above_100": float((v > 1.0).mean()),
    }


def measure() -> dict:
    import numpy as np

    from explanations.models import Explanation
    from explanations.services.families import FAMILY_DISTANCE, SHOWN
    from recommendations.models import RecommendationBatch

    batch = RecommendationBatch.objects.get(status=RecommendationBatch.Status.ACTIVE)
    rows = Explanation.objects.filter(recommendation__batch=batch, versions__has_key="numbers").values_list(
        "evidence_groups", "evidence", "recommendation__customer__order_count"
    )
    grouped, single, orders, lines = [], [], [], []
    for groups, evidence, order_count in rows.iterator(chunk_size=2000):
        personal = groups.get("personal") or 0.0
        if personal <= 0:
            continue
        shown = [line for line in groups["lines"] if line["kind"] not in ("rest", "popularity")][:SHOWN]
        grouped.append(sum(line["share"] for line in shown) / personal)
        top = [row for row in evidence if row.get("product_id")][:3]
        single.append(sum(row["share"] for row in top) / personal)
        orders.append(order_count)
        lines.append(len(groups["lines"]))
    grouped, single, orders = np.array(grouped), np.array(single), np.array(orders)
    quartile = np.searchsorted(np.quantile(orders, [0.25, 0.5, 0.75]), orders, side="left")
    by_activity = {
        name: {"grouped": summary(grouped[quartile == q]), "single": summary(single[quartile == q])}
        for q, name in enumerate(["least active quarter", "second quarter", "third quarter", "most active quarter"])
        if (quartile == q).any()
    }
    grouped_summary = summary(grouped)
    return {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "batch": batch.pk,
        "recommender": batch.recommender,
        "model_version": batch.model_version,
        "explanations": int(rows.count()),
        "with_positive_personal_score": len(grouped),
        "family_distance": FAMILY_DISTANCE,
        "lines_shown_max": int(max(lines)) if lines else 0,
        "grouped_top3": grouped_summary,
        "single_top3": summary(single),
        "by_activity": by_activity,
        "goal": {"median": 0.6, "at_least_40_share": 0.8},
        "met": grouped_summary["median"] >= 0.6 and grouped_summary["share_at_least_40"] >= 0.8,
    }


def markdown(r: dict) -> str:
    g, s = r["grouped_top3"], r["single_top3"]

    def pct(x: float) -> str:
        return f"{x * 100:.0f}%"

    def cells(v: dict) -> str:
        keys = ("median", "p10", "p20", "share_at_least_40", "share_at_least_60")
        return " | ".join(pct(v[k]) for k in keys)

    rows = "\n".join(
        f"| {name} | {pct(v['grouped']['median'])} | {pct(v['grouped']['share_at_least_40'])} | "
        f"{pct(v['single']['median'])} |"
        for name, v in r["by_activity"].items()
    )
    verdict = "met" if r["met"] else "**missed**"
    return f"""{START}
## Evidence coverage

_Written by `scripts/evidence_coverage.py` at {r["measured_at"]} over the active batch #{r["batch"]}
({r["recommender"]}, {r["with_positive_personal_score"]:,} of {r["explanations"]:,} explained recommendations
with a positive personal score); JSON in `docs/results/evidence_coverage.json`._

Coverage = shares of the first three evidence lines a card shows / the personal score (score minus the
popularity term). The lines group purchases into families (design line, colour/size variants, close
description vectors at cosine distance {r["family_distance"]}) and show "bought it before" on its own; every
card shows at most {r["lines_shown_max"]} lines (three groups, the rest, popularity) whose shares sum to the score.
Shares are signed, so a card can cover more than 100% ({pct(g["share_above_100"])} of them do).

| | median | 10th percentile | 20th percentile | ≥ 40% covered | ≥ 60% covered |
|---|---|---|---|---|---|
| three grouped lines (shown now) | {cells(g)} |
| three largest single purchases (before) | {cells(s)} |

By customer activity (orders):

| customers | grouped median | grouped ≥ 40% | single purchases median |
|---|---|---|---|
{rows}

Goal (median ≥ 60%, ≥ 40% for 80% of recommendations): {verdict}.
{END}"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, default=ROOT / "docs" / "results" / "evidence_coverage.json")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "evaluation.md")
    args = parser.parse_args()
    import django

    django.setup()
    result = measure()
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    section = markdown(result)
    text = args.doc.read_text() if args.doc.exists() else ""
    if START in text and END in text:
        text = text[: text.index(START)] + section + text[text.index(END) + len(END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    args.doc.write_text(text)
    print(json.dumps({k: result[k] for k in ("grouped_top3", "single_top3", "met")}, indent=2))


if __name__ == "__main__":
    main()
