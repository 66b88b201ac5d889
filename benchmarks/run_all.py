"""Run the benchmark suite (or some rows of it), then write results/latest.json and the BENCHMARKS.md table.

    .venv/bin/python benchmarks/run_all.py                 # every row, full size (hours: row 4 builds 1M indexes)
    .venv/bin/python benchmarks/run_all.py --quick         # reduced sizes, about 20-30 minutes on 2 cores
    .venv/bin/python benchmarks/run_all.py --only import,query
    .venv/bin/python benchmarks/run_all.py --skip scale --demo
    .venv/bin/python benchmarks/run_all.py --report-only   # rebuild latest.json + BENCHMARKS.md from results/*.json

Each row is a script of its own (``bench_<row>.py``) run as a child process with its log under
``benchmarks/logs/``; it writes ``benchmarks/results/<row>.json``. Rows not run this time keep their
previous result file, and the table says when each was measured. The database rows first bring the
benchmark database (``ELM_DATABASE_NAME``, default ``elmsite_bench``) up to date (``setup_data.py``).
The demo cold start (row 8) starts its own servers on a fresh directory and takes ~10 minutes of both
cores, so it only runs with ``--demo``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from common import LOGS, RESULTS, ROOT, loadavg, log, machine, now_iso, read_result, run_measured

# A trial run with ELM_BENCH_RESULTS set writes its table next to its results, not into BENCHMARKS.md.
BENCHMARKS_MD = RESULTS / "BENCHMARKS.md" if os.environ.get("ELM_BENCH_RESULTS") else ROOT / "BENCHMARKS.md"
TABLE_START, TABLE_END = "<!-- results:start -->", "<!-- results:end -->"


@dataclass
class Row:
    key: str
    what: str
    baseline: str
    goal: str
    full: list[str]
    quick: list[str]
    summarize: Callable[[dict], dict]
    needs_data: bool = True
    timeout: int = 3600
    script: str = ""
    results: list[str] = field(default_factory=list)  # result files (default: [key])

    def __post_init__(self):
        self.script = self.script or f"bench_{self.key}.py"
        self.results = self.results or [self.key]


def _fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


# --------------------------------------------------------------------------- summaries (one table row each)


def sum_import(r: dict) -> dict:
    return {
        "measured": f"{r['import_s']:.1f} s ({r['import_rows_per_s']:,.0f} rows/s); COPY through the indexes "
        f"{r['copy_s']:.1f} s, COPY with index rebuild {r['copy_rebuild_s']:.1f} s",
        "ratio": r["ratio"],
        "ratio_text": f"{r['ratio']:.2f}× the COPY rate ({r['ratio_vs_copy_rebuild']:.2f}× the index-rebuild COPY)",
        "met": r["ratio"] >= 0.5 and r["import_s"] < 60,
        "limit": "Python parsing/cleaning/hashing of each line (one core) and the set-based merge; "
        "the plain COPY pays per-row index and foreign-key maintenance that the importer avoids",
    }


def sum_embed(r: dict) -> dict:
    t = r["by_threads"]
    parts = [
        f"{k} thread(s): ours {v['products_per_s']:.0f}/s vs encode {v['baseline_texts_per_s']:.0f}/s"
        for k, v in sorted(t.items())
    ]
    rerun = r["rerun"]
    one = t.get("1") or next(iter(t.values()))
    ratios = ", ".join(f"{v['ratio']:.2f}× at {k} thread(s)" for k, v in sorted(t.items()))
    return {
        "measured": "; ".join(parts) + f" (medians); customers {one['customers_per_s']:,.0f}/s (no model); "
        f"re-run on unchanged data: {rerun['texts_through_model']} texts through the model, "
        f"plan {rerun['plan_s']:.1f} s",
        "ratio": one["ratio"],
        "ratio_text": f"{ratios} (median of paired runs; CPU-time ratio {one['cpu_ratio']:.2f}× at 1 thread); "
        f"with customers {one['ratio_with_customers']:.2f}×",
        # Judged at the workers' configuration (ELM_TORCH_THREADS=1); every thread count is in the text.
        "met": one["ratio"] >= 0.95 and rerun["texts_through_model"] == 0,
        "limit": f"{one['overhead_outside_encode_s']:.1f} s per pass outside the model at 1 thread (reads, hashes, the "
        "last batch's write); at 2 threads the database on the same 2 cores competes with the second torch thread",
    }


def sum_query(r: dict) -> dict:
    by = r["by_ef_search"]
    # The smallest ef_search that finds every exact neighbour.
    ef_best = min((int(k) for k, v in by.items() if v["recall_at_10"] >= 1.0), default=None)
    best = by[str(ef_best)] if ef_best is not None else None
    default = by.get(str(r["ef_search_default"]))
    text = "; ".join(
        f"ef_search {k}: p50 {v['hnsw']['p50_ms']:.1f} / p95 {v['hnsw']['p95_ms']:.1f} ms, recall@10 "
        f"{v['recall_at_10']:.4f}"
        for k, v in by.items()
    )
    exact = next(iter(by.values()))["exact"]
    met = best is not None and best["hnsw"]["p95_ms"] <= 30
    return {
        "measured": f"{r['customers']:,} customers × {r['products']:,} products. {text}; exact p50 "
        f"{exact['p50_ms']:.1f} / p95 {exact['p95_ms']:.1f} ms",
        "ratio": exact["p95_ms"] / best["hnsw"]["p95_ms"] if best else None,
        "ratio_text": (
            f"exact p95 / HNSW p95 = {exact['p95_ms'] / best['hnsw']['p95_ms']:.2f}× at ef_search {ef_best}"
            if best
            else "no ef_search reached recall 1.0"
        ),
        "met": met,
        "limit": (
            f"recall 1.0 needs ef_search ≥ {ef_best} (default {r['ef_search_default']}: "
            f"{default['recall_at_10']:.4f}); on 3.8k products the exact scan is nearly as fast"
            if best and default
            else "graph search misses a few neighbours at the default ef_search"
        ),
    }


def _best_point(points: list[dict], recall: float) -> dict | None:
    ok = [p for p in points if p["recall_at_10"] >= recall]
    return min(ok, key=lambda p: p["p95_ms"]) if ok else None


def sum_scale(r: dict) -> dict:
    prod = r.get("products", {})
    best, best_variant = None, None
    for v in prod.get("variants", []):
        p = _best_point(v["curve"], 0.95)
        if p and (best is None or p["p95_ms"] < best["p95_ms"]):
            best, best_variant = p, v["build"]
    cust = r.get("customers", {}).get("sizes", {})
    cust_text, cust_1m = [], None
    for size, entry in sorted(cust.items(), key=lambda kv: int(kv[0])):
        # Per size: the fastest point at recall >= 0.95 over every index built, else the best recall.
        points = [(p, b["build"]) for b in entry["builds"] for p in b["curve"]]
        ok = [(p, b) for p, b in points if p["recall_at_10"] >= 0.95]
        if ok:
            p, b = min(ok, key=lambda pb: pb[0]["p95_ms"])
            text = f"p95 {p['p95_ms']:.0f} ms at recall {p['recall_at_10']:.3f}"
        elif points:
            p, b = max(points, key=lambda pb: pb[0]["recall_at_10"])
            text = f"best recall {p['recall_at_10']:.3f} (p95 {p['p95_ms']:.0f} ms)"
        else:
            continue
        cust_text.append(
            f"{int(size) // 1000:,}k: {text}, {b['kind']} m={b['m']} ef_search {p['ef_search']}, "
            f"build {b['build_s'] / 60:.0f} min, {_fmt(b['index_mib'], 0)} MiB"
        )
        if int(size) >= 1_000_000:
            cust_1m = bool(ok) and p["p95_ms"] <= 50
    exact = prod.get("exact", {})
    if best:
        measured = (
            f"products for a customer (100k-product index, queries = sampled customers): {best_variant['kind']} "
            f"m={best_variant['m']} efc={best_variant['ef_construction']}, ef_search {best['ef_search']}"
            + (f" + re-rank {best['rerank']}" if best.get("rerank") else "")
            + f": p95 {best['p95_ms']:.1f} ms at recall@10 {best['recall_at_10']:.3f}; exact scan p95 "
            f"{exact.get('p95_ms', 0):.0f} ms"
        )
    else:
        measured = "products for a customer: recall 0.95 not reached"
    if cust_text:
        measured += ". Customers for a product (index over customers): " + "; ".join(cust_text)
    met = bool(best and best["p95_ms"] <= 50)
    return {
        "measured": measured,
        "ratio": exact["p95_ms"] / best["p95_ms"] if best and exact else None,
        "ratio_text": f"exact p95 / index p95 = {exact['p95_ms'] / best['p95_ms']:.1f}× (products)"
        if best and exact
        else "–",
        "met": met if cust_1m is not False else ("partial" if met else False),
        "met_text": "⚠️ met for products for a customer; **missed** for customers for a product at 1M"
        if met and cust_1m is False
        else None,
        "limit": "CPU per graph hop on 2 shared cores; customer vectors (means of many products) crowd together "
        "(mean pairwise cosine 0.61 vs 0.13 for products), so the 1M customer index needs a wider search",
    }


def sum_sig(r: dict) -> dict:
    t = r["timing"]
    rho = r["agreement"]["min_spearman_vs_inseq"]
    quad = t["batched_quadrature"]
    measured = (
        f"product (closed form, {t['n_words']} words, {t['n_tokens']} tokens) {t['median_s']['product'] * 1000:.0f} ms "
        f"vs Inseq {t['median_s']['inseq']:.1f} s at {t['steps']} steps; min Spearman vs Inseq {rho:.4f} over "
        f"{len(r['agreement']['texts'])} real texts, largest difference {t['max_abs_diff_vs_inseq']:.1e}. Our batched "
        f"{t['steps']}-step quadrature: {t['median_s']['batched']:.1f} s ({quad['speedup_vs_inseq']:.2f}× Inseq)"
    )
    return {
        "measured": measured,
        "ratio": t["speedup_vs_inseq"],
        "ratio_text": f"{t['speedup_vs_inseq']:.0f}× faster (product code)",
        "met": t["speedup_vs_inseq"] >= 10 and rho >= 0.99,
        "limit": "each word's SIG path moves one word along a straight line, so its integral is exactly "
        "f(x) − f(word masked): one forward batch of n_words + 1 sequences instead of n_words × steps "
        "forward+backward passes; the differences from Inseq are its quadrature error",
    }


def sum_generation(r: dict) -> dict:
    t = r["by_threads"]
    parts = [
        f"{k} thread(s): {v['one_at_a_time_per_min']:.1f} → {v['batched_per_min']:.1f} reasons/min "
        f"({v['speedup']:.2f}×)"
        for k, v in sorted(t.items())
    ]
    return {
        "measured": "; ".join(parts) + f" ({r['prompts']} real prompts, batch {r['batch_size']}, "
        f"{r['max_new_tokens']} new tokens, CPU; no GPU lent)",
        "ratio": r["speedup"],
        "ratio_text": f"{r['speedup']:.2f}× (the lowest over the thread counts measured)",
        "met": r["speedup"] >= 3,
        "limit": f"{min(v['identical_texts'][0] for v in t.values())}/{r['prompts']} texts identical to "
        "one-at-a-time. Prefill of the prompts' own tokens is the floor: the shared prompt start is "
        "computed once per batch and finished rows leave it, so what remains is compute-bound",
    }


def sum_load(r: dict) -> dict:
    t = r["targets"]
    page, api, triv = t["customer_page"], t["recommendations_api"], t["trivial"]
    errors = page["error_count"] + api["error_count"]
    return {
        "measured": f"page p95 {page['p95_ms']:.0f} ms ({page['requests_per_s']:.1f} req/s, "
        f"{page['queries_per_request']['mean']:.0f} queries/request); API p95 {api['p95_ms']:.0f} ms "
        f"({api['requests_per_s']:.1f} req/s, {api['queries_per_request']['mean']:.0f} queries); trivial "
        f"p95 {triv['p95_ms']:.0f} ms ({triv['requests_per_s']:.0f} req/s); errors {errors}",
        "ratio": page["p95_ratio_vs_trivial"],
        "ratio_text": f"page p95 {page['p95_ratio_vs_trivial']:.1f}×, API {api['p95_ratio_vs_trivial']:.1f}× "
        "the trivial view's",
        "met": max(page["p95_ms"], api["p95_ms"]) <= 200 and errors == 0,
        "limit": "20 connections queue on 2 workers × 4 threads sharing 2 cores with PostgreSQL and the "
        "load generator; per-request CPU is template/serializer rendering",
    }


def sum_demo(r: dict) -> dict:
    if r.get("reused_from_readme"):
        return {
            "measured": r["note"],
            "ratio": None,
            "ratio_text": "–",
            "met": r["ready_s"] <= 600,
            "limit": "language-model reasons for the first 150 explanations",
        }
    return {
        "measured": f"ready in {_fmt(r.get('ready_s'), 0)} s (exit after {r['wall_s']:.0f} s); steps: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in r["steps_s"].items())
        + f"; peak RSS of the demo process {r['peak_rss_mib']:.0f} MiB",
        "ratio": None,
        "ratio_text": "–",
        "met": r["returncode"] == 0 and (r.get("ready_s") or 1e9) <= 600,
        "limit": "the longest steps: "
        + ", ".join(f"{k} ({v:.0f} s)" for k, v in sorted(r["steps_s"].items(), key=lambda kv: -kv[1])[:2])
        + " (train_elm: the quick adapter's 75 s training budget plus held-out decoding, on one worker thread)",
    }


def sum_scaleout(r: dict) -> dict:
    by = r["by_workers"]
    parts = []
    for kind in ("embed_products", "explain"):
        times = ", ".join(f"{n} worker(s) {v[kind]['seconds']:.0f} s" for n, v in sorted(by.items()) if kind in v)
        if times:
            shards = next(v[kind]["shards"] for v in by.values() if kind in v)
            parts.append(f"{kind} ({shards} shards): {times}")
    speed = r.get("speedup", {})
    return {
        "measured": "; ".join(parts),
        "ratio": min(speed.values()) if speed else None,
        "ratio_text": ", ".join(f"{k} {v:.2f}×" for k, v in speed.items()) or "–",
        "met": None,
        "limit": "2 cores shared by everything: a second worker process can add at most one core",
    }


def memory_summary() -> dict:
    """Row 9 collects the peaks measured by other rows."""
    parts, missing = [], []
    load, scaleout, imp, gen, demo = (read_result(k) for k in ("load", "scaleout", "import", "generation", "demo"))
    if load:
        w = load["web_rss_mib"]
        parts.append(
            f"web: gunicorn worker {w['workers_peak']:.0f} MiB peak (master {w['master']:.0f} MiB), "
            f"torch-free: {'yes' if load['web_torch_free'] else 'NO'}"
        )
    else:
        missing.append("load")
    if scaleout:
        parts.append(
            f"Celery worker with encoder + language model loaded: {scaleout['worker_peak_rss_mib']:.0f} MiB peak"
        )
    else:
        missing.append("scaleout")
    if gen:
        parts.append(f"generation benchmark process (LM loaded): {gen['peak_rss_mib']:.0f} MiB")
    if imp:
        parts.append(f"import: {imp['peak_rss_mib']:.0f} MiB peak")
    else:
        missing.append("import")
    if demo and not demo.get("reused_from_readme"):
        parts.append(f"demo process: {demo['peak_rss_mib']:.0f} MiB")
    return {
        "measured": "; ".join(parts) + (f" (missing rows: {', '.join(missing)})" if missing else ""),
        "ratio": None,
        "ratio_text": "–",
        "met": bool(load and load["web_torch_free"]) if load else None,
        "limit": "the language model's float32 copy dominates a worker",
    }


def sum_explain_numbers(r: dict) -> dict:
    runs = r["runs"]
    parts = [
        f"{state} cache: {v['explained']:,} in {v['seconds']:.0f} s ({v['per_s']:.0f}/s; encoding new texts "
        f"{v['encode_s']:.0f} s)"
        for state, v in runs.items()
    ]
    measured = (
        f"{r['recommender']} batch, {r['recommendations']:,} recommendations ({r['evidence_pairs']:,} evidence "
        f"pairs): " + "; ".join(parts) + f"; floor {r['floor_s']:.1f} s ({r['floor_per_s']:,.0f}/s)"
    )
    warm = runs.get("warm") or next(iter(runs.values()))
    ratio = warm["per_s"] / r["floor_per_s"]
    return {
        "measured": measured,
        "ratio": ratio,
        "ratio_text": f"{ratio:.3f}× the floor (warm cache)",
        "met": warm["seconds"] <= 300 and warm["per_s"] >= 150 and ratio >= 0.5,
        "met_text": (
            "⚠️ whole batch ≤ 5 min (≥ 150/s) met with the encodings cached, "
            + ("met" if runs.get("cold", warm)["per_s"] >= 150 else "**missed**")
            + " from a cold cache; ≥ 0.5× the floor **missed**"
        )
        if ratio < 0.5 and warm["per_s"] >= 150
        else None,
        "limit": "writing ~5 KB of JSON per recommendation (COPY; word attributions are most of it) and "
        "building it in Python, the item-item re-ranking for necessity, and, from a cold cache, encoding each "
        "new text's one-word-masked variants (once per text and encoder); the floor is numpy arithmetic only",
    }


ROWS = [
    Row("import", "Import of the full Online Retail file (541,909 rows)",
        "raw COPY of the same rows into the same tables",
        "≥ 0.5× the COPY rate; < 60 s", ["--runs", "2"], ["--runs", "1"], sum_import, needs_data=False),
    Row("embed", "Embedding products and customers",
        "plain SentenceTransformer.encode, same texts, batch size, threads",
        "≥ 0.95× its throughput; re-run does no model work", ["--threads", "1,2", "--runs", "3"],
        ["--threads", "1", "--runs", "1", "--limit", "1000"], sum_embed),
    Row("query", "Recommendation query, real data", "exact search (sequential scan)", "p95 ≤ 30 ms, recall@10 = 1.0",
        [], ["--customers", "300"], sum_query),
    Row("scale", "Recommendation query at scale (1M customers × 100k products, synthetic)", "exact search",
        "p95 ≤ 50 ms at recall@10 ≥ 0.95", ["all"], ["all", "--quick"], sum_scale, timeout=6 * 3600),
    Row("sig", "SIG word attribution (~12 words, 50 steps)", "Inseq sequential_integrated_gradients",
        "≥ 10× faster, rank correlation ≥ 0.99",
        ["--runs", "5", "--reference-runs", "3", "--stepwise-runs", "0", "--skip-faithfulness",
         "--out", str(RESULTS / "sig_speed.json")],
        ["--runs", "2", "--reference-runs", "1", "--stepwise-runs", "0", "--agreement-texts", "3",
         "--skip-faithfulness", "--out", str(RESULTS / "sig_speed.json")],
        sum_sig, needs_data=False, results=["sig_speed"]),
    Row("generation", "Reason generation", "one-at-a-time generation", "batched ≥ 3× throughput",
        ["--prompts", "32", "--threads", "1,2", "--runs", "2"],
        ["--prompts", "8", "--batch-size", "8", "--threads", "1", "--runs", "1"], sum_generation),
    Row("load", "Customer page + recommendations API, 20 connections, 60 s", "trivial view on the same server",
        "p95 ≤ 200 ms, 0 errors", [], ["--duration", "15"], sum_load),
    Row("demo", "`demo` cold start, full data", "—", "≤ 10 minutes", [], [], sum_demo, needs_data=False),
    Row("memory", "Memory (peak RSS)", "—", "web process torch-free", [], [], lambda r: memory_summary(),
        needs_data=False, script="-"),
    Row("scaleout", "Scale-out: embedding and explanation jobs, 1 vs 2 workers", "1 worker", "speed-up (no fixed goal)",
        [], ["--customers", "4", "--ranks", "4"], sum_scaleout),
    Row("explain_numbers", "Numeric explanations of the whole real batch (explain_numbers)",
        "bare evidence arithmetic over the same arrays (numpy, no database, no Python per row)",
        "whole batch ≤ 5 min (≥ 150/s), ≥ 0.5× the floor", [], ["--limit", "5000", "--cache", "warm"],
        sum_explain_numbers),
]  # fmt: skip
ROW_BY_KEY = {r.key: r for r in ROWS}
DEMO_README = {
    "reused_from_readme": True,
    "ready_s": 552,
    "note": "552 s (README, 2026-11-22, quiet machine; not re-run by this suite run — pass --demo)",
}


def run_row(row: Row, *, quick: bool) -> dict:
    args = row.quick if quick else row.full
    cmd = [sys.executable, str(ROOT / "benchmarks" / row.script), *args]
    log_file = LOGS / f"{row.key}.log"
    log_file.unlink(missing_ok=True)
    log(f"row {row.key}: {' '.join(cmd[1:])} (log {log_file.relative_to(ROOT)})")
    before = loadavg()
    rc, wall, _, tail = run_measured(cmd, log=log_file, timeout=row.timeout)
    status = {"returncode": rc, "wall_s": round(wall, 1), "loadavg_before": before, "loadavg_after": loadavg()}
    if rc:
        log(f"row {row.key} FAILED ({rc}); last lines:\n{tail[-1500:]}")
        status["error_tail"] = tail[-1500:]
    return status


def build_report(statuses: dict, *, quick: bool) -> dict:
    rows = {}
    for row in ROWS:
        result = None if row.key == "memory" else read_result(row.results[0])
        if row.key == "demo" and result is None:
            result = DEMO_README
        entry = {"what": row.what, "baseline": row.baseline, "goal": row.goal, "status": statuses.get(row.key)}
        try:
            if row.key == "memory":
                entry.update(memory_summary())
            elif result is not None:
                entry.update(row.summarize(result))
                entry["measured_at"] = result.get("finished_at") or (result.get("machine") or {}).get("date")
                entry["quick"] = bool(result.get("quick"))
                entry["loadavg"] = (result.get("machine") or {}).get("loadavg") or (result.get("machine") or {}).get(
                    "loadavg_after"
                )
            else:
                entry.update(measured="not measured yet", ratio=None, ratio_text="–", met=None, limit="")
        except (KeyError, TypeError, ValueError) as exc:
            entry.update(measured=f"result file incomplete ({type(exc).__name__}: {exc})", ratio=None,
                         ratio_text="–", met=None, limit="")  # fmt: skip
        entry["result"] = result
        rows[row.key] = entry
    return {"generated_at": now_iso(), "quick": quick, "machine": machine(), "rows": rows}


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def write_markdown(report: dict) -> None:
    lines = [
        "| # | what | baseline (same run) | measured | ratio | goal | met | what limits it | load avg |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for i, e in enumerate(report["rows"].values(), start=1):
        met = e.get("met_text") or {True: "✅ met", False: "❌ **missed**", None: "–"}.get(e.get("met"), "–")
        load = e.get("loadavg")
        load_text = f"{load[0]:.1f}" if isinstance(load, list) and load else "–"
        when = (e.get("measured_at") or "")[:10]
        measured = e.get("measured", "")
        if when:
            measured += f" ({when}" + (", quick" if e.get("quick") else "") + ")"
        lines.append(
            "| "
            + " | ".join(
                _cell(x)
                for x in (
                    i,
                    e["what"],
                    e["baseline"],
                    measured,
                    e.get("ratio_text", "–"),
                    e["goal"],
                    met,
                    e.get("limit", ""),
                    load_text,
                )
            )
            + " |"
        )
    table = "\n".join(lines)
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else f"# Benchmarks\n\n{TABLE_START}\n{TABLE_END}\n"
    if TABLE_START not in text:
        text += f"\n{TABLE_START}\n{TABLE_END}\n"
    stamp = (
        f"_Table generated by `benchmarks/run_all.py` at {report['generated_at']}; "
        "full results in `benchmarks/results/latest.json`._"
    )
    text = re.sub(
        re.escape(TABLE_START) + r".*?" + re.escape(TABLE_END),
        lambda _: f"{TABLE_START}\n{stamp}\n\n{table}\n{TABLE_END}",
        text,
        flags=re.S,
    )
    BENCHMARKS_MD.write_text(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="reduced sizes (CI-sized)")
    parser.add_argument("--only", default="", help="comma-separated rows: " + ",".join(ROW_BY_KEY))
    parser.add_argument("--skip", default="", help="comma-separated rows to leave out")
    parser.add_argument("--demo", action="store_true", help="also run the demo cold start (row 8)")
    parser.add_argument("--report-only", action="store_true", help="only rebuild latest.json and BENCHMARKS.md")
    args = parser.parse_args()
    selected = [k for k in args.only.split(",") if k] or [r.key for r in ROWS]
    unknown = set(selected) | {k for k in args.skip.split(",") if k}
    unknown -= set(ROW_BY_KEY)
    if unknown:
        raise SystemExit(f"unknown rows: {', '.join(sorted(unknown))}; known: {', '.join(ROW_BY_KEY)}")
    selected = [k for k in selected if k not in args.skip.split(",") and k != "memory"]
    if "demo" in selected and not args.demo and not args.only:
        selected.remove("demo")
    statuses: dict[str, dict] = {}
    if not args.report_only:
        LOGS.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        if any(ROW_BY_KEY[k].needs_data for k in selected):
            log("bringing the benchmark database up to date (setup_data.py)")
            rc, _, _, tail = run_measured(
                [sys.executable, str(ROOT / "benchmarks" / "setup_data.py")], log=LOGS / "setup_data.log", timeout=7200
            )
            if rc:
                raise SystemExit(f"setup_data.py failed:\n{tail}")
        for key in selected:
            statuses[key] = run_row(ROW_BY_KEY[key], quick=args.quick)
        log(f"all rows done in {time.monotonic() - started:.0f} s")
        if args.quick:
            for key in selected:  # mark quick results so the table says so
                path = RESULTS / f"{ROW_BY_KEY[key].results[0]}.json"
                if path.exists():
                    data = json.loads(path.read_text())
                    data["quick"] = True
                    path.write_text(json.dumps(data, indent=2, default=float) + "\n")
    report = build_report(statuses, quick=args.quick)
    (RESULTS / "latest.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    write_markdown(report)
    log(f"wrote {RESULTS / 'latest.json'} and {BENCHMARKS_MD}")
    failed = [k for k, s in statuses.items() if s["returncode"]]
    if failed:
        raise SystemExit(f"rows failed: {', '.join(failed)} (see benchmarks/logs/)")


if __name__ == "__main__":
    main()
