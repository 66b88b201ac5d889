"""Benchmark the numbers pass over the whole active batch against the bare evidence arithmetic on the same arrays.

    .venv/bin/python benchmarks/bench_explain_numbers.py [--cache cold,warm] [--limit N]

Floor: ``evidence_arrays`` over the whole batch's arrays (every recommendation's per-purchase shares,
base and score: numpy only, no database, no Python per row), loaded once and timed alone. Measured:
``explanation_numbers_compute`` over the same recommendations in the job's shards, one process, as a
worker runs them: evidence, grouped lines, necessity, concepts, word attributions, confidence, the
template reason and the COPY of every row. It runs inside a transaction that first removes the batch's
explanations (and, for ``cold``, the cached masked encodings: the first batch after new products) and
is rolled back, so the database is left as it was. Writes benchmarks/results/explain_numbers.json.
"""

from __future__ import annotations

import argparse
import sys
import time

from common import git_commit, loadavg, log, machine, now_iso, setup_django, write_result


class Rollback(Exception):
    pass


def measure(ids: list[int], *, cold: bool, shard_size: int) -> dict:
    from django.db import connection, transaction

    from explanations.services import word_cache
    from explanations.services.numbers import explanation_numbers_compute

    spent = {"encode_s": 0.0}
    original = word_cache.masked_vectors_for

    def timed_masked(texts):
        started = time.perf_counter()
        try:
            return original(texts)
        finally:
            spent["encode_s"] += time.perf_counter() - started

    result = {}
    word_cache.masked_vectors_for = timed_masked
    try:
        with transaction.atomic():
            with connection.cursor() as cur:
                cur.execute("SET CONSTRAINTS ALL DEFERRED")  # review rows point at the removed explanations
                cur.execute("DELETE FROM explanations_explanation WHERE recommendation_id = ANY(%s)", [ids])
                if cold:
                    cur.execute("DELETE FROM explanations_maskedtext")
            started = time.perf_counter()
            done = sum(
                explanation_numbers_compute(recommendation_ids=ids[lo : lo + shard_size])
                for lo in range(0, len(ids), shard_size)
            )
            elapsed = time.perf_counter() - started
            result = {"explained": done, "seconds": elapsed, "per_s": done / elapsed, **spent, "load": loadavg()}
            raise Rollback
    except Rollback:
        pass
    finally:
        word_cache.masked_vectors_for = original
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", default="cold,warm", help="masked-encoding cache states to measure, in order")
    parser.add_argument("--limit", type=int, default=0, help="only the first N recommendations (0: the whole batch)")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings

    from explanations.job_kinds import NUMBERS_SHARD_SIZE
    from explanations.services.evidence_batch import batch_arrays, evidence_arrays
    from explanations.services.numbers import catalogue_for
    from recommendations import profile
    from recommendations.models import Recommendation, RecommendationBatch

    batch = RecommendationBatch.objects.filter(status=RecommendationBatch.Status.ACTIVE).first()
    if batch is None:
        raise SystemExit("no active batch: run benchmarks/setup_data.py first")
    ordered = Recommendation.objects.filter(batch=batch).order_by("customer_id", "rank")
    rows = list(ordered.values_list("id", "customer_id", "product_id"))
    if args.limit:
        rows = rows[: args.limit]
    ids = [r[0] for r in rows]
    log(f"batch #{batch.pk} ({batch.recommender}): {len(ids):,} recommendations")
    cat = catalogue_for(batch)  # loaded once per worker process; not part of either side
    arrays = batch_arrays(batch, [(c, p) for _, c, p in rows], model=cat.model, reference=profile.reference_time())
    floors = []
    for _ in range(3):
        started = time.perf_counter()
        evidence = evidence_arrays(arrays)
        floors.append(time.perf_counter() - started)
    floor_s = sorted(floors)[1]
    log(f"floor: {floor_s:.2f} s ({len(ids) / floor_s:,.0f}/s), {len(evidence.rec):,} evidence pairs")
    runs = {}
    for state in [s for s in args.cache.split(",") if s]:
        runs[state] = measure(ids, cold=state == "cold", shard_size=NUMBERS_SHARD_SIZE)
        run = runs[state]
        log(f"{state}: {run['seconds']:.0f} s ({run['per_s']:,.0f}/s), encoding {run['encode_s']:.0f} s")
    floor_per_s = len(ids) / floor_s
    write_result(
        "explain_numbers",
        {
            "measured_at": now_iso(), "finished_at": now_iso(), "commit": git_commit(), "machine": machine(),
            "load_before": loadavg(),
            "recommendations": len(ids), "evidence_pairs": len(evidence.rec), "recommender": batch.recommender,
            "floor_s": floor_s, "floor_per_s": floor_per_s, "shard_size": NUMBERS_SHARD_SIZE,
            "torch_threads": settings.ELM_TORCH_THREADS if hasattr(settings, "ELM_TORCH_THREADS") else None,
            "runs": runs,
            "ratio": {state: r["per_s"] / floor_per_s for state, r in runs.items()},
        },
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
