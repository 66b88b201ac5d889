"""One summary per row of the BENCHMARKS.md table: turn a row's result file into its table cells.

Each ``sum_<row>(result)`` returns ``measured`` (text), ``ratio`` (a number or None), ``ratio_text``,
``met`` (True/False/None) and ``limit`` (what limits it). ``run_all.py`` lists the rows and calls them.
"""

from __future__ import annotations

from common import read_result


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
        if b.get("lists"):
            shape = f"{b['kind']} IVFFlat lists={b['lists']} probes {p['probes']}"
        else:
            shape = f"{b['kind']} m={b['m']} ef_search {p['ef_search']}"
        ivf = [(pi, bi) for pi, bi in points if bi.get("lists")]
        if ivf and not b.get("lists"):
            # The partitioned index's best, beside the graph's.
            p_ivf, b_ivf = max(ivf, key=lambda pb: pb[0]["recall_at_10"])
            shape += (
                f" (IVFFlat lists={b_ivf['lists']}: best recall {p_ivf['recall_at_10']:.3f} at probes "
                f"{p_ivf['probes']}, p95 {p_ivf['p95_ms']:.0f} ms, built in {b_ivf['build_s'] / 60:.0f} min)"
            )
        cust_text.append(
            f"{int(size) // 1000:,}k: {text}, {shape}, build {b['build_s'] / 60:.0f} min, {_fmt(b['index_mib'], 0)} MiB"
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
        "(mean pairwise cosine 0.61 vs 0.13 for products), so the 1M customer index needs a wider search; a "
        "partitioned index (IVFFlat) does worse, as a product's nearest customers are spread over many "
        "partitions, and subtracting the mean vector (an exact reordering) barely helps the graph (kind "
        "`centered` at 100k)",
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


def _queries(target: dict) -> str:
    q = target["queries_per_request"]
    first = q.get("first_view_mean")
    kib = target["bytes"] / max(target["requests"], 1) / 1024
    return f"{q['mean']:.0f}" + (f" (first view {first:.0f})" if first is not None else "") + f", {kib:.0f} KiB"


def sum_load(r: dict) -> dict:
    t = r["targets"]
    page, api, triv = t["customer_page"], t["recommendations_api"], t["trivial"]
    errors = page["error_count"] + api["error_count"]
    return {
        "measured": f"page p95 {page['p95_ms']:.0f} ms ({page['requests_per_s']:.1f} req/s, "
        f"queries/request {_queries(page)}); API p95 {api['p95_ms']:.0f} ms "
        f"({api['requests_per_s']:.1f} req/s, queries {_queries(api)}); trivial "
        f"p95 {triv['p95_ms']:.0f} ms ({triv['requests_per_s']:.0f} req/s); errors {errors}",
        "ratio": page["p95_ratio_vs_trivial"],
        "ratio_text": f"page p95 {page['p95_ratio_vs_trivial']:.1f}×, API {api['p95_ratio_vs_trivial']:.1f}× "
        "the trivial view's",
        "met": max(page["p95_ms"], api["p95_ms"]) <= 200 and errors == 0,
        "limit": "CPU: 20 connections queue on 2 workers × 4 threads sharing 2 cores with PostgreSQL, the "
        "load generator and (when measured) other engineers' jobs, so compare the ratios; a cached view makes "
        "2-3 queries and renders only the header around the cached body (about 7 ms of web-process CPU per page, "
        "half of what it took); what remains is the customer query's digests, the exposure count's write, the "
        "session and user, and writing a 115 KiB page",
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
