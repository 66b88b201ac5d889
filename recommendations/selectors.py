"""Read access to purchases, active recommendations and imports, in this app's own terms.

Customer scoping lives in ``accounts.selectors.customer_queryset_for`` (a layer above): the reads
here take a customer that a scoped read already returned, or build subquery expressions that the
apps above combine with it (the customer list's counts).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from core.permissions import UserLike
from recommendations.models import Customer, ImportRun, Purchase, Recommendation, RecommendationBatch

RECENT_PURCHASES_DEFAULT = 20
RECENT_PURCHASES_MAX = 100
# Re-order or new: the two kinds of recommendation sales filter by (``?kind=`` on the page and the API).
REORDER = "reorder"
NEW = "new"
RECOMMENDATION_KINDS = (REORDER, NEW)


def recommendation_kind(recommendation: Recommendation) -> str:
    """Return REORDER when the customer bought the product before the batch, else NEW."""
    return REORDER if recommendation.times_bought > 0 else NEW


def recommendations_of_kind(recommendations: QuerySet[Recommendation], kind: str | None) -> QuerySet[Recommendation]:
    """Keep only re-orders or only new products (``kind`` None or empty: all)."""
    if not kind:
        return recommendations
    if kind not in RECOMMENDATION_KINDS:
        raise ValueError(f"unknown recommendation kind {kind!r}")
    return recommendations.filter(times_bought__gt=0) if kind == REORDER else recommendations.filter(times_bought=0)


def outer_customer_recommendations() -> QuerySet[Recommendation]:
    """Return the active-batch recommendations of the outer query's customer (for subqueries)."""
    return Recommendation.objects.filter(customer=OuterRef("pk"), batch__status=RecommendationBatch.Status.ACTIVE)


def per_customer_count(recommendations: QuerySet[Recommendation]) -> Coalesce:
    """Return an expression counting ``recommendations`` per outer customer (0 when there are none)."""
    # A correlated subquery is evaluated only for the rows of the page, unlike a JOIN + GROUP BY
    # over every customer's recommendations.
    per_customer = recommendations.order_by().values("customer").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(per_customer, output_field=IntegerField()), Value(0))


def active_recommendation_count() -> Coalesce:
    """Return an expression counting each customer's recommendations in the active batch."""
    return per_customer_count(outer_customer_recommendations())


def active_recommendations(*, customer: Customer, kind: str | None = None) -> QuerySet[Recommendation]:
    """Return the customer's recommendations from the active batch, best rank first, with product and batch.

    Recommendations of running, superseded or failed batches are never returned. ``customer`` must
    come from a scoped read (``accounts.selectors.customer_get``). ``kind``: only re-orders or only new.
    """
    active = Recommendation.objects.filter(customer=customer, batch__status=RecommendationBatch.Status.ACTIVE)
    return (
        recommendations_of_kind(active, kind)
        .select_related("product", "batch")
        .defer("product__embedding")
        .order_by("rank")
    )


def customer_recent_purchases(
    *, user: UserLike, customer: Customer, limit: int = RECENT_PURCHASES_DEFAULT
) -> list[Purchase]:
    """Return the customer's latest purchase lines, newest first, with their products (one query).

    ``customer`` must come from a scoped read (``accounts.selectors.customer_get``).
    """
    limit = max(1, min(int(limit), RECENT_PURCHASES_MAX))
    return list(
        Purchase.objects.filter(customer=customer)
        .select_related("product")
        .defer("product__embedding")
        .order_by("-occurred_at", "-pk")[:limit]
    )


def import_run_list(*, user: UserLike) -> QuerySet[ImportRun]:
    """Return every import run, newest first."""
    return ImportRun.objects.order_by("-started_at", "-pk")


def import_run_get(*, user: UserLike, import_run_id: int) -> ImportRun:
    """Return one import run; raise ImportRun.DoesNotExist if there is none with that id."""
    return ImportRun.objects.get(pk=import_run_id)


def import_run_rejected_rows_path(*, import_run: ImportRun) -> Path | None:
    """Return the existing rejected-rows file of ``import_run`` under MEDIA_ROOT, or None."""
    if not import_run.rejected_rows_file:
        return None
    media_root = Path(settings.MEDIA_ROOT).resolve()
    path = (media_root / import_run.rejected_rows_file).resolve()
    # The stored name is data, not trusted: never serve anything outside MEDIA_ROOT.
    if not path.is_relative_to(media_root) or not path.is_file():
        return None
    return path


# --------------------------------------------------------------------------- quality (offline evaluation, segments)


def evaluation_run_latest(*, include_reduced: bool = False):
    """Return the newest succeeded evaluation run (full runs only unless ``include_reduced``), or None."""
    from recommendations.models import EvaluationRun

    qs = EvaluationRun.objects.filter(status=EvaluationRun.Status.SUCCEEDED)
    if not include_reduced:
        qs = qs.filter(reduced=False)
    return qs.order_by("-created_at").first()


def segment_run_latest():
    """Return the newest succeeded segmentation with its segments prefetched, or None."""
    from recommendations.models import SegmentRun

    return (
        SegmentRun.objects.filter(status=SegmentRun.Status.SUCCEEDED)
        .prefetch_related("segments")
        .order_by("-created_at")
        .first()
    )


def active_recommendation_batch() -> RecommendationBatch | None:
    return RecommendationBatch.objects.filter(status=RecommendationBatch.Status.ACTIVE).first()


# --------------------------------------------------------------------------- freshness (job plans reuse results)


def latest_embedding_change() -> datetime | None:
    """Return when any customer or product vector last changed (None if never)."""
    from django.db.models import Max

    from recommendations.models import Product

    times = [
        Customer.objects.aggregate(t=Max("embedded_at"))["t"],
        Product.objects.aggregate(t=Max("embedded_at"))["t"],
    ]
    times = [t for t in times if t]
    return max(times) if times else None


def fitted_after_vectors_changed(fitted_at: datetime | None) -> bool:
    """Whether something fitted at ``fitted_at`` is newer than every vector (so it can be reused)."""
    changed = latest_embedding_change()
    return bool(fitted_at and changed and fitted_at > changed)


def recommendation_batch_reusable(*, encoder_version: str) -> RecommendationBatch | None:
    """Return the active batch if nothing it depends on changed since it was made (same data, same model)."""
    from recommendations.services.recommend import production_batch_version

    active = active_recommendation_batch()
    changed = latest_embedding_change()
    if active is None or changed is None or active.created_at < changed:
        return None
    expected = production_batch_version(encoder_version=encoder_version)
    return active if active.model_version == expected else None


def segment_run_reusable():
    """Return the newest succeeded segmentation if it is newer than the last vector change, else None."""
    latest = segment_run_latest()
    return latest if latest is not None and fitted_after_vectors_changed(latest.created_at) else None
