"""Benchmark the product's SIG against Inseq's SIG and an unbatched reference, and run the faithfulness comparison.

    .venv/bin/python benchmarks/bench_sig.py [--runs 5] [--reference-runs 3] [--steps 50]

Measures, on one ~12-word text (median wall time of several interleaved runs): the product's
``sig_word_attributions`` (``method="exact"``: each word's path moves only that word along a straight
line, so SIG's integral is exactly ``f(x) - f(x with the word at the baseline)``, one forward batch of
n_words + 1 sequences), our batched quadrature (``method="gausslegendre"``, ``--steps`` nodes),
Inseq's ``SequentialIntegratedGradients`` on the same encoder and function at ``--steps`` steps (it
batches the steps of one word and loops over words), and the stepwise reference of the tests (one
forward/backward per word per step; ``--stepwise-runs 0`` skips it). Then the Spearman rank correlation
with Inseq on several real descriptions, and the SIG-vs-IG deletion metrics on ~30 real (customer-like
vector, recommended description) pairs. Writes everything to benchmarks/results/sig.json.

The data set has no description longer than 8 words, so the ~12-word text is two real descriptions
joined (the first pair in the sample whose word counts add up to 12).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# Run as a plain script from anywhere: the project packages live at the repository root.
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.dev")


def _twelve_word_text(descriptions: list[str], n_words: int) -> str:
    for i, first in enumerate(descriptions):
        for second in descriptions[i + 1 :]:
            if len(first.split()) + len(second.split()) == n_words:
                return f"{first} {second}"
    raise SystemExit(f"no two sampled descriptions add up to {n_words} words")


def _timed(fn) -> tuple[float, np.ndarray]:
    started = time.perf_counter()
    values = fn()
    return time.perf_counter() - started, values


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--runs", type=int, default=5, help="timed runs of the batched implementation")
    parser.add_argument("--reference-runs", type=int, default=3, help="timed runs of Inseq's SIG")
    parser.add_argument(
        "--stepwise-runs", type=int, default=3, help="timed runs of the stepwise reference (n_words * steps passes)"
    )
    parser.add_argument("--words", type=int, default=12, help="words in the timed text")
    parser.add_argument("--rows", type=int, default=800, help="CSV rows to sample descriptions and customers from")
    parser.add_argument("--agreement-texts", type=int, default=8, help="real descriptions compared with Inseq")
    parser.add_argument("--faithfulness-pairs", type=int, default=30)
    parser.add_argument("--skip-faithfulness", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sig.json")
    args = parser.parse_args()

    import django

    django.setup()
    import torch
    from django.conf import settings

    from explanations.ml.faithfulness import faithfulness_report
    from explanations.ml.sig import sig_word_attributions
    from recommendations.ml.encoder import encoder_version, get_encoder
    from tests.explanations.sig_data import customer_like_pairs, read_retail_rows, real_descriptions
    from tests.explanations.test_sig import inseq_sig, reference_sig_stepwise

    load_before = os.getloadavg()
    get_encoder()
    rows = read_retail_rows(settings.ELM_DATASET_PATH, limit=args.rows)
    pairs = customer_like_pairs(rows, n_pairs=max(args.faithfulness_pairs, args.agreement_texts))
    text = _twelve_word_text(real_descriptions(rows), args.words)
    target = pairs[0][1]
    steps = args.steps
    print(f"text: {text!r} ({len(text.split())} words), steps={steps}, torch threads={torch.get_num_threads()}")

    implementations = {
        "product": lambda: sig_word_attributions(text, target).attributions,
        "batched": lambda: sig_word_attributions(text, target, steps=steps, method="gausslegendre").attributions,
        "inseq": lambda: inseq_sig(text, target, steps=steps),
        "stepwise": lambda: reference_sig_stepwise(text, target, steps=steps),
    }
    # --stepwise-runs 0 skips the (slow) stepwise reference.
    wanted = {
        "product": args.runs,
        "batched": args.runs,
        "inseq": args.reference_runs,
        "stepwise": args.stepwise_runs,
    }
    implementations = {name: fn for name, fn in implementations.items() if wanted[name] > 0}
    # Warm up every code path (allocator, lazy imports) on a tiny problem first.
    sig_word_attributions("RED MUG", target)
    sig_word_attributions("RED MUG", target, steps=2, method="gausslegendre")
    inseq_sig("RED MUG", target, steps=2)
    if "stepwise" in implementations:
        reference_sig_stepwise("RED MUG", target, steps=2)

    times: dict[str, list[float]] = {name: [] for name in implementations}
    values: dict[str, np.ndarray] = {}
    # Interleave the implementations so load from other processes hits all of them alike.
    for run in range(max(wanted.values())):
        for name, fn in implementations.items():
            if run >= wanted[name]:
                continue
            seconds, values[name] = _timed(fn)
            times[name].append(seconds)
            print(f"run {run} {name}: {seconds:.2f}s", flush=True)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    timing = {
        "text": text,
        "n_words": len(text.split()),
        "n_tokens": len(get_encoder().tokenizer(text.split(), is_split_into_words=True)["input_ids"]),
        "steps": steps,
        "method": "product: exact; batched, inseq, stepwise: gausslegendre",
        "seconds": times,
        "median_s": median,
        "attributions": {name: v.tolist() for name, v in values.items()},
    }
    # The product's closed form against both references; the batched quadrature against the same.
    for name in ("inseq", "stepwise"):
        if name in values:
            timing[f"speedup_vs_{name}"] = median[name] / median["product"]
            timing[f"spearman_vs_{name}"] = _spearman(values["product"], values[name])
            timing[f"max_abs_diff_vs_{name}"] = float(np.max(np.abs(values["product"] - values[name])))
    timing["batched_quadrature"] = {
        "speedup_vs_inseq": median["inseq"] / median["batched"],
        "spearman_vs_inseq": _spearman(values["batched"], values["inseq"]),
        "max_abs_diff_vs_inseq": float(np.max(np.abs(values["batched"] - values["inseq"]))),
    }
    print(json.dumps({k: v for k, v in timing.items() if k not in ("seconds", "attributions")}, indent=2))

    agreement = []
    seen = set()
    for description, vector, customer_id in pairs:
        if description in seen:
            continue
        seen.add(description)
        result = sig_word_attributions(description, vector)
        quadrature = sig_word_attributions(description, vector, steps=steps, method="gausslegendre")
        reference = inseq_sig(description, vector, steps=steps)
        agreement.append(
            {
                "customer_id": customer_id,
                "text": description,
                "spearman_vs_inseq": _spearman(result.attributions, reference),
                "max_abs_diff_vs_inseq": float(np.max(np.abs(result.attributions - reference))),
                "batched_quadrature_spearman_vs_inseq": _spearman(quadrature.attributions, reference),
                "batched_quadrature_max_abs_completeness_error": float(np.max(np.abs(quadrature.completeness_errors))),
            }
        )
        print(f"agreement {description!r}: rho={agreement[-1]['spearman_vs_inseq']:.4f}", flush=True)
        if len(agreement) == args.agreement_texts:
            break
    rhos = [a["spearman_vs_inseq"] for a in agreement]

    faithfulness = None
    if not args.skip_faithfulness:
        faithfulness = faithfulness_report(
            [(d, v) for d, v, _ in pairs[: args.faithfulness_pairs]], steps=steps, method="gausslegendre"
        )
        for name, summary in faithfulness["metrics"].items():
            print(f"faithfulness {name} aopc: {summary['aopc']}")
        print(f"SIG vs IG at 20%: {faithfulness['sig_vs_ig']['0.2']}")

    result = {
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "model_version": encoder_version(),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor(),
            "cpu_count": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "device": str(get_encoder().device),
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "timing": timing,
        "agreement": {
            "texts": agreement,
            "min_spearman_vs_inseq": min(rhos),
            "batched_quadrature_min_spearman_vs_inseq": min(
                a["batched_quadrature_spearman_vs_inseq"] for a in agreement
            ),
            "mean_spearman_vs_inseq": float(np.mean(rhos)),
        },
        "faithfulness": faithfulness,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"speedup vs Inseq {timing['speedup_vs_inseq']:.2f}x, vs stepwise {timing.get('speedup_vs_stepwise')}")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
