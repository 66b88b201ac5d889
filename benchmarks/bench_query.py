"""Row 3: the recommendation query on the real data, HNSW index against exact (sequential scan) search.

    .venv/bin/python benchmarks/bench_query.py [--customers N] [--ef-search 40,100,200,400,800]

The query is the production one (``recommend.SEARCH_SQL``: top ``ELM_RECOMMENDATIONS_PER_CUSTOMER``
merchandise products by cosine similarity, excluding what the customer bought in the last
``ELM_RECENT_PURCHASE_EXCLUSION_DAYS``), with ``recommend.configure_search`` (``hnsw.ef_search``,
iterative scan). For every sampled customer it runs once through the HNSW index (``enable_seqscan =
off``, so the index is measured even where the planner would scan the small table instead) and once as
an exact search (``enable_indexscan = off``: sequential scan and sort), alternating, each timed on the client
(one round trip on Django's connection). Recall@10 = share of the exact top 10 that the index returns,
where a returned product whose score ties the exact 10th score counts (products with the same
description share a vector, so which of two tied ids comes 10th is arbitrary); the strict by-id recall
is reported as well.
"""

from __future__ import annotations

import argparse
import random
import time
from datetime import timedelta

from common import LoadTrace, latency_summary, log, setup_django, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=0, help="sample size (0 = every customer with a vector)")
    parser.add_argument(
        "--ef-search", default="40,100,200,400,800", help="hnsw.ef_search values (the setting is the default)"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    setup_django()
    from django.conf import settings
    from django.db import connection, transaction

    from recommendations import profile
    from recommendations.models import Customer
    from recommendations.services import recommend
    from recommendations.vectors import fetch_vectors

    vectors = fetch_vectors(Customer._meta.db_table)
    ids = sorted(vectors)
    if args.customers and args.customers < len(ids):
        ids = sorted(random.Random(args.seed).sample(ids, args.customers))
    since = profile.reference_time() - timedelta(days=settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS)
    recent = recommend.recently_bought(customer_ids=ids, since=since)
    top_n = settings.ELM_RECOMMENDATIONS_PER_CUSTOMER
    with connection.cursor() as cur:
        cur.execute("SELECT count(*) FROM recommendations_product WHERE is_merchandise AND embedding IS NOT NULL")
        n_products = cur.fetchone()[0]
    log(f"{len(ids)} customers, {n_products} merchandise products with vectors, top {top_n}")

    by_ef = {}
    for ef in [int(e) for e in args.ef_search.split(",")]:
        hnsw_t, exact_t, hits, tie_hits, perfect, misses = [], [], 0, 0, 0, []
        load = LoadTrace()
        with transaction.atomic(), connection.cursor() as cur:
            recommend.configure_search(cur)
            cur.execute("SET LOCAL hnsw.ef_search = %s", [ef])
            cur.execute("EXPLAIN " + recommend.SEARCH_SQL, {"vector": "[" + ",".join(["0.1"] * 384) + "]",
                                                            "excluded": [], "top_n": top_n})  # fmt: skip
            # The planner weighs the index scan's cost (which grows with ef_search) against the scan of a
            # small table: record what production would do.
            uses_index = "product_embedding_hnsw" in "\n".join(r[0] for r in cur.fetchall())
            for cid in ids:
                excluded = recent.get(cid, [])
                cur.execute("SET LOCAL enable_indexscan = on; SET LOCAL enable_seqscan = off")
                started = time.perf_counter()
                got = recommend.product_search(vector=vectors[cid], excluded=excluded, top_n=top_n, cursor=cur)
                hnsw_t.append(time.perf_counter() - started)
                cur.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_seqscan = on")
                started = time.perf_counter()
                want = recommend.product_search(vector=vectors[cid], excluded=excluded, top_n=top_n, cursor=cur)
                exact_t.append(time.perf_counter() - started)
                common_ids = {p for p, _ in got} & {p for p, _ in want}
                hits += len(common_ids)
                # Products with the same description have the same vector: a tie at the cut-off is no miss.
                cutoff = want[-1][1] - 1e-6 if want else 1.0
                good = sum(1 for p, score in got if p in common_ids or score >= cutoff)
                tie_hits += min(good, len(want))
                perfect += good >= len(want)
                if good < len(want):
                    misses.append({"customer_id": cid, "missed": len(want) - good, "kth_exact": want[-1][1]})
        total = sum(min(top_n, n_products) for _ in ids)
        hnsw, exact = latency_summary(hnsw_t), latency_summary(exact_t)
        by_ef[str(ef)] = {
            "hnsw": hnsw,
            "exact": exact,
            "planner_uses_index": uses_index,
            "recall_at_10": tie_hits / total,
            "recall_at_10_by_id": hits / total,
            "customers_with_full_recall": perfect,
            "misses": misses[:20],
            "p95_ratio_exact_over_hnsw": exact["p95_ms"] / hnsw["p95_ms"],
            "load": load.as_dict(),
        }
        log(
            f"ef_search {ef}: HNSW p50 {hnsw['p50_ms']:.1f} p95 {hnsw['p95_ms']:.1f} ms, exact p50 "
            f"{exact['p50_ms']:.1f} p95 {exact['p95_ms']:.1f} ms, recall@10 {tie_hits / total:.4f} "
            f"(by id {hits / total:.4f}), planner uses the index: {uses_index}"
        )
    default = by_ef.get(str(settings.ELM_HNSW_EF_SEARCH)) or next(iter(by_ef.values()))
    write_result(
        "query",
        {
            "customers": len(ids),
            "products": n_products,
            "top_n": top_n,
            "ef_search_default": settings.ELM_HNSW_EF_SEARCH,
            "by_ef_search": by_ef,
            "p95_ms": default["hnsw"]["p95_ms"],
            "recall_at_10": default["recall_at_10"],
        },
    )


if __name__ == "__main__":
    main()
