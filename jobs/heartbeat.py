"""A worker's sign of life while it plans a job or runs one of its shards.

A shard can run for an hour (adapter training, the offline evaluation) without finishing anything,
so a thread beside it writes ``Job.heartbeat_at`` every ELM_JOB_HEARTBEAT_SECONDS. A job without a
heartbeat for ELM_JOB_STALE_AFTER_HOURS has no live worker and may be marked interrupted
(``jobs.services.jobs_interrupted_mark``); one with a fresh heartbeat never is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from django.conf import settings
from django.db import connections

logger = logging.getLogger(__name__)


def heartbeat_seconds() -> float:
    return float(getattr(settings, "ELM_JOB_HEARTBEAT_SECONDS", 60))


@contextmanager
def heartbeat(job_id: int, *, every: float | None = None) -> Iterator[None]:
    """Beat once now, then every ``every`` seconds in a daemon thread until the block ends."""
    from jobs.services import job_heartbeat

    every = heartbeat_seconds() if every is None else every
    stop = threading.Event()

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    job_heartbeat(job_id=job_id)
                except Exception:  # the database may be restarting: the shard's own retries handle that
                    logger.warning("job %s: could not write the heartbeat", job_id, exc_info=True)
        finally:
            connections.close_all()  # this thread's own connection

    job_heartbeat(job_id=job_id)
    thread = threading.Thread(target=beat, name=f"job-{job_id}-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=10)
