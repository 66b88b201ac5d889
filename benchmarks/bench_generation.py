"""Row 6: batched reason generation against one-at-a-time generation (reasons per minute).

    .venv/bin/python benchmarks/bench_generation.py [--prompts 32] [--batch-size 16] [--threads 1,2] [--runs 2]

The prompts are the production ones: ``reason_prompt(explanation_facts(...))`` for the top-3
recommendations of the most active customers of the active batch in the benchmark database. Both sides
call ``explanations.ml.lm.generate_batch`` with the job's settings (greedy, ``ELM_REASON_MAX_TOKENS``
new tokens, the bundled SmolLM2-135M): one-at-a-time = ``batch_size=1`` per prompt; batched =
``batch_size`` (the job's default, 16) over all prompts. Runs alternate; medians are reported, with how
many texts came out identical (greedy decoding of left-padded batches differs only by float rounding).
"""

from __future__ import annotations

import argparse
import time

from common import LoadTrace, log, median, self_peak_rss_mib, setup_django, write_result


def real_prompts(n: int) -> list:
    from django.conf import settings

    from explanations.selectors import recommendations_to_explain
    from explanations.services.explain import customer_profile, explanation_facts, reason_prompt
    from recommendations import profile
    from recommendations.models import Recommendation, RecommendationBatch

    ids = recommendations_to_explain(ranks=3)[:n]
    if len(ids) < n:  # everything explained already: take any of the active batch
        ids = list(
            Recommendation.objects.filter(batch__status=RecommendationBatch.Status.ACTIVE, rank__lte=3)
            .order_by("-customer__order_count", "customer_id", "rank")
            .values_list("id", flat=True)[:n]
        )
    recs = list(Recommendation.objects.filter(pk__in=ids).select_related("customer", "product", "batch").order_by("id"))
    reference = profile.reference_time()
    prompts = []
    for rec in recs:
        loaded = customer_profile(rec.customer_id, {rec.product_id}, reference=reference)
        prompts.append(reason_prompt(explanation_facts(recommendation=rec, reference=reference, loaded=loaded)))
    log(f"{len(prompts)} real prompts, max_new_tokens {settings.ELM_REASON_MAX_TOKENS}")
    return prompts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    setup_django()
    import torch
    from django.conf import settings

    from explanations.ml.lm import generate_batch, get_lm, lm_id

    prompts = real_prompts(args.prompts)
    lm = get_lm()
    max_new = settings.ELM_REASON_MAX_TOKENS
    generate_batch(prompts[:2], max_new_tokens=8, batch_size=2, lm=lm)  # warm-up

    def one_at_a_time() -> tuple[float, list[str]]:
        started = time.perf_counter()
        texts = [generate_batch([p], max_new_tokens=max_new, batch_size=1, lm=lm)[0] for p in prompts]
        return time.perf_counter() - started, texts

    def batched() -> tuple[float, list[str]]:
        started = time.perf_counter()
        texts = generate_batch(prompts, max_new_tokens=max_new, batch_size=args.batch_size, lm=lm)
        return time.perf_counter() - started, texts

    by_threads = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        load = LoadTrace()
        single_s, batch_s, same = [], [], []
        for i in range(args.runs):
            s, single_texts = one_at_a_time()
            b, batch_texts = batched()
            single_s.append(s)
            batch_s.append(b)
            same.append(sum(a == b for a, b in zip(single_texts, batch_texts, strict=True)))
            log(f"threads {threads} run {i + 1}: one-at-a-time {s:.1f} s, batched {b:.1f} s, identical {same[-1]}")
        s, b = median(single_s), median(batch_s)
        by_threads[str(threads)] = {
            "one_at_a_time_s": single_s,
            "batched_s": batch_s,
            "one_at_a_time_per_min": len(prompts) * 60 / s,
            "batched_per_min": len(prompts) * 60 / b,
            "speedup": s / b,
            "identical_texts": same,
            "load": load.as_dict(),
        }
    best = max(by_threads.values(), key=lambda v: v["batched_per_min"])
    write_result(
        "generation",
        {
            "lm": lm_id(),
            "device": str(lm[0].device),
            "prompts": len(prompts),
            "batch_size": args.batch_size,
            "max_new_tokens": max_new,
            "by_threads": by_threads,
            "speedup": min(v["speedup"] for v in by_threads.values()),
            "batched_per_min": best["batched_per_min"],
            "peak_rss_mib": round(self_peak_rss_mib(), 1),
            "gpu": "no GPU was lent to this session; CPU only",
        },
    )


if __name__ == "__main__":
    main()
