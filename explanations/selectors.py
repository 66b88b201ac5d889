"""Reads of the review workflow: the review queue, one explanation's history, the policy term list.

Every customer read starts from ``accounts.selectors.customer_queryset_for`` (the one scoping
hook), so the queue shows only explanations of customers the reviewer may see. The expressions at
the end (explained count, concept scores) are what the customer list and page add to a customer.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.db.models import BooleanField, Count, Exists, F, Max, OuterRef, Prefetch, Q, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, JSONObject, NullIf
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from accounts.selectors import customer_queryset_for
from core.permissions import UserLike
from explanations.checks import TermList
from explanations.models import (
    CONCEPT_TEXT_FIELDS,
    Concept,
    CustomerConcept,
    CustomerDescription,
    Explanation,
    LocalizedReason,
    PolicyTerm,
    ReasonVersion,
    ReviewEvent,
)
from explanations.review import LOCALIZED_ATTR
from recommendations.models import RecommendationBatch
from recommendations.selectors import outer_customer_recommendations, per_customer_count

# Queue filter on the flags: value -> (label, flag-code prefix or a special rule).
FLAG_FILTERS: dict[str, str] = {
    "any": _("Any flag"),
    "none": _("No flags"),
    "error": _("Any error (blocks bulk approval)"),
    "pii": _("Personal data"),
    "sensitive_attribute": _("Sensitive attribute"),
    "risky_claim": _("Risky claim"),
    "hallucinated_entity": _("Not in the evidence"),
    "too_long": _("Too long"),
    "template_fallback": _("Template reason used"),
}
_FLAG_PREFIXES = {
    "pii": "pii:",
    "sensitive_attribute": "sensitive_attribute:",
    "risky_claim": "risky_claim:",
    "hallucinated_entity": "hallucinated_entity",
    "too_long": "too_long",
    "template_fallback": "template_fallback",
}
QUEUE_STATUSES = (Explanation.Status.PENDING_REVIEW, Explanation.Status.CHANGES_REQUESTED)
QUEUE_SORTS = ("oldest", "newest")


@dataclass(frozen=True)
class ReviewQueueFilters:
    """What the queue page and the API filter on; None means "no restriction"."""

    status: str = Explanation.Status.PENDING_REVIEW
    flag: str | None = None
    confidence_min: float | None = None  # probabilities, 0..1
    confidence_max: float | None = None
    consistency_min: float | None = None  # cosine, -1..1
    consistency_max: float | None = None
    min_age_hours: float | None = None
    region: str | None = None
    sort: str = "oldest"


def sla_hours() -> float:
    """Return the review SLA in hours (setting ELM_REVIEW_SLA_HOURS)."""
    return float(getattr(settings, "ELM_REVIEW_SLA_HOURS", 48))


def _flag_condition(flag: str) -> Q | RawSQL:
    if flag == "none":
        return Q(flags=[])
    if flag == "any":
        return ~Q(flags=[])
    if flag == "error":
        return RawSQL(
            """jsonb_path_exists("explanations_explanation"."flags", '$[*] ? (@.severity == "error")')""",
            (),
            output_field=BooleanField(),
        )
    prefix = _FLAG_PREFIXES[flag]
    return RawSQL(
        """jsonb_path_exists("explanations_explanation"."flags", '$[*] ? (@.code starts with $p)',"""
        """ jsonb_build_object('p', %s::text))""",
        (prefix,),
        output_field=BooleanField(),
    )


# The texts in the other languages of the explanations a reviewer reads, with their editors.
_OTHER_LANGUAGES = Prefetch("localized_reasons", queryset=LocalizedReason.objects.select_related("reason_edited_by"))


def review_queue(*, user: UserLike, filters: ReviewQueueFilters | None = None) -> QuerySet[Explanation]:
    """Return the explanations waiting for review in the active batch, filtered and sorted by age.

    Each row comes with its recommendation, customer, product and the current text's editor
    loaded (one query per page). Raises ValueError for an unknown status, flag or sort.
    """
    filters = filters or ReviewQueueFilters()
    if filters.status not in QUEUE_STATUSES:
        raise ValueError(f"unknown queue status {filters.status!r}")
    if filters.sort not in QUEUE_SORTS:
        raise ValueError(f"unknown sort {filters.sort!r}")
    # Waiting in any language: the English text or one of the others (each is reviewed on its own).
    other_language = LocalizedReason.objects.filter(explanation=OuterRef("pk"), status=filters.status)
    qs = Explanation.objects.filter(
        Q(status=filters.status) | Exists(other_language),
        recommendation__batch__status=RecommendationBatch.Status.ACTIVE,
        recommendation__customer__in=customer_queryset_for(user),
    )
    if filters.flag:
        if filters.flag not in FLAG_FILTERS:
            raise ValueError(f"unknown flag filter {filters.flag!r}")
        qs = qs.filter(_flag_condition(filters.flag))
    for field, low, high in (
        ("confidence", filters.confidence_min, filters.confidence_max),
        ("consistency", filters.consistency_min, filters.consistency_max),
    ):
        if low is not None:
            qs = qs.filter(**{f"{field}__gte": low})
        if high is not None:
            qs = qs.filter(**{f"{field}__lte": high})
    if filters.min_age_hours is not None:
        qs = qs.filter(review_requested_at__lte=timezone.now() - timedelta(hours=filters.min_age_hours))
    if filters.region:
        qs = qs.filter(recommendation__customer__region=filters.region)
    age = F("review_requested_at")
    order = age.asc(nulls_first=True) if filters.sort == "oldest" else age.desc(nulls_last=True)
    return (
        qs.select_related("recommendation__customer", "recommendation__product", "reason_edited_by")
        .prefetch_related(_OTHER_LANGUAGES)
        .defer(
            "recommendation__customer__embedding",
            "recommendation__product__embedding",
            "word_attributions",
            "necessity",
            "error",
        )
        .order_by(order, "pk")
    )


def review_summary(*, user: UserLike) -> dict[str, int]:
    """Return {pending, overdue, changes_requested} counts of the active batch (one query)."""
    cutoff = timezone.now() - timedelta(hours=sla_hours())
    waiting = Q(status=Explanation.Status.PENDING_REVIEW)
    # An explanation counts while any of its texts waits (the queue lists it then), in any language.
    other = LocalizedReason.objects.filter(explanation=OuterRef("pk"), status=Explanation.Status.PENDING_REVIEW)
    pending = waiting | Exists(other)
    overdue = (waiting & Q(review_requested_at__lte=cutoff)) | Exists(other.filter(review_requested_at__lte=cutoff))
    return Explanation.objects.filter(
        recommendation__batch__status=RecommendationBatch.Status.ACTIVE,
        recommendation__customer__in=customer_queryset_for(user),
    ).aggregate(
        pending=Count("pk", filter=pending),
        overdue=Count("pk", filter=overdue),
        changes_requested=Count("pk", filter=Q(status=Explanation.Status.CHANGES_REQUESTED)),
    )


def review_explanation_get(*, user: UserLike, explanation_id: int) -> Explanation:
    """Return one explanation of a customer ``user`` may see; raise Explanation.DoesNotExist otherwise."""
    return (
        Explanation.objects.select_related(
            "recommendation__customer", "recommendation__product", "recommendation__batch", "reason_edited_by"
        )
        .prefetch_related(_OTHER_LANGUAGES)
        .defer("recommendation__customer__embedding", "recommendation__product__embedding")
        .get(pk=explanation_id, recommendation__customer__in=customer_queryset_for(user))
    )


def review_events(*, explanation: Explanation) -> list[ReviewEvent]:
    """Return the explanation's audit events, oldest first."""
    return list(ReviewEvent.objects.filter(explanation=explanation).order_by("created_at", "pk"))


def reason_versions(*, explanation: Explanation) -> list[ReasonVersion]:
    """Return every version of the explanation's reason text, the original first."""
    return list(ReasonVersion.objects.filter(explanation=explanation).order_by("number"))


# --------------------------------------------------------------------------- policy terms

_terms_lock = threading.Lock()
_terms_cache: dict[str, tuple[tuple, TermList]] = {}


def policy_term_list() -> TermList:
    """Return the active admin-edited policy terms as a compiled TermList (cached).

    The list is compiled once and reused while the table is unchanged: a save or delete in this
    process clears the cache (signal), and one cheap aggregate per call notices changes made by
    other processes (a web process saves in the admin, a worker checks texts).
    """
    state = PolicyTerm.objects.aggregate(n=Count("pk"), changed=Max("updated_at"))
    fingerprint = (state["n"], state["changed"])
    cached = _terms_cache.get("terms")
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    rows = PolicyTerm.objects.filter(is_active=True).values_list("category", "term", "is_regex")
    terms = TermList.build(list(rows), include_defaults=False)
    terms.compiled  # noqa: B018  (compile now, outside any request's hot path later)
    with _terms_lock:
        _terms_cache["terms"] = (fingerprint, terms)
    return terms


def policy_terms_invalidate(**kwargs) -> None:
    """Drop the cached term list (connected to PolicyTerm's post_save and post_delete)."""
    with _terms_lock:
        _terms_cache.clear()


def customer_description_for(*, user: UserLike, customer) -> tuple[CustomerDescription | None, bool]:
    """Return the customer's description and whether ``user`` may read its text.

    Reviewers, managers and admins read every text with its review state; sales read approved texts only.
    The customer must come from ``customer_queryset_for(user)`` (the caller's scoped read).
    """
    description = customer_description_get(customer=customer)
    return description, customer_description_readable(user=user, description=description)


def customer_description_get(*, customer) -> CustomerDescription | None:
    """Return the customer's description, or None (one query); who may read it: ``customer_description_readable``."""
    return CustomerDescription.objects.filter(customer=customer).first()


def customer_description_readable(*, user: UserLike, description: CustomerDescription | None) -> bool:
    """Return whether ``user`` may read the text of ``description`` (sales: approved texts only)."""
    from core.permissions import ADMIN, MANAGER, REVIEWER, user_has_role

    if description is None:
        return False
    if user_has_role(user, REVIEWER, MANAGER, ADMIN):
        return True
    return description.status == CustomerDescription.Status.APPROVED


# --------------------------------------------------------------------------- what the explanation jobs work on


def recommendations_to_explain(*, customers: int | None = None, ranks: int | None = None) -> list[int]:
    """Return ids of active-batch recommendations without an explanation (or a failed one), most active first."""
    from recommendations.models import Customer, Recommendation

    # Numbers first (explain_numbers writes them with the template reason), words later: a row with
    # numbers and no text yet still waits for its reason.
    words_pending = Q(explanation__status=Explanation.Status.GENERATED, explanation__reason_text="")
    qs = Recommendation.objects.filter(
        Q(explanation__isnull=True) | Q(explanation__status=Explanation.Status.FAILED) | words_pending,
        batch__status=RecommendationBatch.Status.ACTIVE,
    )
    if ranks:
        qs = qs.filter(rank__lte=ranks)
    qs = qs.order_by("-customer__order_count", "customer_id", "rank")
    if customers:
        most_active = Customer.objects.filter(embedding__isnull=False).order_by("-order_count", "id")
        qs = qs.filter(customer_id__in=list(most_active.values_list("id", flat=True)[:customers]))
    return list(qs.values_list("id", flat=True))


def recommendations_without_numbers() -> list[int]:
    """Return ids of active-batch recommendations whose numbers (evidence, confidence, words) are missing,
    by customer (a shard then loads each customer's purchases once)."""
    from recommendations.models import Recommendation

    return list(
        Recommendation.objects.filter(batch__status=RecommendationBatch.Status.ACTIVE)
        .exclude(explanation__versions__has_key="numbers")
        .order_by("customer_id", "rank")
        .values_list("id", flat=True)
    )


def concepts_current() -> bool:
    """Whether the concept vectors were trained after the last change of any customer or product vector."""
    from explanations.models import Concept
    from recommendations.selectors import fitted_after_vectors_changed

    return fitted_after_vectors_changed(Concept.objects.aggregate(t=Max("trained_at"))["t"])


def calibration_current() -> bool:
    """Whether the newest confidence calibration was fitted after the last change of any vector."""
    from explanations.models import ConfidenceCalibration
    from recommendations.selectors import fitted_after_vectors_changed

    return fitted_after_vectors_changed(ConfidenceCalibration.objects.aggregate(t=Max("created_at"))["t"])


def adapter_current_config() -> dict | None:
    """Return the config of the ELM adapter in use (read from disk, no torch), or None if there is none."""
    import json

    from explanations.ml.elm import adapter_root

    root = adapter_root()
    try:
        version = (root / "CURRENT").read_text().strip()
        return json.loads((root / version / "config.json").read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def adapter_is_reusable(config: dict | None, *, preset: str) -> bool:
    """Whether the adapter in use serves a request for ``preset``: same LM and encoder, and not a
    "quick" adapter when a fuller preset is asked for (the demo upgrades its quick one in the background)."""
    from explanations.ml.lm import lm_id
    from recommendations.ml.encoder import encoder_version

    if not config:
        return False
    if config.get("lm_id") != lm_id() or config.get("encoder_version") != encoder_version():
        return False
    return preset == "quick" or config.get("preset_name") != "quick"


def calibration_latest(*, recommender: str | None = None):
    """Return the newest confidence calibration of ``recommender``'s scores (any when None), or None.

    Scales differ by model, so a batch's confidence reads the calibration of its own recommender."""
    from explanations.models import ConfidenceCalibration

    qs = ConfidenceCalibration.objects.order_by("-created_at")
    return (qs.filter(recommender=recommender) if recommender else qs).first()


# --------------------------------------------------------------------------- customer annotations


def explained_recommendation_count() -> Coalesce:
    """Return an expression counting each customer's active-batch recommendations with an explanation.

    Explained: an explanation exists and did not fail (whatever its review state).
    """
    explained = outer_customer_recommendations().filter(explanation__isnull=False)
    return per_customer_count(explained.exclude(explanation__status=Explanation.Status.FAILED))


def _in_language(field: str, localized: str | None):
    """Return the concept text ``field`` in a language's own field, the English one where that is blank."""
    own = F(f"concept__{field}")
    return Coalesce(NullIf(F(f"concept__{localized}"), Value("")), own) if localized else own


def customer_concept_scores(*, language: str | None = None) -> ArraySubquery:
    """Return an expression listing the customer's usable, active concept scores, highest first.

    Each item is ``{key, name, description, rule, threshold, score, low, high}`` (90% interval), fetched in
    the customer's query: ``key`` is the concept's own (English) name, as explanations store it; ``name`` and
    ``description`` are in ``language`` (the active language by default) where an admin wrote them.
    """
    name_field, description_field = CONCEPT_TEXT_FIELDS.get(language or get_language(), (None, None))
    scores = (
        CustomerConcept.objects.filter(customer=OuterRef("pk"), concept__usable=True, concept__is_active=True)
        .order_by("-score", "concept__name")
        .values(
            json=JSONObject(
                key="concept__name",
                name=_in_language("name", name_field),
                description=_in_language("description", description_field),
                rule="concept__rule",
                threshold="concept__threshold",
                score="score",
                low="low",
                high="high",
            )
        )
    )
    return ArraySubquery(scores)


def concept_names(*, language: str) -> dict[str, str]:
    """Return concept name -> its name in ``language``, for the concepts an admin named in it (one query).

    Explanations store concepts by their own (English) name; pages in another language look them up
    here. English needs no lookup: the result is empty and no query is made.
    """
    field = CONCEPT_TEXT_FIELDS.get(language)
    if field is None:
        return {}
    return dict(Concept.objects.exclude(**{field[0]: ""}).values_list("name", field[0]))


def localized_reasons_prefetch(*, language: str, through: str = "") -> Prefetch | None:
    """Return the prefetch of the explanations' texts in ``language`` (None for English: nothing to load).

    ``through``: the path to the explanation ("explanation__" from a recommendation). The rows land in
    ``explanations.review.LOCALIZED_ATTR``, where ``reviewed_text_in`` reads them.
    """
    if language == settings.LANGUAGE_CODE:
        return None
    return Prefetch(
        f"{through}localized_reasons",
        queryset=LocalizedReason.objects.filter(language=language),
        to_attr=LOCALIZED_ATTR,
    )


def concepts_with_facts(*, customer_id: int, concepts: list[dict]) -> list[dict]:
    """Return the customer's concept scores (with their ``rule`` and ``threshold``), each with ``as_fact``:
    False when the customer's own figures contradict the concept's rule (a "lapsed" chip for a customer who
    ordered last week), so that the chip reads as a similarity to the concept's profile, which is what the
    score measures; True otherwise. One query for the customer's figures, only when a rule can be checked."""
    from explanations.services.concepts import ABSOLUTE_RULES, behaviour_stats, rule_holds

    checkable = [c for c in concepts if c.get("rule") in ABSOLUTE_RULES]
    stats = behaviour_stats([customer_id]) if checkable else None
    out = []
    for c in concepts:
        holds = None
        if stats is not None and len(stats.customer_ids) and c in checkable:
            holds = rule_holds(c["rule"], c.get("threshold") or 0.0, stats)
        out.append({**c, "as_fact": holds is not False})
    return out
