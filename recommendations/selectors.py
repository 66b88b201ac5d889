"""Read access to purchases, active recommendations and imports, in this app's own terms.

Customer scoping lives in ``accounts.selectors.customer_queryset_for`` (a layer above): the reads
here take a customer that a scoped read already returned, or build subquery expressions that the
apps above combine with it (the customer list's counts).
"""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from core.permissions import UserLike
from recommendations.models import Customer, ImportRun, Purchase, Recommendation, RecommendationBatch

RECENT_PURCHASES_DEFAULT = 20
RECENT_PURCHASES_MAX = 100


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


def active_recommendations(*, customer: Customer) -> QuerySet[Recommendation]:
    """Return the customer's recommendations from the active batch, best rank first, with product and batch.

    Recommendations of running, superseded or failed batches are never returned. ``customer`` must
    come from a scoped read (``accounts.selectors.customer_get``).
    """
    return (
        Recommendation.objects.filter(customer=customer, batch__status=RecommendationBatch.Status.ACTIVE)
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


def calibration_latest(*, recommender: str | None):
    """Return the newest confidence calibration of ``recommender``'s scores (any when None), or None."""
    from explanations.models import ConfidenceCalibration

    qs = ConfidenceCalibration.objects.order_by("-created_at")
    return (qs.filter(recommender=recommender) if recommender else qs).first()


def active_recommendation_batch() -> RecommendationBatch | None:
    return RecommendationBatch.objects.filter(status=RecommendationBatch.Status.ACTIVE).first()
