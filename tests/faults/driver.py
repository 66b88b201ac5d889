"""Act on a private ELM Site (its own embedded servers under ELM_VAR_DIR) for the restart tests; print JSON.

    python -m tests.faults.driver migrate
    python -m tests.faults.driver import PATH
    python -m tests.faults.driver job KIND [THEN ...]      # queue a pipeline; prints the first job's id
    python -m tests.faults.driver retry JOB_ID
    python -m tests.faults.driver state                     # jobs, shards, imports and row counts

The restart tests stop and start these servers, so nothing here may run against the shared ones:
the driver refuses to run without ELM_VAR_DIR.
"""

from __future__ import annotations

import json
import os
import sys


def _setup() -> None:
    if not os.environ.get("ELM_VAR_DIR"):
        raise SystemExit("ELM_VAR_DIR must name the private var dir")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.test")
    import django

    django.setup()


def state() -> dict:
    from django.db.models import Count

    from explanations.models import Explanation
    from jobs.models import Job, JobShard
    from recommendations.models import Customer, ImportRun, Product, Purchase, Recommendation

    def repeated(qs, *fields) -> int:
        return sum(r["n"] - 1 for r in qs.values(*fields).annotate(n=Count("id")).filter(n__gt=1))

    return {
        "jobs": [
            {
                "id": j.pk,
                "kind": j.kind,
                "status": j.status,
                "error": j.error[:300],
                "shards_total": j.shards_total,
                "shards_done": j.shards_done,
            }
            for j in Job.objects.order_by("pk")
        ],
        "shards": dict(JobShard.objects.values_list("status").annotate(n=Count("id"))),
        "imports": [
            {"id": r.pk, "status": r.status, "error": r.error[:300], "rows_inserted": r.rows_inserted}
            for r in ImportRun.objects.order_by("pk")
        ],
        "purchases": Purchase.objects.count(),
        "products": Product.objects.count(),
        "customers": Customer.objects.count(),
        "embedded_products": Product.objects.exclude(embedding=None).count(),
        "recommendations": Recommendation.objects.filter(batch__status="active").count(),
        "explanations": dict(Explanation.objects.values_list("status").annotate(n=Count("id"))),
        "duplicates": {
            "purchase line_key": repeated(Purchase.objects, "line_key"),
            "recommendation (batch, customer, rank)": repeated(Recommendation.objects, "batch", "customer", "rank"),
            "explanation per recommendation": repeated(Explanation.objects, "recommendation"),
            "child job per parent": repeated(Job.objects.exclude(parent=None), "parent"),
        },
    }


def main(argv: list[str]) -> None:
    _setup()
    command, args = argv[0], argv[1:]
    if command == "migrate":
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        out = {"ok": True}
    elif command == "import":
        from recommendations.services.importer import transactions_import

        run = transactions_import(path=args[0])
        out = {"import_run": run.pk, "status": run.status, "rows_inserted": run.rows_inserted}
    elif command == "job":
        from jobs.services import job_create

        out = {"job": job_create(kind=args[0], then=args[1:], params={"use_lm": False}).pk}
    elif command == "retry":
        from jobs.services import job_retry

        out = {"job": job_retry(job_id=int(args[0])).status}
    elif command == "state":
        out = state()
    else:
        raise SystemExit(f"unknown command {command!r}")
    print(json.dumps(out))


if __name__ == "__main__":
    main(sys.argv[1:])
