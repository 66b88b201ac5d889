"""Replay: run the production recommender as of a past cutoff and score it on the real purchases after it.

The recommender is the one production serves (``recommendations.services.production.production_choice``):

- the **hybrid** is fitted, with the production hyper-parameters, on the sale lines before the cutoff
  only (as the offline evaluation fits it on its training window), frozen like the production
  artifact, and ranks with the customers' purchase weights aged from the cutoff;
- the **embedding** recommender builds each customer's vector from the purchases before the cutoff
  exactly as ``recommendations.profile`` does today (recency measured from the cutoff) and searches
  the same HNSW index as ``recommendations.services.recommend``; products first sold after the
  cutoff are excluded (they were not in the catalogue yet; the hybrid never learned them).

Both apply the production exclusion rule (nothing the customer bought in the ``exclude_days``
before the cutoff). A recommendation is *won* when the customer bought the product within
``horizon_days`` after the cutoff, otherwise *lost*: pitching is simulated (every recommendation
counts as pitched), the purchases are real. Each recommendation gets its A/B arm from the live
assignment rule (``outcomes.services.ab_arm_for``, same share), so a re-run shard assigns the same
arms and a pair sits in the same arm in the replay as in live use.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Sequence
from datetime import date, datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from dashboard.models import ReplayRecommendation, ReplayRun
from outcomes.services import ab_arm_for
from recommendations.models import ImportRun, Product
from recommendations.services import production, recommend
from recommendations.services.reorder import reorder_apply

DEFAULT_CUTOFF = date(2011, 9, 1)
DEFAULT_HORIZON_DAYS = 90
# Replay runs kept with their rows; older ones are deleted when a new one finishes.
KEEP_RUNS = 3


class ReplayNotPossible(ValueError):
    """The data cannot support a replay with these settings (e.g. the horizon ends after the data)."""


def control_share() -> float:
    return float(settings.ELM_AB_CONTROL_SHARE)


def cutoff_datetime(value: date | datetime | str | None) -> datetime:
    """Return the cutoff as an aware datetime: midnight at the start of the day, in the site's time zone."""
    if value is None:
        value = DEFAULT_CUTOFF
    if isinstance(value, str):
        value = date.fromisoformat(value[:10])
    if isinstance(value, datetime):
        return value if timezone.is_aware(value) else timezone.make_aware(value)
    return timezone.make_aware(datetime.combine(value, time.min))


def _model_version(choice: production.ProductionChoice) -> str:
    if choice.recommender == production.HYBRID:
        from recommendations.evaluation.hybrid import HybridRecommender

        return HybridRecommender(**dict(choice.params)).version()
    from recommendations.services.embeddings import customer_profile_version

    return customer_profile_version()


def replay_version(choice: production.ProductionChoice | None = None) -> str:
    """Return what a replay's rows depend on besides the data: recommender, its parameters and the settings."""
    choice = choice or production.production_choice()
    return (
        f"{choice.recommender}:{_model_version(choice)}|top{settings.ELM_RECOMMENDATIONS_PER_CUSTOMER}"
        f"|exclude{settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS}d|ab:{settings.ELM_AB_SALT}"
    )


def data_changed_at() -> datetime | None:
    """Return when the inputs of a replay last changed: the latest import or product embedding."""
    times = [
        ImportRun.objects.filter(status=ImportRun.Status.SUCCEEDED).aggregate(t=Max("finished_at"))["t"],
        Product.objects.aggregate(t=Max("embedded_at"))["t"],
    ]
    times = [t for t in times if t]
    return max(times) if times else None


def replay_run_reusable(*, cutoff: datetime, horizon_days: int) -> ReplayRun | None:
    """Return a finished replay with these settings made after the data last changed, if any."""
    run = (
        ReplayRun.objects.filter(
            status=ReplayRun.Status.SUCCEEDED,
            cutoff=cutoff,
            horizon_days=horizon_days,
            control_share=control_share(),
            version=replay_version(),
        )
        .order_by("-created_at")
        .first()
    )
    changed = data_changed_at()
    if run is None or (changed and run.created_at < changed):
        return None
    return run


def replay_run_start(*, cutoff: datetime, horizon_days: int = DEFAULT_HORIZON_DAYS, job=None) -> ReplayRun:
    """Create a running replay after checking the data covers the horizon; fit the hybrid if it serves."""
    end = cutoff + timedelta(days=horizon_days)
    with connection.cursor() as cur:
        cur.execute("SELECT min(occurred_at), max(occurred_at) FROM recommendations_purchase WHERE kind = 'sale'")
        first, last = cur.fetchone()
    if first is None or first >= cutoff:
        raise ReplayNotPossible(f"no purchases before the cutoff {cutoff:%Y-%m-%d}")
    if last < end - timedelta(days=1):
        raise ReplayNotPossible(
            f"the {horizon_days}-day horizon ends on {end:%Y-%m-%d}, after the last purchase ({last:%Y-%m-%d})"
        )
    choice = production.production_choice()
    with connection.cursor() as cur:
        # Merchandise that nobody had bought before the cutoff was not in the catalogue yet.
        cur.execute(
            """
            SELECT p.id FROM recommendations_product p
            WHERE p.is_merchandise AND NOT EXISTS (
                SELECT 1 FROM recommendations_purchase s
                WHERE s.product_id = p.id AND s.kind = 'sale' AND s.occurred_at < %s
            )
            ORDER BY p.id
            """,
            [cutoff],
        )
        unavailable = [row[0] for row in cur.fetchall()]
    run = ReplayRun.objects.create(
        cutoff=cutoff,
        horizon_days=horizon_days,
        control_share=control_share(),
        recommender=choice.recommender,
        version=replay_version(choice),
        params={
            "top_n": settings.ELM_RECOMMENDATIONS_PER_CUSTOMER,
            "exclude_days": settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS,
            "half_life_days": settings.ELM_RECENCY_HALF_LIFE_DAYS,
            "chosen_by": choice.source,
            "model_params": choice.params,
            "unavailable_product_ids": unavailable,
        },
        job=job,
    )
    if choice.recommender == production.HYBRID:
        served = hybrid_fit_before(cutoff=cutoff, params=choice.params, version=run.version)
        served.save(model_dir(run.pk))
        run.params = {**run.params, "fitted_on": served.meta}
        run.save(update_fields=["params"])
    _prune_model_dirs()
    return run


# --------------------------------------------------------------------------- the hybrid at the cutoff


def model_dir(run_id: int) -> Path:
    """Return where a replay keeps its fitted hybrid while its shards run."""
    return Path(settings.VAR_DIR) / "models" / "replay" / f"run-{run_id}"


def _prune_model_dirs() -> None:
    """Remove the fitted models of replays that are not running any more."""
    root = model_dir(0).parent
    if not root.exists():
        return
    running = {
        f"run-{pk}" for pk in ReplayRun.objects.filter(status=ReplayRun.Status.RUNNING).values_list("pk", flat=True)
    }
    for directory in root.iterdir():
        if directory.is_dir() and directory.name not in running:
            shutil.rmtree(directory, ignore_errors=True)


def hybrid_fit_before(*, cutoff: datetime, params: dict, version: str):
    """Fit the production hybrid on the sale lines before the cutoff (as of the cutoff); return it frozen."""
    import pandas as pd

    from recommendations.evaluation.data import embeddings_from_db, interactions_from_db
    from recommendations.evaluation.hybrid import HybridRecommender
    from recommendations.evaluation.served import ServedHybrid
    from recommendations.evaluation.training import TrainingData

    # The evaluation's interactions are in naive local time, like its cutoffs.
    as_of = pd.Timestamp(timezone.localtime(cutoff).replace(tzinfo=None))
    interactions = interactions_from_db()
    train = interactions.loc[interactions["occurred_at"] < as_of]
    if train.empty:
        raise ReplayNotPossible(f"no sale lines before the cutoff {cutoff:%Y-%m-%d} to fit the recommender on")
    data = TrainingData.from_interactions(train, as_of=as_of, embeddings=embeddings_from_db())
    model = HybridRecommender(**dict(params)).fit(data)
    meta = {"as_of": as_of.isoformat(), "lines": len(train), "customers": len(data.customers), "items": data.n_items}
    return ServedHybrid.from_model(model, version=version, meta=meta)


_served_lock = threading.Lock()
_served: dict[int, object] = {}


def _served_for(run: ReplayRun):
    """Return the run's fitted hybrid, loaded once per process (one at a time: each is ~100 MB)."""
    from recommendations.evaluation.served import ServedHybrid

    with _served_lock:
        if run.pk not in _served:
            _served.clear()
            _served[run.pk] = ServedHybrid.load(model_dir(run.pk))
        return _served[run.pk]


def replay_customer_ids(*, cutoff: datetime) -> list[int]:
    """Return the customers with at least one sale before the cutoff (those the replay can profile)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT DISTINCT customer_id FROM recommendations_purchase
            WHERE customer_id IS NOT NULL AND kind = 'sale' AND occurred_at < %s
            ORDER BY customer_id
            """,
            [cutoff],
        )
        return [row[0] for row in cur.fetchall()]


def _sales_between(customer_ids: Sequence[int], start: datetime, end: datetime) -> dict[tuple[int, int], datetime]:
    """Return {(customer, product): first sale time} for sales in [start, end)."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT customer_id, product_id, MIN(occurred_at) FROM recommendations_purchase
            WHERE customer_id = ANY(%s) AND kind = 'sale' AND occurred_at >= %s AND occurred_at < %s
            GROUP BY customer_id, product_id
            """,
            [list(customer_ids), start, end],
        )
        return {(c, p): t for c, p, t in cur.fetchall()}


def replay_compute(*, run_id: int, customer_ids: Sequence[int]) -> int:
    """Write the replayed top-N and its real outcome for each customer; re-running replaces the rows."""
    run = ReplayRun.objects.get(pk=run_id)
    cutoff = run.cutoff
    top = recommend.recommend_as_of(
        cutoff=cutoff,
        customer_ids=customer_ids,
        top_n=int(run.params["top_n"]),
        exclude_days=int(run.params["exclude_days"]),
        half_life_days=float(run.params["half_life_days"]),
        served=_served_for(run) if run.recommender == production.HYBRID else None,
        unavailable=run.params.get("unavailable_product_ids", []),
    )
    future = _sales_between(customer_ids, cutoff, cutoff + timedelta(days=run.horizon_days))
    rows = [
        ReplayRecommendation(
            run_id=run_id,
            customer_id=cid,
            product_id=pid,
            rank=rank,
            score=score,
            arm=ab_arm_for(customer_id=cid, product_id=pid, control_share=run.control_share),
            won=(cid, pid) in future,
            won_at=future.get((cid, pid)),
        )
        for cid, hits in top.items()
        for rank, (pid, score) in enumerate(hits, start=1)
    ]
    # Re-order or new as of the cutoff: what the customer had bought strictly before it.
    reorder_apply(rows, reference=cutoff - timedelta(microseconds=1))
    with transaction.atomic():
        ReplayRecommendation.objects.filter(run_id=run_id, customer_id__in=customer_ids).delete()
        ReplayRecommendation.objects.bulk_create(rows, batch_size=2000)
    return len(customer_ids)


def replay_run_finish(*, run_id: int) -> ReplayRun:
    """Store the run's totals, mark it succeeded and drop the rows of all but the newest runs."""
    with transaction.atomic():
        run = ReplayRun.objects.select_for_update().get(pk=run_id)
        if run.status == ReplayRun.Status.SUCCEEDED:
            return run
        totals = run.rows.aggregate(
            recommendations=Count("id"), customers=Count("customer_id", distinct=True), won=Count("id", Q(won=True))
        )
        run.recommendations, run.customers, run.won = totals["recommendations"], totals["customers"], totals["won"]
        run.succeed()
        run.save(update_fields=["recommendations", "customers", "won", "status", "finished_at"])
        keep = ReplayRun.objects.filter(status=ReplayRun.Status.SUCCEEDED).order_by("-created_at")[:KEEP_RUNS]
        ReplayRun.objects.exclude(pk__in=list(keep.values_list("pk", flat=True))).exclude(
            status=ReplayRun.Status.RUNNING
        ).delete()
    shutil.rmtree(model_dir(run_id), ignore_errors=True)
    return run


def replay_run_fail(*, run_id: int) -> None:
    """Mark a running replay failed (a finished one stays as it is)."""
    with transaction.atomic():
        run = ReplayRun.objects.select_for_update().get(pk=run_id)
        if run.status == ReplayRun.Status.RUNNING:
            run.fail()
            run.save(update_fields=["status", "finished_at"])
