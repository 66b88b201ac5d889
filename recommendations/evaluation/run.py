"""Run the whole offline evaluation: tune every model on a validation split, test once, pick production.

CLI (no database needed for the CSV)::

    python -m recommendations.evaluation.run [--source csv|db] [--cutoff 2011-09-01] [--seed 0]

prints a markdown table and writes ``benchmarks/results/evaluation.json`` and ``docs/evaluation.md``.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from recommendations.evaluation.baselines import Recommender, cosine_item_similarity, rank_customers, top_n
from recommendations.evaluation.hybrid import DEFAULT_PARAMS, HybridRecommender
from recommendations.evaluation.metrics import (
    PER_CUSTOMER_METRICS,
    bootstrap_indices,
    bootstrap_interval,
    ndcg_at_k,
    summarize,
)
from recommendations.evaluation.registry import BASELINES, build_model
from recommendations.evaluation.split import TemporalSplit, temporal_split, validation_split
from recommendations.evaluation.training import TrainingData

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CSV = REPO_ROOT.parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
DEFAULT_JSON = REPO_ROOT / "benchmarks" / "results" / "evaluation.json"
DEFAULT_DOC = REPO_ROOT / "docs" / "evaluation.md"
LIST_LENGTH = 100  # recommendation lists are cut at 100 (MRR is over these 100)
GOAL_RATIO = 1.10

GRIDS: dict[str, list[dict]] = {
    "popularity": [{"window_days": w} for w in (14, 30, 60, 90, None)],
    "item_knn": [
        {"neighbours": k, "shrinkage": s}
        for k, s in itertools.product((20, 50, 100, 200, None), (0.0, 10.0, 50.0, 100.0))
    ],
    "ease": [{"l2": lam} for lam in (100.0, 300.0, 1000.0)],
    "als": [
        {"factors": f, "regularization": r, "alpha": a, "iterations": 15}
        for f, r, a in itertools.product((64, 128), (0.1, 1.0), (5.0, 20.0))
    ],
    "bpr": [
        {"factors": f, "learning_rate": lr, "regularization": 0.01, "iterations": 100}
        for f, lr in itertools.product((64, 128), (0.01, 0.05))
    ],
    # The brief fixes the embedding recommender (log1p(qty), 180-day half-life): nothing to tune.
    "embedding": [{"half_life_days": 180.0}],
}
# Hybrid: coordinate descent, two rounds, over these axes (alpha stays 1: the ranking is invariant
# to rescaling all four blend weights together).
HYBRID_AXES = {
    "knn": [{"neighbours": k, "shrinkage": s} for k, s in itertools.product((50, 100, 200), (10.0, 50.0, 100.0))],
    "half_life_days": [{"half_life_days": h} for h in (90.0, 180.0, 365.0, None)],
    "pop_window_days": [{"pop_window_days": w} for w in (14, 30, 60)],
    "blend": [
        {"rho": r, "beta": b, "gamma": g}
        for r, b, g in itertools.product((1.0, 2.0, 4.0, 8.0), (0.0, 0.01, 0.03, 0.1), (0.0, 0.02, 0.04, 0.08))
    ],
}


def run_evaluation(
    interactions: pd.DataFrame,
    *,
    cutoff: str | pd.Timestamp = "2011-09-01",
    horizon_days: int = 90,
    exclusion_days: int = 90,
    seed: int = 0,
    embeddings: Mapping[str, np.ndarray] | None = None,
    n_resamples: int = 1000,
    grids: Mapping[str, list[dict]] | None = None,
    hybrid_axes: Mapping[str, list[dict]] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict:
    """Tune on validation (carved from training only), evaluate once on test, choose the production model.

    Without ``embeddings`` the embedding recommender and the hybrid are skipped.
    """
    started = time.perf_counter()
    grids = {**GRIDS, **(grids or {})}
    hybrid_axes = {**HYBRID_AXES, **(hybrid_axes or {})}
    split = temporal_split(interactions, cutoff=cutoff, horizon_days=horizon_days, exclusion_days=exclusion_days)
    val = validation_split(split)
    val_data = TrainingData.from_interactions(val.train, as_of=val.cutoff, embeddings=embeddings)
    test_data = TrainingData.from_interactions(split.train, as_of=split.cutoff, embeddings=embeddings)
    log(f"split: {split.summary()}")
    log(f"validation split: {val.summary()}")

    families = [name for name in GRIDS if embeddings is not None or name != "embedding"]
    tuning: dict[str, list[dict]] = {}
    chosen: dict[str, dict] = {}
    timings: dict[str, float] = {}
    seeded = {"als", "bpr"}
    for family in families:
        t0 = time.perf_counter()
        trials = []
        similarities: dict[float, np.ndarray] = {}
        for params in grids[family]:
            params = {**params, "seed": seed} if family in seeded else dict(params)
            model = build_model(family, params)
            if family == "item_knn":
                shrink = params["shrinkage"]
                if shrink not in similarities:
                    similarities[shrink] = cosine_item_similarity(val_data.binary, shrinkage=shrink)
                model.fit(val_data, similarity=similarities[shrink])
            else:
                model.fit(val_data)
            trials.append({"params": params, "validation_ndcg@10": validation_ndcg(model, val)})
        best = max(trials, key=lambda t: t["validation_ndcg@10"])
        tuning[family] = trials
        chosen[family] = best["params"]
        timings[f"tune_{family}"] = round(time.perf_counter() - t0, 1)
        log(f"tuned {family}: {best} ({timings[f'tune_{family}']} s)")

    if embeddings is not None:
        t0 = time.perf_counter()
        tuning["hybrid"], chosen["hybrid"] = tune_hybrid(val_data, val, hybrid_axes)
        timings["tune_hybrid"] = round(time.perf_counter() - t0, 1)
        log(f"tuned hybrid: {chosen['hybrid']} ({timings['tune_hybrid']} s)")

    indices = bootstrap_indices(len(split.customers), n_resamples=n_resamples, seed=seed)
    val_indices = bootstrap_indices(len(val.customers), n_resamples=n_resamples, seed=seed)
    models: dict[str, dict] = {}
    per_customer: dict[str, dict[str, np.ndarray]] = {}
    for family, params in chosen.items():
        t0 = time.perf_counter()
        val_model = build_model(family, params).fit(val_data)
        val_metrics, _ = _evaluate(val_model, val, val_data, val_indices)
        test_model = build_model(family, params).fit(test_data)
        test_metrics, values = _evaluate(test_model, split, test_data, indices)
        per_customer[family] = values
        models[family] = {
            "params": params,
            "version": test_model.version(),
            "baseline": family in BASELINES,
            "validation": val_metrics,
            "test": test_metrics,
            "test_by_region": _by_region(values, split, seed=seed, n_resamples=n_resamples),
        }
        timings[f"final_{family}"] = round(time.perf_counter() - t0, 1)
        log(f"{family}: validation ndcg@10 {val_metrics['ndcg@10']['mean']:.4f}, test {test_metrics['ndcg@10']}")

    production = max(models, key=lambda name: models[name]["validation"]["ndcg@10"]["mean"])
    baselines = [name for name in models if name in BASELINES]
    best_baseline = max(baselines, key=lambda name: models[name]["test"]["ndcg@10"]["mean"])
    goal = _goal(production, best_baseline, models, per_customer, indices)
    timings["total"] = round(time.perf_counter() - started, 1)
    return {
        "config": {
            "cutoff": split.cutoff.isoformat(),
            "horizon_days": horizon_days,
            "exclusion_days": exclusion_days,
            "seed": seed,
            "bootstrap_resamples": n_resamples,
            "list_length": LIST_LENGTH,
            "validation_cutoff": val.cutoff.isoformat(),
            "grids": {name: grids[name] for name in families},
            "hybrid_axes": dict(hybrid_axes) if embeddings is not None else None,
            "interactions": {
                "lines": len(interactions),
                "customers": int(interactions["customer"].nunique()),
                "items": int(interactions["item"].nunique()),
                "first": pd.Timestamp(interactions["occurred_at"].min()).isoformat(),
                "last": pd.Timestamp(interactions["occurred_at"].max()).isoformat(),
            },
            "embeddings": None if embeddings is None else {"products": len(embeddings)},
        },
        "split": {
            **split.summary(),
            "relevant_items_not_in_training_catalogue": _unreachable(split, test_data),
        },
        "validation_split": {**val.summary(), "relevant_items_not_in_training_catalogue": _unreachable(val, val_data)},
        "customers_counted": {
            "test_active_in_both_periods": split.customers_active_both,
            "test_evaluated": len(split.customers),
            "validation_active_in_both_periods": val.customers_active_both,
            "validation_evaluated": len(val.customers),
        },
        "tuning": tuning,
        "models": models,
        "production": {
            "model": production,
            "version": models[production]["version"],
            "params": models[production]["params"],
            "chosen_by": "validation ndcg@10",
        },
        "goal": goal,
        "timings_s": timings,
        "environment": {"python": platform.python_version(), "threads": 2},
    }


def validation_ndcg(model: Recommender, split: TemporalSplit) -> float:
    """Return the mean NDCG@10 of a fitted model over the split's evaluated customers."""
    ranked = rank_customers(model, split.customers, split.excluded, n=10)
    return float(np.mean([ndcg_at_k(r, split.relevant[c], 10) for r, c in zip(ranked, split.customers, strict=True)]))


def tune_hybrid(data: TrainingData, split: TemporalSplit, axes: Mapping[str, list[dict]]) -> tuple[list[dict], dict]:
    """Coordinate descent over the hybrid's axes on validation NDCG@10; return (trials, best params)."""
    customers = split.customers
    rows = np.array([data.customer_index[c] for c in customers], dtype=np.int64)
    exclude = data.exclusion_mask(customers, split.excluded)
    relevant = [split.relevant[c] for c in customers]
    similarities: dict[float, np.ndarray] = {}
    cache: dict[str, dict] = {}

    def parts_for(params: dict) -> dict[str, np.ndarray]:
        key = json.dumps({k: params[k] for k in ("neighbours", "shrinkage", "half_life_days", "pop_window_days")})
        if key not in cache:
            cache.clear()  # one set of components at a time keeps memory flat
            shrink = params["shrinkage"]
            if shrink not in similarities:
                similarities[shrink] = cosine_item_similarity(data.binary, shrinkage=shrink)
            model = HybridRecommender(**params).fit(data, similarity=similarities[shrink])
            cache[key] = model.components(model.weights[rows])
        return cache[key]

    def evaluate(params: dict) -> float:
        parts = parts_for(params)
        scores = (
            params["alpha"] * parts["knn"]
            + params["rho"] * parts["repeat"]
            + params["beta"] * parts["embedding"]
            + params["gamma"] * parts["popularity"]
        )
        best = top_n(scores, exclude, 10)
        return float(np.mean([ndcg_at_k(data.items[b].tolist(), r, 10) for b, r in zip(best, relevant, strict=True)]))

    current = dict(DEFAULT_PARAMS)
    trials = [{"params": dict(current), "validation_ndcg@10": evaluate(current)}]
    best_score = trials[0]["validation_ndcg@10"]
    for round_ in (1, 2):
        for axis, options in axes.items():
            for option in options:
                candidate = {**current, **option}
                if candidate == current:
                    continue
                value = evaluate(candidate)
                trials.append({"round": round_, "axis": axis, "params": candidate, "validation_ndcg@10": value})
                if value > best_score:
                    best_score, current = value, candidate
    return trials, current


def _evaluate(
    model: Recommender, split: TemporalSplit, data: TrainingData, indices: np.ndarray
) -> tuple[dict, dict[str, np.ndarray]]:
    customers = split.customers
    ranked = rank_customers(model, customers, split.excluded, n=LIST_LENGTH)
    popularity = dict(zip(data.items.tolist(), data.popularity.tolist(), strict=True))
    return summarize(
        ranked, [split.relevant[c] for c in customers], popularity, catalogue_size=data.n_items, indices=indices
    )


def _by_region(values: dict[str, np.ndarray], split: TemporalSplit, *, seed: int, n_resamples: int) -> dict:
    regions = np.array([split.region[c] for c in split.customers])
    result = {}
    for region in sorted(set(regions)):
        members = np.flatnonzero(regions == region)
        # A seed per region that does not depend on the order regions are visited in.
        region_seed = seed + int(hashlib.sha256(region.encode()).hexdigest()[:8], 16)
        idx = bootstrap_indices(len(members), n_resamples=n_resamples, seed=region_seed)
        entry: dict = {"customers": len(members)}
        for name in PER_CUSTOMER_METRICS:
            sub = values[name][members]
            entry[name] = {"mean": float(sub.mean())}
            if name == "ndcg@10":
                entry[name]["ci95"] = list(bootstrap_interval(sub, idx))
        result[region] = entry
    return result


def _goal(production: str, baseline: str, models: dict, per_customer: dict, indices: np.ndarray) -> dict:
    prod = models[production]["test"]["ndcg@10"]
    base = models[baseline]["test"]["ndcg@10"]
    prod_means = per_customer[production]["ndcg@10"][indices].mean(axis=1)
    base_means = per_customer[baseline]["ndcg@10"][indices].mean(axis=1)
    ratios = prod_means / np.where(base_means > 0, base_means, np.nan)
    ratio = prod["mean"] / base["mean"] if base["mean"] > 0 else float("inf")
    separated = prod["ci95"][0] > base["ci95"][1]
    return {
        "metric": "test ndcg@10",
        "production_model": production,
        "best_baseline": baseline,
        "best_baseline_chosen_by": "test ndcg@10 (the strongest baseline on test, the conservative comparison)",
        "ratio": ratio,
        "paired_bootstrap_ratio_ci95": [float(np.nanpercentile(ratios, 2.5)), float(np.nanpercentile(ratios, 97.5))],
        "intervals_non_overlapping": bool(separated),
        "target_ratio": GOAL_RATIO,
        "met": bool(production != baseline and ratio >= GOAL_RATIO and separated),
    }


def _unreachable(split: TemporalSplit, data: TrainingData) -> float:
    total = sum(len(v) for v in split.relevant.values())
    missing = sum(1 for v in split.relevant.values() for item in v if item not in data.item_index)
    return missing / total if total else 0.0


# ---------------------------------------------------------------------------------------------- report


def _fmt(entry: Mapping) -> str:
    if "ci95" in entry:
        low, high = entry["ci95"]
        return f"{entry['mean']:.4f} [{low:.4f}, {high:.4f}]"
    return f"{entry['mean']:.4f}"


def markdown_table(result: Mapping) -> str:
    """Return the test-metrics table (all models, 95% bootstrap intervals) as markdown."""
    metrics = [*PER_CUSTOMER_METRICS[:6], "coverage@10", "novelty@10"]
    header = "| model | val NDCG@10 | " + " | ".join(m.replace("@", "@") for m in metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    production = result["production"]["model"]
    order = sorted(result["models"], key=lambda n: -result["models"][n]["test"]["ndcg@10"]["mean"])
    for name in order:
        entry = result["models"][name]
        label = f"**{name}** (production)" if name == production else name
        cells = [_fmt(entry["test"][m]) for m in metrics]
        lines.append(f"| {label} | {entry['validation']['ndcg@10']['mean']:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_report(result: Mapping) -> str:
    """Return docs/evaluation.md: method, results of the last run with intervals, tuned parameters."""
    cfg, counts, goal = result["config"], result["customers_counted"], result["goal"]
    split, val = result["split"], result["validation_split"]
    production = result["production"]
    region_rows = []
    for region, entry in sorted(
        result["models"][production["model"]]["test_by_region"].items(), key=lambda kv: -kv[1]["customers"]
    ):
        base_entry = result["models"][goal["best_baseline"]]["test_by_region"][region]
        region_rows.append(
            f"| {region} | {entry['customers']} | {_fmt(entry['ndcg@10'])} | {_fmt(base_entry['ndcg@10'])} |"
        )
    params_rows = [
        f"| {name} | `{json.dumps(entry['params'], sort_keys=True)}` | `{entry['version']}` |"
        for name, entry in result["models"].items()
    ]
    verdict = "**met**" if goal["met"] else "**not met**"
    return f"""# Offline evaluation of the recommenders

Generated by `python -m recommendations.evaluation.run` (do not edit by hand; rerun instead).
Raw numbers: `benchmarks/results/evaluation.json`.

## Method

- **Data**: UCI Online Retail sale lines with a customer id: invoices not starting with `C`/`A`,
  quantity > 0, price > 0, merchandise stock codes only (`^\\d{{5}}[A-Z]{{0,4}}$` after strip + upper),
  exact duplicate lines dropped. {cfg["interactions"]["lines"]:,} lines, {cfg["interactions"]["customers"]:,}
  customers, {cfg["interactions"]["items"]:,} products, {cfg["interactions"]["first"][:10]} to
  {cfg["interactions"]["last"][:10]}. Customers are keyed pseudonyms; countries generalized to regions (k >= 5).
- **Temporal split** at {cfg["cutoff"][:10]}: train on every purchase before it. Relevant items of a customer =
  products bought in the next {cfg["horizon_days"]} days that they had **not** bought in the last
  {cfg["exclusion_days"]} days of training (the production exclusion rule); every recommender also excludes
  those recently bought products. Customers active in both periods: {counts["test_active_in_both_periods"]};
  evaluated (at least one relevant item left after the rule): {counts["test_evaluated"]}.
  {split["relevant_items_not_in_training_catalogue"]:.1%} of the relevant items were first sold after the cutoff
  and cannot be recommended by any model; they stay in the denominators.
- **Validation** (all tuning): the same rule one horizon earlier, carved out of the training data only
  (cutoff {cfg["validation_cutoff"][:10]}; {counts["validation_active_in_both_periods"]} customers active in both
  periods, {counts["validation_evaluated"]} evaluated). Every hyper-parameter, and the choice of the production
  model, uses validation NDCG@10 only; each tuned model is then refitted on the full training window and
  evaluated on the test window once.
- **Metrics** (binary relevance, lists of {cfg["list_length"]}): NDCG@10 (log2 discount, ideal = all relevant
  items first), Recall@10/@20, MRR (first hit within the {cfg["list_length"]}), MAP@10 (normalized by
  min(|relevant|, 10)), hit rate@10, catalogue coverage@10 (share of the training catalogue shown to someone),
  novelty@10 (mean -log2 of the share of training customers who bought the item). Intervals: percentile
  bootstrap over customers, {cfg["bootstrap_resamples"]} resamples, seed {cfg["seed"]}, the same resamples for
  every model (so paired comparisons are possible).
- **Models**: recent popularity (distinct buyers in a window); item-kNN (shrunk cosine on the binarized
  customer x item matrix, k nearest neighbours per target item); EASE (ridge item-item regression, an extra,
  stronger item-item baseline); ALS and BPR (`implicit`, 2 threads); the embedding recommender (customer vector
  = log1p(qty)- and 180-day-half-life-weighted mean of the all-MiniLM-L6-v2 description embeddings of what they
  bought, cosine to each product); and the **hybrid**, whose score is a sum of one term per purchased product
  plus a popularity base term:
  `score(c,i) = sum_p w_p [alpha knn(p,i)/Z + rho [p=i]/Z + beta cos(v_p,v_i)/|sum_q w_q v_q|] + gamma pop(i)`,
  `w_p = 0.5^(days since c last bought p / half-life)`, `Z = sum_p w_p`. The `rho` term is the evidence
  "bought this before, longer ago than the exclusion window". `hybrid_score_with_evidence` returns the score,
  each purchased product's contribution and the base term; they add up to the score exactly.
- **Production model** = the best validation NDCG@10: **{production["model"]}** `{production["version"]}`.

## Results on the test window (95% bootstrap intervals)

{markdown_table(result)}

Goal: production test NDCG@10 >= {goal["target_ratio"]:.2f} x the best baseline ({goal["best_baseline"]}) with
non-overlapping intervals: ratio **{goal["ratio"]:.3f}** (paired bootstrap 95% interval
[{goal["paired_bootstrap_ratio_ci95"][0]:.3f}, {goal["paired_bootstrap_ratio_ci95"][1]:.3f}]), intervals
non-overlapping: {goal["intervals_non_overlapping"]} -> {verdict}.

## Per region (test NDCG@10, production vs best baseline)

| region | customers | {production["model"]} | {goal["best_baseline"]} |
|---|---|---|---|
{chr(10).join(region_rows)}

Regions with few customers have wide intervals; read them as indications only.

## Tuned hyper-parameters (validation only)

| model | parameters | version |
|---|---|---|
{chr(10).join(params_rows)}

Validation split: {val["customers_evaluated"]} customers, {val["relevant_items_total"]:,} relevant items.
Run time: {result["timings_s"]["total"]:.0f} s on 2 threads.
"""


def _to_json(value):
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _configure_encoder_settings() -> None:
    """Give the encoder the few settings it reads when no Django project settings are in use."""
    from django.conf import settings

    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        settings.configure(ELM_ENCODER="bundled", ELM_ENCODER_BATCH_SIZE=64, ELM_DEVICE="cpu")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", choices=("csv", "db"), default="csv")
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--cutoff", default="2011-09-01")
    parser.add_argument("--horizon-days", type=int, default=90)
    parser.add_argument("--exclusion-days", type=int, default=90)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    parser.add_argument("--doc", type=Path, default=DEFAULT_DOC)
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    if args.source == "csv":
        from recommendations.evaluation.data import load_csv, product_embeddings

        _configure_encoder_settings()
        interactions, descriptions = load_csv(args.csv)
        embeddings = product_embeddings(descriptions)
    else:
        import django

        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.dev")
        django.setup()
        from recommendations.evaluation.data import (
            descriptions_from_db,
            embeddings_from_db,
            interactions_from_db,
            product_embeddings,
        )

        interactions = interactions_from_db()
        embeddings = embeddings_from_db() or product_embeddings(descriptions_from_db())
    log(f"loaded {len(interactions):,} lines and {len(embeddings):,} embeddings in {time.perf_counter() - t0:.1f} s")

    result = run_evaluation(
        interactions,
        cutoff=args.cutoff,
        horizon_days=args.horizon_days,
        exclusion_days=args.exclusion_days,
        seed=args.seed,
        embeddings=embeddings,
        n_resamples=args.resamples,
        log=log,
    )
    result["config"]["source"] = args.source
    result["timings_s"]["load"] = round(time.perf_counter() - t0 - result["timings_s"]["total"], 1)
    print(markdown_table(result))
    goal = result["goal"]
    print(
        f"\nproduction: {result['production']['model']} {result['production']['version']}; "
        f"test NDCG@10 ratio to {goal['best_baseline']}: {goal['ratio']:.3f}, "
        f"intervals non-overlapping: {goal['intervals_non_overlapping']}, goal met: {goal['met']}"
    )
    if not args.no_write:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(_to_json(result), indent=2, sort_keys=False) + "\n")
        args.doc.parent.mkdir(parents=True, exist_ok=True)
        args.doc.write_text(markdown_report(result))
    return result


if __name__ == "__main__":
    main()
