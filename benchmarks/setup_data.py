"""Prepare the benchmark database: the real data imported, embedded, recommended, concepts and calibration.

    .venv/bin/python benchmarks/setup_data.py

Idempotent and incremental like ``demo``: it migrates ``ELM_DATABASE_NAME`` (default ``elmsite_bench``),
imports the data set unless it already is, and runs the embed -> recommend -> concepts -> calibrate
pipeline through one Celery worker of its own (broker db ``ELM_BROKER_DB``, default 8); unchanged steps
are reused. Rows 2-10 of the benchmark read this data.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from common import LOGS, ROOT, ensure_database, log, run_measured, setup_django, start_workers, stop_workers


def ensure_data(*, dataset: Path | None = None) -> dict:
    """Bring the benchmark database up to date; return what each step did."""
    setup_django()
    from django.conf import settings

    database = os.environ["ELM_DATABASE_NAME"]
    if ensure_database(database):
        log(f"created database {database}")
    rc, _, _, tail = run_measured(
        [sys.executable, str(ROOT / "manage.py"), "migrate", "--verbosity", "0"], log=LOGS / "setup.log"
    )
    if rc:
        raise SystemExit(f"migrate failed:\n{tail}")
    from recommendations.models import ImportRun

    dataset = dataset or Path(settings.ELM_DATASET_PATH)
    if not ImportRun.objects.filter(status=ImportRun.Status.SUCCEEDED).exists():
        log(f"importing {dataset}")
        rc, _, _, tail = run_measured(
            [sys.executable, str(ROOT / "manage.py"), "import_transactions", str(dataset)], log=LOGS / "setup.log"
        )
        if rc:
            raise SystemExit(f"import failed:\n{tail}")
    from jobs import pipeline
    from jobs.progress import wait_for_pipeline
    from jobs.services import pipeline_start

    workers = start_workers(1, tag="setup")
    try:
        started = time.monotonic()
        job = pipeline_start(steps=pipeline.steps(*pipeline.EMBED, "recommend", "train_concepts", "calibrate"))
        chain = wait_for_pipeline(job, timeout=3600, stream=open(os.devnull, "w"))  # noqa: SIM115
        steps = {j.kind: {"items": j.items_done, "reused": bool(j.result.get("reused"))} for j in chain}
        log(f"pipeline done in {time.monotonic() - started:.0f} s: {steps}")
    finally:
        stop_workers(workers)
    return steps


if __name__ == "__main__":
    ensure_data()
