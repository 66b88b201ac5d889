"""Measure what the ELM adapter's soft tokens add to reason generation, on the real data.

For the top recommendation of the N most active customers, write the reason twice with the same LM and
greedy decoding — facts only, and facts plus the customer's and product's soft tokens — and compare
semantic consistency (as stored on explanations), the share of texts with check flags, and length.

    ELM_TORCH_THREADS=1 .venv/bin/python scripts/measure_reason_vectors.py \
        --customers 40 --out docs/results/reason_vectors.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.dev")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    import django

    django.setup()
    import numpy as np

    from explanations.ml.elm import get_adapter
    from explanations.ml.lm import configure_threads, generate_batch
    from explanations.services import explain
    from recommendations import profile
    from recommendations.ml.encoder import encode
    from recommendations.models import Customer, Recommendation, RecommendationBatch

    configure_threads()
    adapter = get_adapter()
    top = Customer.objects.filter(embedding__isnull=False).order_by("-order_count", "id")[: args.customers]
    recs = list(
        Recommendation.objects.filter(batch__status=RecommendationBatch.Status.ACTIVE, rank=1, customer__in=top)
        .select_related("customer", "product", "batch")
        .order_by("customer_id")
    )
    reference = profile.reference_time()
    facts = [explain.explanation_facts(recommendation=r, reference=reference) for r in recs]
    customers = adapter.soft_tokens(np.stack([f.customer_vector for f in facts]).astype(np.float32))
    products = adapter.soft_tokens(np.stack([f.product_vector for f in facts]).astype(np.float32))
    arms = {
        "facts_only": ([explain.reason_prompt(f) for f in facts], None),
        "facts_and_soft_tokens": (
            [explain.reason_prompt(f, with_vectors=True) for f in facts],
            [[c, p] for c, p in zip(customers, products, strict=True)],
        ),
    }
    results = {"customers": len(facts), "adapter": adapter.version, "arms": {}}
    per_item = {}
    for name, (prompts, soft) in arms.items():
        started = time.perf_counter()
        texts = [explain.clean_generated(t) for t in generate_batch(prompts, soft_tokens=soft, max_new_tokens=60)]
        seconds = time.perf_counter() - started
        vectors = encode(texts)
        sc = []
        flagged = 0
        for f, text, tv in zip(facts, texts, vectors, strict=True):
            pair = f.customer_vector + f.product_vector
            sc.append(float(np.dot(tv, pair / np.linalg.norm(pair))))
            template = explain.template_reason(f)
            flags = explain.text_checks(text, f, {}, template=template)
            flagged += any(fl["severity"] == "error" or fl["code"].startswith("hallucinated") for fl in flags)
        per_item[name] = np.array(sc)
        results["arms"][name] = {
            "sc_mean": round(float(np.mean(sc)), 4),
            "sc_std": round(float(np.std(sc)), 4),
            "flagged_share": round(flagged / len(texts), 4),
            "words_mean": round(float(np.mean([len(t.split()) for t in texts])), 1),
            "seconds": round(seconds, 1),
            "examples": texts[:3],
        }
    # Paired: the same recommendation in both arms.
    deltas = per_item["facts_and_soft_tokens"] - per_item["facts_only"]
    half = 1.96 * float(np.std(deltas, ddof=1)) / np.sqrt(len(deltas))
    results["sc_gain"] = {
        "mean": round(float(deltas.mean()), 4),
        "ci95": [round(float(deltas.mean()) - half, 4), round(float(deltas.mean()) + half, 4)],
    }
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
