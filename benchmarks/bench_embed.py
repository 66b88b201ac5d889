"""Row 2: embedding products and customers against plain ``SentenceTransformer.encode`` on the same texts.

    .venv/bin/python benchmarks/bench_embed.py [--threads 1,2] [--runs 3] [--limit N]

For each torch thread count (the same for both sides), in one process and with one loaded model,
alternating runs of:

* **baseline**: ``model.encode(texts, batch_size=ELM_ENCODER_BATCH_SIZE, normalize_embeddings=True)`` on
  the encoder texts of all described products (``product_embedding_text``), nothing else;
* **ours**: what the ``embed_products`` job does, without Celery: every product is marked stale, the
  plan (``products_needing_embedding``) is made, and each shard of ``ELM_SHARD_SIZE`` ids runs
  ``products_embed`` (read, hash, encode, binary COPY + UPDATE through the HNSW index). The time spent
  inside ``encode`` is recorded separately, so the overhead is visible;
* then the ``embed_customers`` job the same way (weighted means of stored product vectors; no model).

Ratio = baseline seconds / our products seconds (throughput ratio, same texts), the median over the
runs of each run's pair (baseline and ours taken moments apart, so the machine's drifting load hits
both alike); the ratio of the medians and the ratio of this process's CPU seconds are reported too. The
combined ratio adds the customers step. Finally a re-run on unchanged data: plans and shards again, counting the
texts that reach the model (must be 0).

Celery's own overhead per shard (one task message per 512 products) is in row 10's job timings.
"""

from __future__ import annotations

import argparse
import time

from common import LoadTrace, log, median, setup_django, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="torch thread counts to compare at")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--limit", type=int, default=None, help="only the first N products (quick runs)")
    args = parser.parse_args()
    setup_django()
    import torch
    from django.conf import settings
    from django.db import connection

    from jobs.registry import shard
    from recommendations.ml import encoder as encoder_module
    from recommendations.models import Customer, Product
    from recommendations.services import embeddings

    model = encoder_module.get_encoder()
    batch_size = settings.ELM_ENCODER_BATCH_SIZE
    rows = list(Product.objects.exclude(description="").order_by("id").values_list("id", "description"))
    if args.limit:
        rows = rows[: args.limit]
    ids = [pk for pk, _ in rows]
    texts = [embeddings.product_embedding_text(d) for _, d in rows]
    customer_ids = sorted(embeddings.customer_input_hashes())
    if args.limit:
        customer_ids = customer_ids[: args.limit]
    log(f"{len(texts)} product texts, {len(customer_ids)} customers, batch size {batch_size}")

    encoded = {"texts": 0, "seconds": 0.0}
    real_encode = encoder_module.encode

    def counting_encode(texts, **kwargs):
        started = time.perf_counter()
        try:
            return real_encode(texts, **kwargs)
        finally:
            encoded["texts"] += len(texts)
            encoded["seconds"] += time.perf_counter() - started

    encoder_module.encode = counting_encode

    def baseline() -> dict:
        started, cpu = time.perf_counter(), time.process_time()
        model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
        )
        return {"seconds": time.perf_counter() - started, "cpu_s": time.process_time() - cpu}

    def mark_stale(table: str, pks: list[int]) -> None:
        with connection.cursor() as cur:
            cur.execute(f"UPDATE {table} SET embedding_input_hash = '' WHERE id = ANY(%s)", [pks])  # noqa: S608

    def ours_products() -> dict:
        mark_stale(Product._meta.db_table, ids)
        encoded.update(texts=0, seconds=0.0)
        started, cpu = time.perf_counter(), time.process_time()
        plan = embeddings.products_needing_embedding(model_version=encoder_module.encoder_version())
        planned = time.perf_counter() - started
        todo = [pk for pk in plan if pk in set(ids)] if args.limit else plan
        done = sum(embeddings.products_embed(product_ids=chunk) for chunk in shard(todo, settings.ELM_SHARD_SIZE))
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "cpu_s": time.process_time() - cpu,
            "plan_s": planned,
            "encode_s": encoded["seconds"],
            "products": done,
        }

    def ours_customers() -> dict:
        mark_stale(Customer._meta.db_table, customer_ids)
        started = time.perf_counter()
        plan = embeddings.customers_needing_embedding()
        planned = time.perf_counter() - started
        todo = [c for c in plan if c in set(customer_ids)] if args.limit else plan
        done = sum(embeddings.customers_embed(customer_ids=chunk) for chunk in shard(todo, settings.ELM_SHARD_SIZE))
        return {"seconds": time.perf_counter() - started, "plan_s": planned, "customers": done}

    by_threads = {}
    for threads in [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        load = LoadTrace()
        baseline()  # warm-up: first-call allocations, page cache of the weights
        runs = {"baseline": [], "products": [], "customers": []}
        for i in range(args.runs):
            runs["baseline"].append(baseline())
            runs["products"].append(ours_products())
            runs["customers"].append(ours_customers())
            log(
                f"threads {threads} run {i + 1}: baseline {runs['baseline'][-1]['seconds']:.1f} s, "
                f"products {runs['products'][-1]['seconds']:.1f} s (encode {runs['products'][-1]['encode_s']:.1f}), "
                f"customers {runs['customers'][-1]['seconds']:.1f} s"
            )
        base_s = median([r["seconds"] for r in runs["baseline"]])
        prod_s = median([r["seconds"] for r in runs["products"]])
        base_cpu = median([r["cpu_s"] for r in runs["baseline"]])
        prod_cpu = median([r["cpu_s"] for r in runs["products"]])
        enc_s = median([r["encode_s"] for r in runs["products"]])
        cust_s = median([r["seconds"] for r in runs["customers"]])
        by_threads[str(threads)] = {
            "runs": runs,
            "baseline_s": base_s,
            "products_s": prod_s,
            "products_encode_s": enc_s,
            "customers_s": cust_s,
            "baseline_texts_per_s": len(texts) / base_s,
            "products_per_s": len(texts) / prod_s,
            "customers_per_s": len(customer_ids) / cust_s,
            # Each run pairs a baseline and our pass taken moments apart: the median of the pairs' ratios
            # cancels the machine's drifting load better than the ratio of the two medians.
            "ratio": median(
                [b["seconds"] / o["seconds"] for b, o in zip(runs["baseline"], runs["products"], strict=True)]
            ),
            "ratio_of_medians": base_s / prod_s,
            # CPU seconds of this process (the server's index maintenance runs elsewhere): less noisy.
            "baseline_cpu_s": base_cpu,
            "products_cpu_s": prod_cpu,
            "cpu_ratio": base_cpu / prod_cpu,
            "ratio_with_customers": median(
                [
                    b["seconds"] / (o["seconds"] + c["seconds"])
                    for b, o, c in zip(runs["baseline"], runs["products"], runs["customers"], strict=True)
                ]
            ),
            "overhead_outside_encode_s": median([o["seconds"] - o["encode_s"] for o in runs["products"]]),
            "load": load.as_dict(),
        }
        entry = by_threads[str(threads)]
        log(
            f"threads {threads}: ratio {entry['ratio']:.3f} (of medians {entry['ratio_of_medians']:.3f}, with "
            f"customers {entry['ratio_with_customers']:.3f}), CPU-time ratio {entry['cpu_ratio']:.3f}"
        )

    # Re-run on unchanged data: plan and run every shard again; nothing may reach the model.
    encoded.update(texts=0, seconds=0.0)
    started = time.perf_counter()
    product_plan = embeddings.products_needing_embedding(model_version=encoder_module.encoder_version())
    customer_plan = embeddings.customers_needing_embedding()
    plan_s = time.perf_counter() - started
    reencoded = sum(embeddings.products_embed(product_ids=chunk) for chunk in shard(ids, settings.ELM_SHARD_SIZE))
    rerun = {
        "plan_s": plan_s,
        "stale_products": len(product_plan),
        "stale_customers": len(customer_plan),
        "shards_s": time.perf_counter() - started - plan_s,
        "products_reencoded": reencoded,
        "texts_through_model": encoded["texts"],
    }
    log(f"re-run on unchanged data: {rerun}")
    first = by_threads[min(by_threads, key=int)]
    write_result(
        "embed",
        {
            "products": len(texts),
            "customers": len(customer_ids),
            "batch_size": batch_size,
            "shard_size": settings.ELM_SHARD_SIZE,
            "device": str(model.device),
            "by_threads": by_threads,
            "ratio": min(v["ratio"] for v in by_threads.values()),
            "ratio_threads_1": first["ratio"],
            "rerun": rerun,
        },
    )


if __name__ == "__main__":
    main()
