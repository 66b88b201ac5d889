"""Reads of outcomes and exposures for the pages and the API."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import Exists, OuterRef, QuerySet
from django.db.models.functions import Coalesce

from accounts.selectors import customer_queryset_for
from core.permissions import UserLike
from outcomes.models import Exposure, Outcome
from outcomes.services import ab_arm_for
from recommendations.models import Recommendation
from recommendations.selectors import outer_customer_recommendations, per_customer_count


def control_recommendation_ids(*, recommendations: Sequence[Recommendation]) -> set[int]:
    """Return the ids of the recommendations in the A/B control arm, without writing anything.

    Uses the stored arm when ``select_related("exposure")`` loaded it, else the deterministic
    assignment it will get (``outcomes.services.ab_arm_for``); one query at most.
    """
    if not recommendations:
        return set()
    if all(Recommendation.exposure.is_cached(r) for r in recommendations):
        stored = {r.pk: r.exposure.arm for r in recommendations if getattr(r, "exposure", None) is not None}
    else:
        ids = [r.pk for r in recommendations]
        stored = dict(Exposure.objects.filter(recommendation_id__in=ids).values_list("recommendation_id", "arm"))
    return {
        r.pk
        for r in recommendations
        if stored.get(r.pk, ab_arm_for(customer_id=r.customer_id, product_id=r.product_id)) == Exposure.Arm.CONTROL
    }


def outcomes_by_recommendation(*, recommendations: Sequence[Recommendation]) -> dict[int, list[Outcome]]:
    """Return each recommendation's outcomes, newest first, keyed by recommendation id (one query)."""
    ids = [r.pk for r in recommendations]
    result: dict[int, list[Outcome]] = {pk: [] for pk in ids}
    if not ids:
        return result
    rows = Outcome.objects.filter(recommendation_id__in=ids).select_related("user").order_by("-created_at", "-pk")
    for outcome in rows:
        result[outcome.recommendation_id].append(outcome)
    return result


def outcome_list(*, user: UserLike, customer_id: int | None = None) -> QuerySet[Outcome]:
    """Return the outcomes of the customers ``user`` may see, newest first."""
    qs = Outcome.objects.filter(customer__in=customer_queryset_for(user))
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    return qs.select_related("customer", "product", "user").defer("product__embedding", "customer__embedding")


def open_recommendations() -> QuerySet[Recommendation]:
    """Return the outer customer's open recommendations: active, and no closing outcome for the pair yet.

    Closing outcomes are won, lost and not relevant (pitched stays open). They are matched on the
    customer-product pair, so a product closed yesterday stays closed when tonight's batch
    recommends it again. For subqueries of a customer query (the customer list's filter and count).
    """
    closed = Outcome.objects.filter(
        customer_id=OuterRef("customer_id"), product_id=OuterRef("product_id"), kind__in=Outcome.CLOSING_KINDS
    )
    return outer_customer_recommendations().exclude(Exists(closed))


def open_recommendation_count() -> Coalesce:
    """Return an expression counting each customer's open recommendations (see ``open_recommendations``)."""
    return per_customer_count(open_recommendations())
