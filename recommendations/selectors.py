"""Read access to customers, purchases, recommendations and imports: every view reads through here.

Scoping: ``customer_queryset_for(user)`` is the one place that decides which customers a user may
see. Every customer read below starts from it, so restricting sales users to their own accounts
later means changing that function only. Selectors take ``user`` as a keyword argument even where
it is not used yet, so call sites already pass it.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import Count, Exists, F, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce, JSONObject
from django.utils import timezone
from django.utils.translation import gettext

from accounts.selectors import assigned_customer_ids, privileged_membership
from core.permissions import ADMIN, MANAGER, REVIEWER, user_has_role
from explanations.models import CustomerConcept, Explanation
from jobs.models import Job
from outcomes.models import Outcome
from recommendations.models import Customer, ImportRun, Purchase, Recommendation, RecommendationBatch

UserLike = AbstractBaseUser | AnonymousUser

MANAGER_GROUP = "manager"
REVIEWER_GROUP = "reviewer"
# Groups whose members read unreviewed reasons and the automatic checks' flags.
REVIEW_GROUPS = frozenset({REVIEWER_GROUP, MANAGER_GROUP})
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
_PSEUDONYM_RE = re.compile(r"[0-9a-f]{1,64}")

RECENT_PURCHASES_DEFAULT = 20
RECENT_PURCHASES_MAX = 100


class InvalidCustomerQuery(ValueError):
    """A filter, search or ordering value that the customer list does not accept."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


def customer_queryset_for(user: UserLike) -> QuerySet[Customer]:
    """Return the customers ``user`` may see: the scoping hook for every customer read.

    Reviewers, managers and admins see every (pseudonymized) customer; everyone else (sales users,
    and signed-in users without a role) sees only the customers assigned to them in
    ``accounts.AccountAssignment``. Anonymous users see nothing. All selectors below start from
    this queryset, so the API, the pages, exports and search share one rule.
    """
    if not getattr(user, "is_authenticated", False):
        return Customer.objects.none()
    if user.is_superuser:
        return Customer.objects.all()
    assigned = Q(pk__in=assigned_customer_ids(user=user))
    roles = getattr(user, "_elm_roles", None)  # set by core.permissions.user_roles earlier in the request
    if roles is not None:
        privileged = user_has_role(user, REVIEWER, MANAGER, ADMIN)
        return Customer.objects.all() if privileged else Customer.objects.filter(assigned)
    # Decided inside the same SQL query (an uncorrelated EXISTS runs once): no extra round trip per request.
    return Customer.objects.filter(Q(Exists(privileged_membership(user=user))) | assigned)


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


def _active_recommendation_count(*, explained: bool = False) -> Coalesce:
    """Return an expression counting each customer's recommendations in the active batch.

    With ``explained`` only those with a generated explanation are counted.
    """
    # A correlated subquery is evaluated only for the rows of the page, unlike a JOIN + GROUP BY
    # over every customer's recommendations.
    active = Recommendation.objects.filter(customer=OuterRef("pk"), batch__status=RecommendationBatch.Status.ACTIVE)
    if explained:
        # Explained: an explanation exists and did not fail (whatever its review state).
        active = active.filter(explanation__isnull=False).exclude(explanation__status=Explanation.Status.FAILED)
    per_customer = active.order_by().values("customer").annotate(n=Count("pk")).values("n")
    return Coalesce(Subquery(per_customer, output_field=IntegerField()), Value(0))


def _open_recommendations() -> QuerySet[Recommendation]:
    """Return the outer customer's open recommendations: active, and no closing outcome for the pair yet.

    Closing outcomes are won, lost and not relevant (pitched stays open). They are matched on the
    customer-product pair, so a product closed yesterday stays closed when tonight's batch
    recommends it again.
    """
    closed = Outcome.objects.filter(
        customer_id=OuterRef("customer_id"), product_id=OuterRef("product_id"), kind__in=Outcome.CLOSING_KINDS
    )
    return Recommendation.objects.filter(
        customer=OuterRef("pk"), batch__status=RecommendationBatch.Status.ACTIVE
    ).exclude(Exists(closed))


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
    qs = customer_queryset_for(user).defer("embedding")
    if region:
        qs = qs.filter(region=region)
    if search:
        qs = qs.filter(pseudonym__startswith=search)
    if last_purchase_from:
        qs = qs.filter(last_purchase_at__gte=_local_midnight(last_purchase_from))
    if last_purchase_to:
        qs = qs.filter(last_purchase_at__lt=_local_midnight(last_purchase_to + timedelta(days=1)))
    if has_open is not None:
        open_exists = Exists(_open_recommendations())
        qs = qs.filter(open_exists if has_open else ~open_exists)
    field = CUSTOMER_ORDERING_FIELDS[ordering.lstrip("-")]
    # Customers without purchases sort last either way; pseudonym makes pages stable.
    order = F(field).desc(nulls_last=True) if ordering.startswith("-") else F(field).asc(nulls_last=True)
    open_per_customer = _open_recommendations().order_by().values("customer").annotate(n=Count("pk")).values("n")
    return qs.annotate(
        recommendation_count=_active_recommendation_count(),
        explained_count=_active_recommendation_count(explained=True),
        open_count=Coalesce(Subquery(open_per_customer, output_field=IntegerField()), Value(0)),
    ).order_by(order, "pseudonym")


def _local_midnight(day: date) -> datetime:
    """Return the start of ``day`` in the site's time zone (the dates users pick are local)."""
    return timezone.make_aware(datetime.combine(day, time.min))


def customer_region_choices(*, user: UserLike) -> list[str]:
    """Return the distinct regions of the customers ``user`` may see, sorted."""
    return list(customer_queryset_for(user).order_by("region").values_list("region", flat=True).distinct())


def _usable_concept_scores() -> ArraySubquery:
    """Return an expression listing the customer's usable concept scores, highest first."""
    scores = (
        CustomerConcept.objects.filter(customer=OuterRef("pk"), concept__usable=True, concept__is_active=True)
        .order_by("-score", "concept__name")
        .values(
            json=JSONObject(
                name="concept__name",
                description="concept__description",
                score="score",
                low="low",
                high="high",
            )
        )
    )
    return ArraySubquery(scores)


def customer_get(*, user: UserLike, pseudonym: str, with_concepts: bool = False) -> Customer:
    """Return the customer with ``pseudonym`` if ``user`` may see it; raise Customer.DoesNotExist otherwise.

    With ``with_concepts`` the customer carries ``concept_scores``: its usable, active concepts as
    ``[{name, description, score, low, high}]`` (90% interval), highest score first, fetched in the
    same query.
    """
    normalized = pseudonym.strip().lower()
    # Pseudonyms are hex digests; anything else (NUL bytes, 10 kB strings) cannot exist, and must
    # not reach the database as a query parameter.
    if not _PSEUDONYM_RE.fullmatch(normalized):
        raise Customer.DoesNotExist(f"no customer with pseudonym {pseudonym[:80]!r}")
    qs = (
        customer_queryset_for(user)
        .defer("embedding")
        .annotate(
            recommendation_count=_active_recommendation_count(),
            explained_count=_active_recommendation_count(explained=True),
        )
    )
    if with_concepts:
        qs = qs.annotate(concept_scores=_usable_concept_scores())
    return qs.get(pseudonym=normalized)


def customer_recent_purchases(
    *, user: UserLike, customer: Customer, limit: int = RECENT_PURCHASES_DEFAULT
) -> list[Purchase]:
    """Return the customer's latest purchase lines, newest first, with their products (one query).

    ``customer`` must come from ``customer_get`` (which applied the user's scope).
    """
    limit = max(1, min(int(limit), RECENT_PURCHASES_MAX))
    return list(
        Purchase.objects.filter(customer=customer)
        .select_related("product")
        .defer("product__embedding")
        .order_by("-occurred_at", "-pk")[:limit]
    )


def recommendations_for_customer(*, user: UserLike, customer: Customer) -> list[Recommendation]:
    """Return the customer's recommendations from the active batch, best rank first (one query).

    Each comes with its product, batch, explanation and A/B exposure loaded: ``explanation_or_none(rec)``
    reads the explanation without another query. ``customer`` must come from ``customer_get`` (which
    applied the user's scope). Recommendations of running, superseded or failed batches are never
    returned.
    """
    return list(
        Recommendation.objects.filter(customer=customer, batch__status=RecommendationBatch.Status.ACTIVE)
        .select_related("product", "batch", "explanation", "exposure")
        .defer("product__embedding", "explanation__error")
        .order_by("rank")
    )


def explanation_or_none(recommendation: Recommendation) -> Explanation | None:
    """Return the recommendation's explanation, or None when none has been generated yet."""
    # The reverse one-to-one raises RelatedObjectDoesNotExist (an AttributeError) when missing;
    # after select_related("explanation") neither case queries again.
    return getattr(recommendation, "explanation", None)


def explanation_concepts(explanation: Explanation) -> list[dict]:
    """Return the explanation's concepts, shared ones first (stable within each group)."""
    return sorted(explanation.concepts or [], key=lambda c: not c.get("shared"))


def explain_job_running(*, user: UserLike) -> Job | None:
    """Return the newest running explain job (for a progress note), or None."""
    return (
        Job.objects.filter(kind=EXPLAIN_JOB_KIND, status=Job.Status.RUNNING)
        .only("id", "kind", "status", "items_done", "items_total", "shards_done", "shards_total", "created_at")
        .order_by("-created_at")
        .first()
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


def _role_groups(user: UserLike) -> frozenset[str]:
    """Return which of the role groups (manager, reviewer) ``user`` belongs to, asking the database once."""
    # Cached on the user object so a list of import runs or recommendations asks once per request.
    cached = getattr(user, "_elm_role_groups", None)
    if cached is None:
        cached = frozenset(user.groups.filter(name__in=REVIEW_GROUPS).values_list("name", flat=True))
        user._elm_role_groups = cached
    return cached


def user_is_staff_or_manager(*, user: UserLike) -> bool:
    """Return whether ``user`` may see operational data such as rejected import rows."""
    if not getattr(user, "is_authenticated", False):
        return False
    if user.is_staff or user.is_superuser:
        return True
    # The roles cache is shared with the reason checks: one query per request for both.
    return user_has_role(user, MANAGER)


def user_is_reviewer(*, user: UserLike) -> bool:
    """Return whether ``user`` reads every reason and the checks' flags: reviewers, managers and admins.

    They see every reason whatever its review state, and the automatic checks' flags.
    """
    return user_has_role(user, REVIEWER, MANAGER, ADMIN)


def reason_visible_to(user: UserLike, explanation: Explanation) -> bool:
    """Return whether ``user`` may read the reason text of ``explanation``: the one place that decides.

    Reviewers, managers and admins always may; everyone else (sales, users without a role) only
    once a reviewer approved the text, and sees "reason under review" until then. Evidence,
    concepts, word attributions and confidence are never hidden by this.
    """
    if user_is_reviewer(user=user):
        return True
    return getattr(user, "is_authenticated", False) and explanation.status == Explanation.Status.APPROVED


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
