"""The offline evaluation's report: the markdown table, docs/evaluation.md and the JSON form of a result."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import numpy as np

from recommendations.evaluation.confidence_doc import confidence_section_from_file
from recommendations.evaluation.metrics import (
    PER_CUSTOMER_METRICS,
)


def _fmt(entry: Mapping) -> str:
    if "ci95" in entry:
        low, high = entry["ci95"]
        return f"{entry['mean']:.4f} [{low:.4f}, {high:.4f}]"
    return f"{entry['mean']:.4f}"


def markdown_table(result: Mapping) -> str:
    """Return the test-metrics table (all models, 95% bootstrap intervals) as markdown."""
    metrics = [*PER_CUSTOMER_METRICS[:6], "coverage@10", "novelty@10"]
    header = "| model | validation NDCG@10 (mean of folds) | " + " | ".join(metrics) + " |"
    lines = [header, "|" + "---|" * (len(metrics) + 2)]
    production = result["production"]["model"]
    order = sorted(result["models"], key=lambda n: -result["models"][n]["test"]["ndcg@10"]["mean"])
    for name in order:
        entry = result["models"][name]
        label = f"**{name}** (production)" if name == production else name
        cells = [_fmt(entry["test"][m]) for m in metrics]
        validation = entry["validation_ndcg@10_mean_over_folds"]
        lines.append(f"| {label} | {validation:.4f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


MIN_REGION_CUSTOMERS = 5  # per-region figures are published for groups of at least this many customers

QUALITY_NOTES = """\
## Domain-tuned encoder, served calibration and segments (recorded by hand, session 2)

- **Encoder tuning** (`manage.py tune_encoder`, preset `cpu`): 12,480 co-purchase pairs (two products in the
  same basket = same customer and invoice time, in at least 3 baskets before 2011-09-01, at most 12 pairs per
  product, strongest cosine first), MultipleNegativesRankingLoss with in-batch negatives, batch 32, learning
  rate 3e-5 (10% warm-up, linear decay), 1 torch thread, at most 350 steps within a 540 s training budget.
  On the shared 2-core machine (load average ~10) the budget stopped it after **102 steps**; the whole command
  took **654 s** (training 541 s, re-embedding the 3,845 described products aside 37 s, measurements 39 s).
  GPU preset (`--preset gpu`, not run: no GPU here): up to 60,000 pairs, batch 128, 3 epochs, learning rate
  5e-5, no step cap. Output: `var/models/encoder/minilm-copurchase-86a26a97df1c/` (model, staged
  `product_vectors.npz`, `metrics.json`).
- **Product search** (60 labelled natural-language queries, `recommendations/evaluation/data/product_search.json`,
  relevance by an auditable rule over the descriptions, ranked over 3,820 merchandise products): NDCG@10
  **0.7143 -> 0.7316**. Largest gains: "lantern to put a candle in" 0.07 -> 0.70, "mat at the front door for
  wiping feet" 0.30 -> 0.78; largest losses: "pot for brewing tea" 0.42 -> 0.10, "toy dinosaurs" 0.75 -> 0.37.
- **Gain on the evaluation split** (test window; the tuning pairs end at the cutoff, so it is unseen):
  embedding recommender 0.0831 [0.0770, 0.0899] -> **0.0852** [0.0783, 0.0921]; production hybrid (its
  parameters above, only the description vectors changed) 0.2449 [0.2339, 0.2562] -> **0.2469** [0.2361,
  0.2583]. Both within the intervals. The tuned encoder is **not activated**: the gain is not significant,
  and deciding on these test numbers would be tuning on test (`tune_encoder --activate VERSION` switches,
  with `ELM_ENCODER=tuned`, when a validation-only comparison supports it).
- **Served calibration** (the `calibrate` job for the hybrid on the database: fitted at latest purchase - 180
  days, judged at latest - 90 days, 33,680 test recommendations, 11.8% bought): ECE of the raw score
  **0.1280**; isotonic **0.0178**, Platt **0.0186**. The job uses Platt: the raw score's reliability is flat
  (observed 7-13% in every bin from 0 to 1) because the hybrid's personal part is a per-customer weighted
  mean, not comparable across customers, and isotonic regression turned that into 0% for the lowest scores,
  which belong to the heaviest buyers (seen on the customer page). Platt's slope is even slightly negative
  (-0.10), so the served confidence is 7.6-10.1% for every recommendation: calibrated (low ECE), but it
  tells one recommendation from another hardly at all. A useful confidence needs customer-level inputs
  (e.g. order frequency), not the score alone; not done.
- **Production batch on the real data**: fit 29.5 s, 4,338 customers scored in 18.1 s (43,340
  recommendations); 200 random recommendations explained: largest |score - sum of evidence - base| =
  3.3e-16; removing the top-3 evidence purchases drops the item out of the top 10 in 192 of 200 (necessity).
- **Segments** (the `segments` job, 83 s): k-means over the 4,325 customer vectors for k = 2..12, each scored
  by the mean cosine silhouette of 2,500 sampled customers: **k = 2, silhouette 0.154** (k = 3: 0.083, k = 4:
  0.082, falling to 0.034 at k = 12; the vectors form no sharp clusters). Segment 1 (2,594 customers, 60%,
  member silhouette 0.28): jumbo and lunch bags (red retrospot, spaceboy); more kitchen & dining, party &
  gifts, frequent buyers. Segment 2 (1,731, 40%, member silhouette -0.04, i.e. loosely held): t-light
  holders, wicker hearts; more home decor, garden, price-sensitive. The ELM adapter on disk
  (`elm-d96afde09036`) described them given those facts ("A home decor enthusiast, buying a white hanging
  heart t-light holder and antique silver t-light glass...", semantic consistency 0.64; the other 0.32). Its
  pure decoding (no facts) wrote the same generic sentence for all five interpolation points between the
  two centroids (consistency ~0.25), so each point is now decoded given its three nearest products
  (consistency 0.53-0.68, drifting from "vintage christmas" items to "antique glass heart decoration").

"""

DEVELOPMENT_NOTES = """\
## Development notes (recorded by hand; default configuration)

Every choice below was made on validation folds; the test window was scored once per full run, five
full runs in all. Because test numbers were seen before the protocol was final, here is what changed:

- **Run 1**: one validation fold (cutoff 2011-06-03), hybrid without the EASE part. The hybrid won
  validation clearly (0.2533 vs ALS 0.2157, 1.17x) but not test: 0.2254 [0.2151, 0.2365] vs ALS
  0.2212 [0.2114, 0.2316], ratio 1.019.
- **Run 2**: two validation folds (less fitting to one season), the ALS grid widened where its validation
  optimum sat on the grid's edge, and EASE offered to the hybrid as a second exactly decomposable item-item
  part (its weight chosen on validation, 0 allowed; EASE-in-the-hybrid had been tried on validation before
  run 1). Test: hybrid 0.2302 [0.2187, 0.2414] vs ALS 0.2259 [0.2151, 0.2364], ratio 1.019.
- **Run 3**: the ALS grid widened once more (its validation optimum was again on an edge) and the hybrid
  tuner made faster (same search, cached score parts). Test: hybrid 0.2302 [0.2185, 0.2420] vs ALS
  0.2296 [0.2188, 0.2408] (128 factors, regularization 10, alpha 1), ratio 1.002.
- **Run 4**: ALS chose regularization 10 on the grid's edge, so more settings were checked
  on validation only: regularization 20-100 is much worse (0.08-0.16 vs 0.20 mean NDCG@10), alpha 0.5 worse,
  while 256 and 512 factors are slightly better (0.2066, 0.2073 vs 0.2035). The ALS grid now covers
  128/256 factors x regularization 3/10 x alpha 1/2, plus 512 factors. The embedding recommender's weights
  were aligned with production's `recommendations/profile.py` (log1p of the product's total quantity,
  decayed from its latest purchase, instead of a sum over purchase lines). Nothing else changed.
- Reruns of run 4's protocol (to pool small regions in the per-region table and to key the run's pseudonyms
  reproducibly) change no mean except ALS's and BPR's: their 2-thread training in `implicit` is not
  bit-for-bit deterministic (differences in the 4th decimal; BPR's tuned factor count flipped between 128
  and 256 from one run to the next).
- Tried on the validation folds and **not adopted** (change of mean validation NDCG@10 against the hybrid
  configuration of the time, from exploratory runs): an ALS part inside the hybrid (exactly decomposable
  per purchase, since the ALS user vector is `A_c sum_p c_p y_p` with `A_c = (Y'C_cY + lambda I)^-1`;
  +0.004, not worth per-customer matrix solves and negative contributions in explanations); a "new
  product" (first sold in the last 60 days) base term (+0.003) and a "trending" (14-day vs 90-day buyer
  rate) base term (about +0.001); co-occurrence down-weighting heavy buyers (-0.02 to -0.03); asymmetric
  cosine (-0.002 to +0.001); co-occurrence from recency-decayed purchases (+0.000, fold 1 only);
  log1p(quantity)-based instead of one unit per bought product as the purchase weight (-0.007, fold 1
  only);
  region-level instead of global popularity (-0.005, fold 1 only).
- **Run 5** (session 2; the tables above, from the database with `manage.py evaluate`, the same 391,150
  lines and split as the CSV): one new hybrid term, `rho_rate`, the "bought before" evidence scaled by the
  item's repurchase rate (consumables are re-ordered, one-off gifts are not). The tuner chose rho = 0,
  rho_rate = 16 (mean validation NDCG@10 0.2263 -> 0.2327); nothing else changed. Tried on the validation
  folds first and **not adopted**: repeat terms weighted by log1p or the count of purchase days (+0.002 to
  +0.006, below rho_rate); a learned re-ranker over the hybrid's top 100 (gradient-boosted trees, 17
  features: the hybrid's 5 parts and score and rank, popularity in 4 windows, repurchase rate, the customer's
  purchase weight, count of purchase days and number of products, the product's days since first sale),
  trained on one validation fold and scored on the other: 0.2484 vs the hybrid's own 0.2555 on the
  2011-06-03 fold, i.e. worse; a logistic regression on the linear parts: 0.2044. A tree ensemble's score
  would not split into per-purchase evidence anyway. Test: hybrid 0.2449 [0.2339, 0.2562] vs ALS 0.2381
  [0.2266, 0.2490], ratio 1.028, paired 95% interval [1.003, 1.054]: better than ALS, but far from 1.10 and
  the intervals overlap, so the goal is **not met**. Wall time 2,007 s under `nice -n 10` on the 2-core
  machine shared with ~7 other engineers' jobs (load average 12-17); the same protocol took 675 s on a
  quiet machine in session 1.
- Session 3, on the validation folds only: the ALS part again, now against run 5's hybrid, with
  512-factor ALS (the tuned baseline) and the user vector recomputed in its exactly decomposable form
  (correlation 0.993 with the stored factors): mean validation NDCG@10 fell as soon as it was added (hybrid
  0.2327; with ALS scaled to the hybrid's spread at weight 0.1: 0.2320, 0.5: 0.2266, 4: 0.2142; both folds
  alike). **Not adopted**; no test number was taken. The goal stays **not met**.
- What helps most is the "bought it before, longer ago than the exclusion window" term (`rho`): on
  validation fold 1, item-kNN alone scores 0.19 and item-kNN + rho 0.23. The rule leaves that signal in
  (only the last 90 days are excluded). A likely reason why the margin over ALS shrinks from ~15% on
  validation to ~2% on test is that this signal carries over to the autumn (pre-Christmas) test window less
  well than to the spring and summer validation windows; this was deliberately not analysed on the test
  window, to keep it out of the tuning loop.
"""


def _kinds_section(result: Mapping) -> str:
    rows = [
        f"| {name} | {kind} | {k['recommendations']:,} | {k['share']:.1%} | {k['bought']:.3f} |"
        for name, model in result["models"].items()
        for kind, k in (model.get("test_by_kind") or {}).items()
        if k["recommendations"]
    ]
    if not rows:
        return ""
    return f"""## Re-orders and new products (test window, top-10 lists)

A recommendation is a re-order when the customer bought the item before the cutoff, new otherwise; bought =
within {result["config"]["horizon_days"]} days after the cutoff.

| model | kind | recommendations | share | bought |
|---|---|---|---|---|
{chr(10).join(rows)}
"""


def _calibration_section(result: Mapping) -> str:
    cal = result.get("calibration")
    if not cal:
        return ""
    rows = [
        f"| {row['low']:.1f}-{row['high']:.1f} | {row['count']:,} | {row['predicted']:.3f} | {row['observed']:.3f} |"
        for row in cal["reliability_after"]
        if row["count"]
    ]
    return f"""## Confidence calibration of the production model

Isotonic regression from score to P(bought within {result["config"]["horizon_days"]} days), fitted on the top-10
lists of every customer at the most recent validation cutoff, judged on the test window's top-10 lists
({cal["test_pairs"]:,} pairs, {cal["base_rate"]:.1%} bought). Expected calibration error (10 equal-width
bins): raw score read as a probability **{cal["ece_before"]:.4f}**, calibrated **{cal["ece_after"]:.4f}**.
Reliability on the test window after calibration:

| bin | pairs | mean predicted | observed |
|---|---|---|---|
{chr(10).join(rows)}
"""


def markdown_report(result: Mapping) -> str:
    """Return docs/evaluation.md: method, results of the last run with intervals, tuned parameters."""
    cfg, counts, goal = result["config"], result["customers_counted"], result["goal"]
    split = result["split"]
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
        f"| {name} | `{json.dumps(entry['params'], sort_keys=True)}` | `{entry['version']}` | "
        + ", ".join(f"{v:.4f}" for v in entry["validation_ndcg@10_per_fold"])
        + " |"
        for name, entry in result["models"].items()
    ]
    validation_rows = [
        f"| {v['cutoff'][:10]} | {v['train_lines']:,} | {v['customers_active_both']} | {v['customers_evaluated']} | "
        f"{v['relevant_items_total']:,} | {v['relevant_items_not_in_training_catalogue']:.1%} |"
        for v in result["validation_splits"]
    ]
    verdict = "**met**" if goal["met"] else "**not met**"
    timings = result["timings_s"]
    return f"""# Offline evaluation of the recommenders

Generated by `python manage.py evaluate --write-docs` (database) or `python -m recommendations.evaluation.run`
(CSV) from the last full run (rerun it rather than editing this file; the notes at the end are the only
hand-written part). Raw numbers, per-region metrics and the tuning trials (of runs that stored them):
`benchmarks/results/evaluation.json`;
the run is also stored as an `EvaluationRun` and shown on `/quality/`.

## Result

Production recommender (best mean validation NDCG@10 among the models whose score splits exactly into
per-purchase evidence): **{production["model"]}** `{production["version"]}`. The recommend job refits it on every
purchase with these parameters and serves it (`recommendations/services/production.py`).

Goal: production test NDCG@10 >= {goal["target_ratio"]:.2f} x the best baseline in the same run
({goal["best_baseline"]}) with non-overlapping 95% intervals. Ratio **{goal["ratio"]:.3f}** (paired bootstrap
95% interval [{goal["paired_bootstrap_ratio_ci95"][0]:.3f}, {goal["paired_bootstrap_ratio_ci95"][1]:.3f}]);
intervals non-overlapping: {goal["intervals_non_overlapping"]}. Goal {verdict}.

## Test window: all models (95% bootstrap intervals over customers)

{markdown_table(result)}

Coverage@10 has no interval: a bootstrap resample holds only ~63% distinct customers, so its union of lists
is biased low and a percentile interval would not even contain the estimate.

## Method

- **Data**: UCI Online Retail sale lines with a customer id: invoices not starting with `C`/`A`,
  quantity > 0, price > 0, merchandise stock codes only (`^\\d{{5}}[A-Z]{{0,4}}$` after strip + upper),
  exact duplicate lines dropped: {cfg["interactions"]["lines"]:,} lines, {cfg["interactions"]["customers"]:,}
  customers, {cfg["interactions"]["items"]:,} products, {cfg["interactions"]["first"][:10]} to
  {cfg["interactions"]["last"][:10]}. Customers are keyed pseudonyms; countries are generalized to regions
  with at least 5 customers each.
- **Temporal split** at {cfg["cutoff"][:10]}: train on every purchase before it. A customer's relevant items
  are the products they bought in the next {cfg["horizon_days"]} days that they had **not** bought in the
  last {cfg["exclusion_days"]} days of training (the production exclusion rule); every recommender excludes
  exactly those recently bought products too. Customers active in both periods:
  {counts["test_active_in_both_periods"]}; evaluated (at least one relevant item left after the rule):
  {counts["test_evaluated"]} ({split["relevant_items_total"]:,} relevant items).
  {split["relevant_items_not_in_training_catalogue"]:.1%} of the relevant items were first sold after the
  cutoff, so no model can recommend them; they stay in the denominators (recall and NDCG are honest, not
  flattering).
- **Validation** (all tuning and the choice of the production model): the same rule on splits carved out of
  the training data only, with test windows ending at or before the cutoff:

  | cutoff | training lines | active in both | evaluated | relevant items | not in catalogue |
  |---|---|---|---|---|---|
  {(chr(10) + "  ").join(validation_rows)}

  Each hyper-parameter setting is scored by its NDCG@10 averaged over these folds; the best setting of each
  model is refitted on the full training window and scored on the test window once.
- **Metrics** (binary relevance; lists of {cfg["list_length"]}): NDCG@10 (log2 discount; ideal = all relevant
  items first, at most 10), Recall@10/@20, MRR (first hit within the {cfg["list_length"]}), MAP@10
  (normalized by min(|relevant|, 10)), hit rate@10, catalogue coverage@10 (share of the training catalogue
  shown to at least one customer), novelty@10 (mean -log2 of the share of training customers who bought the
  item). Intervals: percentile bootstrap over customers, {cfg["bootstrap_resamples"]} resamples, seed
  {cfg["seed"]}, the same resamples for every model, so the ratio interval above is paired.
- **Baselines**: recent popularity (distinct buyers in a window); item-kNN (shrunk cosine on the binarized
  customer x item matrix, k nearest neighbours per target item); EASE (closed-form ridge item-item
  regression: not in the brief's list, added as a stronger item-item baseline); ALS and BPR (`implicit`,
  2 threads); the embedding recommender (customer vector = weighted mean of the all-MiniLM-L6-v2 description
  embeddings of the products they bought, weight log1p(total quantity) x 0.5^(days since the latest purchase
  / 180), as in `recommendations/profile.py`; score = cosine to each product).
- **Hybrid**: a linear blend whose score is exactly a sum of one term per purchased product plus a popularity
  base term:

      score(c, i) = sum_p w_p [alpha knn(p,i) + delta ease(p,i) + (rho + rho_rate r(i)) [p = i]] / Z
                    + beta sum_p w_p cos(v_p, v_i) / |sum_q w_q v_q|  +  gamma pop(i)

  with `w_p = 0.5^(days since c last bought p / half-life)`, `Z = sum_p w_p`, `knn` the shrunk cosine kept to
  each item's k nearest neighbours, `ease` EASE's item-item weights, `[p = i]` the evidence "bought this
  before, longer ago than the exclusion window", `r(i)` the item's repurchase rate ((buyers who bought it on
  two or more days + 1) / (buyers + 5)), `v` the description embeddings and `pop` the recent distinct
  buyers scaled to [0, 1]. `HybridRecommender.hybrid_score_with_evidence(customer_weights, item)` returns
  `(score, contribution of each purchased product, base term)`; contributions + base = score (tested to
  1e-6, and equal to the batch score). Tuned by coordinate descent (two rounds) over the knn parameters, the
  half-life, the popularity window, the item-item weights (alpha, delta, EASE l2), the repeat weights
  (rho, rho_rate) and a joint grid of (rho, beta, gamma).

## Per region (test NDCG@10, production vs best baseline)

| region | customers | {production["model"]} | {goal["best_baseline"]} |
|---|---|---|---|
{chr(10).join(region_rows)}

Regions with fewer than {MIN_REGION_CUSTOMERS} evaluated customers are pooled (a group that small would
publish one customer's outcome); small regions have wide intervals, so read them as indications only.

## Tuned hyper-parameters (validation only)

| model | parameters | version | validation NDCG@10 per fold |
|---|---|---|---|
{chr(10).join(params_rows)}

{_kinds_section(result)}
{_calibration_section(result)}
{confidence_section_from_file()}
{QUALITY_NOTES}
Run time: {timings["total"]:.0f} s for evaluation (+ {timings.get("load", 0):.0f} s loading) with 2 threads
(source: {cfg.get("source", "csv")}).

{DEVELOPMENT_NOTES}"""


def to_json(value):
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


_MARKED = re.compile(r"<!-- ([a-z0-9-]+):start -->.*?<!-- \1:end -->", re.S)


def keep_marked_sections(old: str, new: str) -> str:
    """Return ``new`` plus every ``<!-- name:start --> ... <!-- name:end -->`` section of ``old`` it lacks.

    Other scripts write their sections of docs/evaluation.md (e.g. scripts/evidence_coverage.py); a new
    evaluation report keeps them.
    """
    present = {m.group(1) for m in _MARKED.finditer(new)}
    kept = [m.group(0) for m in _MARKED.finditer(old) if m.group(1) not in present]
    return new.rstrip("\n") + "".join(f"\n\n{section}" for section in kept) + "\n"
