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
from summaries import (
    memory_summary,
    sum_demo,
    sum_embed,
    sum_explain_numbers,
    sum_generation,
    sum_import,
    sum_load,
    sum_query,
    sum_scale,
    sum_scaleout,
    sum_sig,
)

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
