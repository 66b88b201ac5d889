"""Row 1: import of the full Online Retail file against a raw COPY of the same rows into the same tables.

    .venv/bin/python benchmarks/bench_import.py [--runs 2] [--dataset PATH]

Each round uses a scratch database ``<ELM_DATABASE_NAME>_import`` (dropped and re-created, migrated):

1. **Import**: ``manage.py import_transactions`` in a child process (fresh database: the bulk path). The
   time is the ImportRun's own duration (file read, parse, clean, stage, merge, aggregates, commit); the
   child's peak RSS is recorded too.
2. **Baseline**: the products, customers and purchase lines the import produced are read back
   (``COPY ... TO STDOUT (FORMAT BINARY)``, in memory), then in one transaction the three tables are
   truncated and the same rows are written back with ``COPY ... FROM STDIN (FORMAT BINARY)`` into the
   same tables with all their indexes and constraints, and committed.
3. **Best-case baseline**: the same, but the purchase table's secondary indexes and constraints are
   dropped before the COPY and rebuilt after it (what the importer does for a bulk load).

Ratio = import rate / COPY rate (rows of the file per second, the same rows both ways) = COPY seconds /
import seconds. Rounds alternate import and COPY; the medians are reported.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from common import (
    LOGS,
    ROOT,
    LoadTrace,
    admin_conninfo,
    log,
    median,
    run_measured,
    setup_django,
    write_result,
)

TABLES = ("recommendations_product", "recommendations_customer", "recommendations_purchase")


def recreate_database(name: str) -> None:
    import psycopg

    with psycopg.connect(admin_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(admin_conninfo("postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def manage(args: list[str], *, database: str, log_name: str):
    env = {"ELM_DATABASE_NAME": database, "ELM_LOG_LEVEL": "INFO"}
    return run_measured([sys.executable, str(ROOT / "manage.py"), *args], env=env, log=LOGS / log_name, timeout=1800)


def import_round(*, database: str, dataset: Path) -> dict:
    import psycopg

    recreate_database(database)
    rc, _, _, tail = manage(["migrate", "--verbosity", "0"], database=database, log_name="import-migrate.log")
    if rc:
        raise SystemExit(f"migrate failed:\n{tail}")
    load = LoadTrace()
    rc, wall, peak_mib, tail = manage(
        ["import_transactions", str(dataset)], database=database, log_name="import-child.log"
    )
    if rc:
        raise SystemExit(f"import failed:\n{tail}")
    with psycopg.connect(admin_conninfo(database)) as conn:
        run = conn.execute(
            "SELECT extract(epoch FROM finished_at - started_at), rows_read, rows_inserted "
            "FROM recommendations_importrun WHERE status = 'succeeded' ORDER BY id DESC LIMIT 1"
        ).fetchone()
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608
    return {
        "seconds": float(run[0]),
        "process_wall_s": wall,
        "peak_rss_mib": round(peak_mib, 1),
        "rows_read": run[1],
        "rows_inserted": run[2],
        "table_rows": counts,
        "load": load.as_dict(),
    }


def copy_round(*, database: str, rebuild_indexes: bool) -> dict:
    """Read the imported rows back, then time truncate + binary COPY of the same rows into the same tables.

    With ``rebuild_indexes`` the purchase table's secondary indexes and constraints are dropped before
    the COPY and rebuilt after it (what the importer itself does for a bulk load): the best a raw load
    can do. Without, the rows go through every index and foreign-key check as they arrive.
    """
    import contextlib

    import psycopg

    from recommendations.services.importer import _indexes_dropped

    with psycopg.connect(admin_conninfo(database)) as conn:
        data: dict[str, bytes] = {}
        for table in TABLES:
            buf = bytearray()
            with conn.cursor().copy(f"COPY {table} TO STDOUT (FORMAT BINARY)") as cp:
                for chunk in cp:
                    buf += chunk
            data[table] = bytes(buf)
        conn.commit()
        load = LoadTrace()
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
            cur = conn.cursor()
            for table in TABLES:
                rebuild = rebuild_indexes and table == "recommendations_purchase"
                with (
                    _indexes_dropped(cur, table) if rebuild else contextlib.nullcontext(),
                    cur.copy(f"COPY {table} FROM STDIN (FORMAT BINARY)") as cp,
                ):
                    view = memoryview(data[table])
                    for start in range(0, len(view), 1 << 20):
                        cp.write(view[start : start + (1 << 20)])
        seconds = time.perf_counter() - started
        counts = {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}  # noqa: S608
    return {
        "seconds": seconds,
        "bytes": {t: len(b) for t, b in data.items()},
        "table_rows": counts,
        "load": load.as_dict(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2, help="rounds of (import, COPY), each on a fresh database")
    parser.add_argument("--dataset", type=Path, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the scratch database afterwards")
    args = parser.parse_args()
    setup_django()
    from django.conf import settings

    dataset = args.dataset or Path(settings.ELM_DATASET_PATH)
    database = f"{os.environ['ELM_DATABASE_NAME']}_import"
    rounds = []
    try:
        for i in range(args.runs):
            log(f"round {i + 1}/{args.runs}: import {dataset.name} into {database}")
            imp = import_round(database=database, dataset=dataset)
            log(f"  import {imp['seconds']:.1f} s, peak RSS {imp['peak_rss_mib']:.0f} MiB")
            cp = copy_round(database=database, rebuild_indexes=False)
            log(f"  COPY of the same rows through the indexes {cp['seconds']:.1f} s")
            cp_rebuild = copy_round(database=database, rebuild_indexes=True)
            log(f"  COPY of the same rows with an index rebuild {cp_rebuild['seconds']:.1f} s")
            for c in (cp, cp_rebuild):
                if c["table_rows"] != imp["table_rows"]:
                    raise SystemExit(f"COPY restored other row counts: {c['table_rows']} != {imp['table_rows']}")
            rounds.append({"import": imp, "copy": cp, "copy_rebuild": cp_rebuild})
    finally:
        if not args.keep:
            drop_database(database)
    import_s = median([r["import"]["seconds"] for r in rounds])
    copy_s = median([r["copy"]["seconds"] for r in rounds])
    copy_rebuild_s = median([r["copy_rebuild"]["seconds"] for r in rounds])
    rows = rounds[0]["import"]["rows_read"]
    write_result(
        "import",
        {
            "dataset": dataset.name,
            "rows_read": rows,
            "rounds": rounds,
            "import_s": import_s,
            "copy_s": copy_s,
            "import_rows_per_s": rows / import_s,
            "copy_rows_per_s": rows / copy_s,
            "ratio": copy_s / import_s,
            "copy_rebuild_s": copy_rebuild_s,
            "ratio_vs_copy_rebuild": copy_rebuild_s / import_s,
            "peak_rss_mib": max(r["import"]["peak_rss_mib"] for r in rounds),
        },
    )


if __name__ == "__main__":
    main()
