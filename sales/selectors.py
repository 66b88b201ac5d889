"""Reads of the sales pages and API: the customer list, one customer, their active recommendations.

Built on the apps below: scoping from ``accounts.selectors`` (every read starts from
``customer_queryset_for``), counts from recommendations (active), explanations (explained) and
outcomes (open), concept scores from explanations. Never writes, never sends tasks.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Exists, F, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.translation import gettext

# Through the module: every read below looks the scoping hook up at call time (one hook for all).
from accounts import selectors as scoping
from core.permissions import UserLike
from explanations.models import Concept, CustomerConcept, CustomerDescription, Explanation, LocalizedReason
from explanations.selectors import (
    concepts_with_facts,
    customer_concept_scores,
    explained_recommendation_count,
    localized_reasons_prefetch,
)
from jobs.models import Job
from outcomes.models import Exposure, Outcome
from outcomes.selectors import open_recommendation_count, open_recommendations
from recommendations.models import Customer, Product, Purchase, Recommendation, RecommendationBatch
from recommendations.selectors import RECENT_PURCHASES_DEFAULT, active_recommendation_count, active_recommendations

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


def customer_get(
    *,
    user: UserLike,
    pseudonym: str,
    with_concepts: bool = False,
    with_versions: bool = False,
    with_counts: bool = True,
) -> Customer:
    """Return the customer with ``pseudonym`` if ``user`` may see it; raise Customer.DoesNotExist otherwise.

    The customer carries ``recommendation_count`` and ``explained_count``; with ``with_concepts``
    also ``concept_scores``: its usable, active concepts as ``[{key, name, description, rule, threshold, score,
    low, high, as_fact}]`` (90% interval), highest score first; ``as_fact`` is False when its own orders
    contradict the concept's rule (one more query when a rule can be checked on the customer's orders); with
    ``with_versions`` also ``cards_version``, ``description_version``, ``purchases_version`` and
    ``outcomes_version`` (see ``cards_version``), the keys of what the customer page caches, and
    ``concepts_version``. Without ``with_counts`` the two counts are left out (a cached page has them; their
    expressions cost more to compile than the query takes). One query.
    """
    annotations = {}
    if with_counts:
        annotations["recommendation_count"] = active_recommendation_count()
        annotations["explained_count"] = explained_recommendation_count()
    if with_concepts:
        annotations["concept_scores"] = customer_concept_scores()
    if with_versions:
        annotations["cards_version"] = cards_version()
        annotations["description_version"] = description_version()
        annotations["purchases_version"] = purchases_version()
        annotations["outcomes_version"] = outcomes_version()
        annotations["concepts_version"] = concepts_version()
    customer = scoping.customer_get(user=user, pseudonym=pseudonym, annotate=annotations)
    if with_concepts:
        # A chip that states a fact ("no order in the last 90 days") must agree with the customer's orders.
        customer.concept_scores = concepts_with_facts(customer_id=customer.pk, concepts=customer.concept_scores or [])
    return customer


def customer_summary(*, customer: Customer) -> dict:
    """Return ``recommendation_count``, ``explained_count`` and ``concept_scores`` of a customer read with scope.

    Each concept carries ``as_fact`` (see ``customer_get``): a chip must not state a fact the orders contradict.
    """
    summary = (
        Customer.objects.filter(pk=customer.pk)
        .values("pk")
        .annotate(
            recommendation_count=active_recommendation_count(),
            explained_count=explained_recommendation_count(),
            concept_scores=customer_concept_scores(),
        )
        .get()
    )
    summary["concept_scores"] = concepts_with_facts(customer_id=customer.pk, concepts=summary["concept_scores"] or [])
    return summary


def _tables() -> dict[str, str]:
    models = {
        "customer": Customer,
        "recommendation": Recommendation,
        "batch": RecommendationBatch,
        "product": Product,
        "explanation": Explanation,
        "localized": LocalizedReason,
        "exposure": Exposure,
        "description": CustomerDescription,
        "purchase": Purchase,
        "outcome": Outcome,
        "user": get_user_model(),
        "customer_concept": CustomerConcept,
        "concept": Concept,
    }
    return {name: model._meta.db_table for name, model in models.items()}


def cards_version() -> RawSQL:
    """A digest of everything the customer's recommendation cards show (an expression on Customer).

    It changes whenever a card's content may: the active batch (a new batch activates), each
    recommendation (rank, score, product), the product's code and description, any column of the
    explanation (a reason approved, edited, withdrawn; confidence recalibrated; evidence redone),
    the stored A/B arm, and the customer's purchase totals (whether an item is bought again). The
    explanation row is digested whole, so a column added later is covered without touching this; so are
    its texts in the other languages (each reviewed on its own).
    Null when the customer has no active recommendations.
    """
    t = _tables()
    c = f'"{t["customer"]}"'  # the outer query's customer
    sql = f"""
        SELECT md5(string_agg(concat_ws('|', r.id, r.rank, r.score, b.id, b.params::text, p.stock_code,
                                        p.description, coalesce(x.arm, '-'), coalesce(md5(e::text), '-'),
                                        coalesce((SELECT md5(string_agg(l::text, ',' ORDER BY l.language))
                                                    FROM "{t["localized"]}" l WHERE l.explanation_id = e.id), '-')),
                              ',' ORDER BY r.rank, r.id)
                   || '|' || {c}.order_count || '|' || coalesce({c}.last_purchase_at::text, '-'))
          FROM "{t["recommendation"]}" r
          JOIN "{t["batch"]}" b ON b.id = r.batch_id AND b.status = %s
          JOIN "{t["product"]}" p ON p.id = r.product_id
          LEFT JOIN "{t["explanation"]}" e ON e.recommendation_id = r.id
          LEFT JOIN "{t["exposure"]}" x ON x.recommendation_id = r.id
         WHERE r.customer_id = {c}.id
    """  # noqa: S608 (table names from the models, the status a parameter)
    return RawSQL(sql, (RecommendationBatch.Status.ACTIVE,))  # noqa: S611 (no user input in the SQL)


def description_version() -> RawSQL:
    """A digest of the customer's description row (any column), or null when it has none."""
    t = _tables()
    sql = f'SELECT md5(d::text) FROM "{t["description"]}" d WHERE d.customer_id = "{t["customer"]}".id'  # noqa: S608
    return RawSQL(sql, ())  # noqa: S611 (no user input in the SQL)


def recommendations_for_customer(
    *, user: UserLike, customer: Customer, kind: str | None = None, language: str | None = None
) -> list[Recommendation]:
    """Return the customer's recommendations from the active batch, best rank first (one query).

    Each comes with its product, batch, explanation and A/B exposure loaded: ``explanation_or_none(rec)``
    reads the explanation without another query. ``customer`` must come from ``customer_get`` (which
    applied the user's scope). ``kind``: only re-orders ("reorder") or only new products ("new"). For a
    reader of another ``language`` than English, the explanations' texts in it are loaded too (one
    more query).
    """
    qs = (
        active_recommendations(customer=customer, kind=kind)
        .select_related("explanation", "exposure")
        .defer("explanation__error")
    )
    prefetch = localized_reasons_prefetch(language=language or settings.LANGUAGE_CODE, through="explanation__")
    return list(qs.prefetch_related(prefetch) if prefetch else qs)


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


def purchases_version() -> RawSQL:
    """A digest of the customer's recent purchase lines as the page lists them (rows and product names)."""
    t = _tables()
    sql = f"""
        SELECT md5(string_agg(concat_ws('|', md5(pu::text), p.stock_code, p.description), ','
                              ORDER BY pu.occurred_at DESC, pu.id DESC))
          FROM (SELECT * FROM "{t["purchase"]}" WHERE customer_id = "{t["customer"]}".id
                 ORDER BY occurred_at DESC, id DESC LIMIT %s) pu
          JOIN "{t["product"]}" p ON p.id = pu.product_id
    """  # noqa: S608 (table names from the models, the limit a parameter)
    return RawSQL(sql, (RECENT_PURCHASES_DEFAULT,))  # noqa: S611 (no user input in the SQL)


def outcomes_version() -> RawSQL:
    """A digest of the customer's recorded outcomes (every column) and the names of who recorded them."""
    t = _tables()
    sql = f"""
        SELECT md5(string_agg(concat_ws('|', md5(o::text), u.username), ',' ORDER BY o.id))
          FROM "{t["outcome"]}" o
          LEFT JOIN "{t["user"]}" u ON u.id = o.user_id
         WHERE o.customer_id = "{t["customer"]}".id
    """  # noqa: S608 (table names from the models)
    return RawSQL(sql, ())  # noqa: S611 (no user input in the SQL)


def concepts_version() -> RawSQL:
    """A digest of the customer's concept scores and of the concepts' names (in every language), descriptions
    and states."""
    t = _tables()
    sql = f"""
        SELECT md5(string_agg(concat_ws('|', cc.id, cc.score, cc.low, cc.high, k.name, k.description, k.name_ja,
                                        k.description_ja, k.usable, k.is_active), ',' ORDER BY cc.id))
          FROM "{t["customer_concept"]}" cc
          JOIN "{t["concept"]}" k ON k.id = cc.concept_id
         WHERE cc.customer_id = "{t["customer"]}".id
    """  # noqa: S608 (table names from the models)
    return RawSQL(sql, ())  # noqa: S611 (no user input in the SQL)
