"""Follow a job pipeline from the command line with a progress bar per job."""

from __future__ import annotations

import sys
import time

from jobs import registry
from jobs.models import Job
from jobs.selectors import job_chain


class JobFailed(RuntimeError):
    pass


def wait_for_pipeline(job: Job, *, poll: float = 0.5, timeout: float | None = None, stream=None) -> list[Job]:
    """Block until the job and every job it chains to have finished; raise JobFailed if one fails or is interrupted."""
    from tqdm import tqdm

    stream = stream or sys.stderr
    expected = 1 + len(job.then)
    deadline = time.monotonic() + timeout if timeout else None
    bars: dict[int, tqdm] = {}
    try:
        while True:
            chain = job_chain(job)
            for j in chain:
                j.refresh_from_db()
                bar = bars.get(j.pk)
                if bar is None:
                    label = str(registry.get(j.kind).label)  # a lazy translation: format it as text
                    bar = bars[j.pk] = tqdm(total=1, desc=f"{label:<18}", unit="item", file=stream, leave=True)
                total = max(j.items_total, 1)
                done = total if j.status == Job.Status.SUCCEEDED else min(j.items_done, total)
                if (bar.total, bar.n, bar.postfix) != (total, done, j.status):
                    # Redraw only on change: a log file (no terminal) gets one line per change.
                    bar.total, bar.n = total, done
                    bar.set_postfix_str(j.status, refresh=False)
                    bar.refresh()
                if j.status in (Job.Status.FAILED, Job.Status.INTERRUPTED):
                    raise JobFailed(f"{j.kind} job #{j.pk} {j.status}: {j.error.splitlines()[0] if j.error else ''}")
            if len(chain) == expected and chain[-1].status == Job.Status.SUCCEEDED:
                return chain
            if deadline and time.monotonic() > deadline:
                raise TimeoutError(f"jobs still running after {timeout} s: {[str(j) for j in chain]}")
            time.sleep(poll)
    finally:
        for bar in bars.values():
            bar.close()
