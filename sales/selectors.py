"""Reads of the sales pages and API: the customer list, one customer, their active recommendations.

Built on the apps below: scoping from ``accounts.selectors`` (every read starts from
``customer_queryset_for``), counts from recommendations (active), explanations (explained) and
outcomes (open), concept scores from explanations. Never writes, never sends tasks.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from django.db.models import Exists, F, QuerySet
from django.utils import timezone
from django.utils.translation import gettext

# Through the module: every read below looks the scoping hook up at call time (one hook for all).
from accounts import selectors as scoping
from core.permissions import UserLike
from explanations.selectors import concepts_with_facts, customer_concept_scores, explained_recommendation_count
from jobs.models import Job
from outcomes.selectors import open_recommendation_count, open_recommendations
from recommendations.models import Customer, Recommendation, RecommendationBatch
from recommendations.selectors import active_recommendation_count, active_recommendations

EXPLAIN_JOB_KIND = "explain"

# Public ordering keys (what clients send) -> model field. A leading "-" sorts descending.
CUSTOMER_ORDERING_FIELDS = {
    "last_purchase_at": "last_purchase_at",
    "revenue": "revenue",
    "order_count": "order_count",
    "open_count": "open_count",
}
CUSTOMER_ORDERINGS = tuple(f"{sign}{key}" for key in CUSTOMER_ORDERING_FIELDS for sign in ("", "-"))
DEFAULT_CUSTOMER_ORDERING = "-last_purchase_at"

PSEUDONYM_SEARCH_MAX_LENGTH = 64
_PSEUDONYM_PREFIX_RE = re.compile(r"[0-9a-f]*")


class InvalidCustomerQuery(ValueError):
    """A filter, search or ordering value that the customer list does not accept."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def normalize_pseudonym_search(raw: str | None) -> str | None:
    """Return the lower-cased pseudonym prefix, or raise InvalidCustomerQuery if it cannot match."""
    if raw is None:
        return None
    text = raw.strip().lower()
    if not text:
        return None
    if len(text) > PSEUDONYM_SEARCH_MAX_LENGTH:
        raise InvalidCustomerQuery(
            "pseudonym", gettext("At most %(max)d characters.") % {"max": PSEUDONYM_SEARCH_MAX_LENGTH}
        )
    if not _PSEUDONYM_PREFIX_RE.fullmatch(text):
        raise InvalidCustomerQuery("pseudonym", gettext("Pseudonyms contain only the characters 0-9 and a-f."))
    return text


def validate_customer_ordering(raw: str | None) -> str:
    """Return ``raw`` if it is an allowed ordering (default when empty), else raise InvalidCustomerQuery."""
    if raw is None or not raw.strip():
        return DEFAULT_CUSTOMER_ORDERING
    value = raw.strip()
    if value not in CUSTOMER_ORDERINGS:
        raise InvalidCustomerQuery(
            "ordering",
            gettext("Unknown ordering; use one of: %(allowed)s.") % {"allowed": ", ".join(CUSTOMER_ORDERINGS)},
        )
    return value


def customer_list(
    *,
    user: UserLike,
    region: str | None = None,
    search: str | None = None,
    ordering: str | None = None,
    last_purchase_from: date | None = None,
    last_purchase_to: date | None = None,
    has_open: bool | None = None,
) -> QuerySet[Customer]:
    """Return the customers ``user`` may see, filtered, searched by pseudonym prefix and ordered.

    Each customer carries ``recommendation_count`` (recommendations in the active batch),
    ``explained_count`` (those of them with a generated explanation) and ``open_count`` (those
    without a closing outcome). ``last_purchase_from``/``_to`` are inclusive local dates;
    ``has_open`` keeps customers with (True) or without (False) open recommendations. Raises
    InvalidCustomerQuery for a search or ordering that is not allowed.
    """
    search = normalize_pseudonym_search(search)
    ordering = validate_customer_ordering(ordering)
    qs = scoping.customer_queryset_for(user).defer("embedding")
    if region:
        qs = qs.filter(region=region)
    if search:
        qs = qs.filter(pseudonym__startswith=search)
    if last_purchase_from:
        qs = qs.filter(last_purchase_at__gte=_local_midnight(last_purchase_from))
    if last_purchase_to:
        qs = qs.filter(last_purchase_at__lt=_local_midnight(last_purchase_to + timedelta(days=1)))
    if has_open is not None:
        open_exists = Exists(open_recommendations())
        qs = qs.filter(open_exists if has_open else ~open_exists)
    field = CUSTOMER_ORDERING_FIELDS[ordering.lstrip("-")]
    # Customers without purchases sort last either way; pseudonym makes pages stable.
    order = F(field).desc(nulls_last=True) if ordering.startswith("-") else F(field).asc(nulls_last=True)
    return qs.annotate(
        recommendation_count=active_recommendation_count(),
        explained_count=explained_recommendation_count(),
        open_count=open_recommendation_count(),
    ).order_by(order, "pseudonym")


def _local_midnight(day: date) -> datetime:
    """Return the start of ``day`` in the site's time zone (the dates users pick are local)."""
    return timezone.make_aware(datetime.combine(day, time.min))


def customer_get(*, user: UserLike, pseudonym: str, with_concepts: bool = False) -> Customer:
    """Return the customer with ``pseudonym`` if ``user`` may see it; raise Customer.DoesNotExist otherwise.

    The customer carries ``recommendation_count`` and ``explained_count``; with ``with_concepts``
    also ``concept_scores``: its usable, active concepts as ``[{name, description, rule, threshold, score, low,
    high, as_fact}]`` (90% interval), highest score first; ``as_fact`` is False when its own orders contradict
    the concept's rule. One query (one more when a concept's rule can be checked on the customer's orders).
    """
    annotations = {
        "recommendation_count": active_recommendation_count(),
        "explained_count": explained_recommendation_count(),
    }
    if with_concepts:
        annotations["concept_scores"] = customer_concept_scores()
    customer = scoping.customer_get(user=user, pseudonym=pseudonym, annotate=annotations)
    if with_concepts:
        # A chip that states a fact ("no order in the last 90 days") must agree with the customer's orders.
        customer.concept_scores = concepts_with_facts(customer_id=customer.pk, concepts=customer.concept_scores or [])
    return customer


def recommendations_for_customer(*, user: UserLike, customer: Customer) -> list[Recommendation]:
    """Return the customer's recommendations from the active batch, best rank first (one query).

    Each comes with its product, batch, explanation and A/B exposure loaded: ``explanation_or_none(rec)``
    reads the explanation without another query. ``customer`` must come from ``customer_get`` (which
    applied the user's scope).
    """
    return list(
        active_recommendations(customer=customer).select_related("explanation", "exposure").defer("explanation__error")
    )


def explanation_or_none(recommendation: Recommendation):
    """Return the recommendation's explanation, or None when none has been generated yet."""
    # The reverse one-to-one raises RelatedObjectDoesNotExist (an AttributeError) when missing;
    # after select_related("explanation") neither case queries again.
    return getattr(recommendation, "explanation", None)


def explain_job_running(*, user: UserLike) -> Job | None:
    """Return the newest running explain job (for a progress note), or None."""
    return (
        Job.objects.filter(kind=EXPLAIN_JOB_KIND, status=Job.Status.RUNNING)
        .only("id", "kind", "status", "items_done", "items_total", "shards_done", "shards_total", "created_at")
        .order_by("-created_at")
        .first()
    )


def recommendation_for_outcome(*, user: UserLike, pseudonym: str, recommendation_id: int) -> Recommendation:
    """Return a recommendation of a customer ``user`` may see that was shown to sales (active or superseded).

    Raises Customer.DoesNotExist for a customer outside the user's scope, Recommendation.DoesNotExist
    for a recommendation that is not the customer's or was never shown (running or failed batch).
    """
    customer = scoping.customer_get(user=user, pseudonym=pseudonym)
    return (
        Recommendation.objects.filter(
            pk=recommendation_id,
            customer=customer,
            batch__status__in=[RecommendationBatch.Status.ACTIVE, RecommendationBatch.Status.SUPERSEDED],
        )
        .select_related("batch", "product", "customer")
        .defer("product__embedding", "customer__embedding")
        .get()
    )
