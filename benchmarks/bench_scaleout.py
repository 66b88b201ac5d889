"""Row 10 (and the worker part of row 9): the embedding and explanation jobs with 1 and with 2 workers.

    .venv/bin/python benchmarks/bench_scaleout.py [--workers 1,2] [--customers 16] [--ranks 3]

For each worker count, that many Celery worker processes are started (``celery -A elmsite worker -Q
gpu,default -c 1``, ``ELM_TORCH_THREADS=1``, as ``demo`` starts them), on the benchmark database and broker
db, and two real jobs go through the broker:

* ``embed_products`` over every product (all marked stale first): shards of ``ELM_SHARD_SIZE`` (512);
* ``explain`` (with language-model reasons) of the top ``--ranks`` recommendations of the ``--customers``
  most active customers, on a fresh recommendation batch (``recommend`` with ``force``, not timed), in
  shards of ``ELM_EXPLAIN_SHARD_SIZE`` (8 here, so that 48 items make 6 shards).

Time = from ``job_create`` until the job has succeeded (planning, queueing, every shard, finalizing).
Speed-up = time with 1 worker / time with N workers. The RSS of every worker process (Celery's main
process and the pool process that runs the tasks) is sampled throughout; the largest single peak is the
memory of a worker with the encoder and the language model loaded (row 9).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
import time

from common import LoadTrace, log, purge_queues, setup_django, start_workers, stop_workers, write_result

EXPLAIN_SHARD_SIZE = 8


def _wait(job, timeout: float = 3600):
    from jobs.progress import wait_for_pipeline

    with open(os.devnull, "w") as sink:
        return wait_for_pipeline(job, timeout=timeout, stream=sink)


def run_job(kind: str, params: dict | None = None) -> dict:
    from jobs.services import job_create

    load = LoadTrace()
    started = time.perf_counter()
    job = job_create(kind=kind, params=params or {})
    chain = _wait(job)
    seconds = time.perf_counter() - started
    job = chain[0]
    return {"seconds": seconds, "shards": job.shards_total, "items": job.items_done, "load": load.as_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--customers", type=int, default=16)
    parser.add_argument("--ranks", type=int, default=3)
    parser.add_argument("--skip-explain", action="store_true")
    args = parser.parse_args()
    os.environ["ELM_EXPLAIN_SHARD_SIZE"] = str(EXPLAIN_SHARD_SIZE)  # inherited by the workers (they plan)
    setup_django()
    import psutil
    from django.db import connection

    from recommendations.models import Product

    purge_queues()
    rows = {}
    for n in [int(w) for w in args.workers.split(",")]:
        workers = start_workers(n, tag=f"scaleout{n}-")
        peaks: dict[int, float] = {}  # per process: the Celery main process and its pool child (runs the tasks)
        tree_peak = [0.0]

        def sample(workers=workers, peaks=peaks, tree_peak=tree_peak):
            total = 0.0
            for c in workers:
                with contextlib.suppress(psutil.Error):
                    root = psutil.Process(c.proc.pid)
                    for proc in [root, *root.children(recursive=True)]:
                        rss = proc.memory_info().rss / 2**20
                        peaks[proc.pid] = max(peaks.get(proc.pid, 0.0), rss)
                        total += rss
            tree_peak[0] = max(tree_peak[0], total)

        stop = threading.Event()

        def sampler(stop=stop, sample=sample):
            while not stop.is_set():
                sample()
                stop.wait(0.5)

        thread = threading.Thread(target=sampler, daemon=True)
        thread.start()
        try:
            with connection.cursor() as cur:
                cur.execute(f"UPDATE {Product._meta.db_table} SET embedding_input_hash = ''")  # noqa: S608
            entry = {"embed_products": run_job("embed_products")}
            log(f"{n} worker(s): embed_products {entry['embed_products']}")
            if not args.skip_explain:
                run_job("recommend", {"force": True})  # a fresh batch: nothing explained yet (not timed)
                entry["explain"] = run_job("explain", {"customers": args.customers, "ranks": args.ranks})
                log(f"{n} worker(s): explain {entry['explain']}")
        finally:
            stop.set()
            thread.join()
            stop_workers(workers)
        entry["worker_peak_rss_mib"] = round(max(peaks.values()), 1)  # the pool process with the models
        entry["all_workers_peak_rss_mib"] = round(tree_peak[0], 1)
        rows[str(n)] = entry
    result = {"explain_shard_size": EXPLAIN_SHARD_SIZE, "by_workers": rows}
    counts = sorted(rows, key=int)
    if len(counts) > 1:
        one, most = rows[counts[0]], rows[counts[-1]]
        result["speedup"] = {
            kind: one[kind]["seconds"] / most[kind]["seconds"] for kind in ("embed_products", "explain") if kind in one
        }
    result["worker_peak_rss_mib"] = max(r["worker_peak_rss_mib"] for r in rows.values())
    write_result("scaleout", result)


if __name__ == "__main__":
    main()
