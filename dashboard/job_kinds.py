"""Job kinds of this app: the replay of a past cutoff (the dashboard registers only its own kinds)."""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import gettext_lazy as _

from jobs.registry import JobKind, register, reuse, shard


def _plan_replay(job) -> list[dict]:
    from dashboard.services import replay

    cutoff = replay.cutoff_datetime(job.params.get("cutoff"))
    horizon = int(job.params.get("horizon_days", replay.DEFAULT_HORIZON_DAYS))
    run_id = job.result.get("replay_run_id")
    if run_id is None:
        reused = None if job.params.get("force") else replay.replay_run_reusable(cutoff=cutoff, horizon_days=horizon)
        if reused is not None:
            return reuse(job, replay_run_id=reused.pk)
        # A redelivered planning message reuses the run it already started.
        run_id = replay.replay_run_start(cutoff=cutoff, horizon_days=horizon, job=job).pk
        job.result = {**job.result, "replay_run_id": run_id}
        job.save(update_fields=["result"])
    ids = replay.replay_customer_ids(cutoff=cutoff)
    return [{"ids": chunk, "size": len(chunk), "run_id": run_id} for chunk in shard(ids, settings.ELM_SHARD_SIZE)]


def _run_replay(job, payload) -> int:
    from dashboard.services.replay import replay_compute

    return replay_compute(run_id=payload["run_id"], customer_ids=payload["ids"])


def _finalize_replay(job) -> dict:
    from dashboard.services.replay import replay_run_finish

    run = replay_run_finish(run_id=job.result["replay_run_id"])
    return {"replay_run_id": run.pk, "recommendations": run.recommendations, "won": run.won}


register(
    JobKind(
        name="replay",
        label=_("Replay past cutoff"),
        plan=_plan_replay,
        run_shard=_run_replay,
        finalize=_finalize_replay,
    )
)
