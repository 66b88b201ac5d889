"""Row 8: ``manage.py demo --no-serve`` cold start with the full data set, on a fresh ``var/`` directory.

    .venv/bin/python benchmarks/bench_demo.py [--var-dir DIR] [--keep]

A cold start means nothing exists yet: a new ``ELM_VAR_DIR`` (so new embedded PostgreSQL and Valkey
servers, a new database, no converted language model, no keys), the default database name and broker
db inside it. The time is the wall time of the command until it prints "Ready" and exits; the peak RSS
is the demo process's own (its workers and servers are separate processes). The servers it started are
stopped at the end and the directory is removed unless ``--keep``.

It takes about ten minutes and both cores: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

from common import LOGS, ROOT, LoadTrace, log, run_measured, write_result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    var = args.var_dir or Path(tempfile.mkdtemp(prefix="elm-demo-bench-"))
    if var.exists() and any(var.iterdir()):
        raise SystemExit(f"{var} is not empty: a cold start needs a fresh directory")
    env = {"ELM_VAR_DIR": str(var), "ELM_DATABASE_NAME": "elmsite", "ELM_BROKER_DB": "0", "ELM_LOG_LEVEL": "INFO"}
    log_file = LOGS / "demo.log"
    log_file.unlink(missing_ok=True)
    load = LoadTrace()
    try:
        rc, wall, peak, tail = run_measured(
            [sys.executable, str(ROOT / "manage.py"), "demo", "--no-serve"], env=env, log=log_file, timeout=3600
        )
    finally:
        run_measured([sys.executable, str(ROOT / "manage.py"), "services", "stop"], env=env, log=LOGS / "demo-stop.log")
        if not args.keep:
            shutil.rmtree(var, ignore_errors=True)
    text = log_file.read_text(errors="replace")
    steps = dict(re.findall(r"^\s+(\w+): [\d,]+ items in \d+ shards, ([\d.]+) s", text, flags=re.M))
    ready = re.search(r"Ready in (\d+) s", text)
    log(f"demo exited {rc} after {wall:.0f} s, peak RSS {peak:.0f} MiB")
    write_result(
        "demo",
        {
            "returncode": rc,
            "wall_s": wall,
            "ready_s": int(ready.group(1)) if ready else None,
            "steps_s": {k: float(v) for k, v in steps.items()},
            "peak_rss_mib": round(peak, 1),
            "load": load.as_dict(),
            "tail": tail[-800:],
        },
    )


if __name__ == "__main__":
    main()
