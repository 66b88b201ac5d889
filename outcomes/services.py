"""Writes: recording sales outcomes and assigning/logging A/B exposures of recommendations."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from datetime import datetime

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.selectors import customer_queryset_for
from core.permissions import SALES, UserLike, user_has_role
from outcomes.models import COMMENT_MAX_LENGTH, Exposure, Outcome
from recommendations.models import Recommendation, RecommendationBatch

# Batches whose recommendations were shown to sales (a running or failed batch never was).
_SHOWN_BATCH_STATUSES = (RecommendationBatch.Status.ACTIVE, RecommendationBatch.Status.SUPERSEDED)


def ab_arm_for(*, customer_id: int, product_id: int, control_share: float | None = None) -> str:
    """Return the A/B arm of a customer-product pair: a keyed hash compared with the control share.

    Keyed on the pair rather than the recommendation row, so a product recommended to the same
    customer again in the next nightly batch stays in its arm (the reason does not flicker).
    """
    share = settings.ELM_AB_CONTROL_SHARE if control_share is None else control_share
    digest = hashlib.sha256(f"{settings.ELM_AB_SALT}:{customer_id}:{product_id}".encode()).digest()
    bucket = int.from_bytes(digest[:8], "big") / 2**64  # uniform in [0, 1)
    return Exposure.Arm.CONTROL if bucket < share else Exposure.Arm.EXPLAINED


def exposures_for(*, recommendations: Sequence[Recommendation]) -> dict[int, Exposure]:
    """Return the exposure of each recommendation by id, assigning and storing missing ones.

    Uses exposures loaded with ``select_related("exposure")``; otherwise reads them in one query.
    Assigning the missing ones costs one INSERT.
    """
    if not recommendations:
        return {}
    preloaded = all(Recommendation.exposure.is_cached(r) for r in recommendations)
    if preloaded:
        found = {r.pk: r.exposure for r in recommendations if getattr(r, "exposure", None) is not None}
    else:
        ids = [r.pk for r in recommendations]
        found = {e.recommendation_id: e for e in Exposure.objects.filter(recommendation_id__in=ids)}
    missing = [
        Exposure(
            recommendation_id=r.pk,
            arm=ab_arm_for(customer_id=r.customer_id, product_id=r.product_id),
            assigned_at=timezone.now(),
        )
        for r in recommendations
        if r.pk not in found
    ]
    if missing:
        # ignore_conflicts: a concurrent request may assign the same rows first. The arm is a
        # function of the pair and the settings, so the row it stored carries the same arm.
        Exposure.objects.bulk_create(missing, ignore_conflicts=True)
        found.update({e.recommendation_id: e for e in missing})
    return found


def exposure_for(*, recommendation: Recommendation) -> Exposure:
    """Return the recommendation's exposure, assigning its A/B arm deterministically on first use."""
    return exposures_for(recommendations=[recommendation])[recommendation.pk]


def exposures_mark_shown(*, recommendations: Sequence[Recommendation]) -> dict[int, Exposure]:
    """Record that the recommendations were shown to a sales person now; return their exposures."""
    if not recommendations:
        return {}
    exposures = exposures_for(recommendations=recommendations)
    now = exposures_mark_shown_by_id(recommendation_ids=list(exposures))
    for exposure in exposures.values():
        exposure.first_shown_at = exposure.first_shown_at or now
        exposure.last_shown_at = now
        exposure.show_count += 1
    return exposures


def exposures_mark_shown_by_id(*, recommendation_ids: Sequence[int]) -> datetime:
    """Record that the recommendations, whose exposures exist, were shown to a sales person now (one UPDATE).

    For a page whose exposures were assigned when it was first rendered (its cards are cached);
    otherwise use ``exposures_mark_shown``, which assigns missing ones. Returns the time recorded.
    """
    now = timezone.now()
    # first_shown_at keeps the first time.
    Exposure.objects.filter(recommendation_id__in=list(recommendation_ids)).update(
        show_count=F("show_count") + 1, last_shown_at=now, first_shown_at=Coalesce(F("first_shown_at"), now)
    )
    return now


def _validate(*, kind: str, comment: str) -> str:
    if kind not in Outcome.Kind.values:
        raise ValidationError(
            {"kind": _("Unknown outcome; use one of: %(kinds)s.") % {"kinds": ", ".join(Outcome.Kind.values)}}
        )
    comment = (comment or "").strip()
    if len(comment) > COMMENT_MAX_LENGTH:
        raise ValidationError(
            {
                "comment": _("At most %(max)d characters (this one has %(n)d).")
                % {"max": COMMENT_MAX_LENGTH, "n": len(comment)}
            }
        )
    return comment


def outcome_record(
    *,
    user: UserLike,
    recommendation: Recommendation,
    kind: str,
    comment: str = "",
    client_token: uuid.UUID | str | None = None,
) -> Outcome:
    """Record what ``user`` did with ``recommendation``; a repeated ``client_token`` returns the first row.

    Only sales people record outcomes, and only for customers they may see. The A/B arm the
    recommendation was shown in is stored with the outcome (``explained``). Raises
    PermissionDenied or ValidationError.
    """
    comment = _validate(kind=kind, comment=comment)
    if not user_has_role(user, SALES):
        raise PermissionDenied(_("Only sales people record outcomes."))
    if not customer_queryset_for(user).filter(pk=recommendation.customer_id).exists():
        raise PermissionDenied(_("This customer is not in your accounts."))
    if recommendation.batch.status not in _SHOWN_BATCH_STATUSES:
        raise ValidationError(_("This recommendation was never shown to sales."))
    token = None
    if client_token:
        try:
            token = client_token if isinstance(client_token, uuid.UUID) else uuid.UUID(str(client_token))
        except ValueError:
            raise ValidationError({"client_token": _("Not a valid token.")}) from None
        existing = Outcome.objects.filter(client_token=token).first()
        if existing is not None:
            return _same_submission(existing, user=user, recommendation=recommendation, kind=kind)
    exposure = exposure_for(recommendation=recommendation)
    try:
        with transaction.atomic():
            return Outcome.objects.create(
                recommendation=recommendation,
                customer_id=recommendation.customer_id,
                product_id=recommendation.product_id,
                user=user,
                kind=kind,
                comment=comment,
                explained=not exposure.is_control,
                client_token=token,
            )
    except IntegrityError:
        # The same form was submitted twice at once: the other request inserted first.
        if token is None:
            raise
        existing = Outcome.objects.get(client_token=token)
        return _same_submission(existing, user=user, recommendation=recommendation, kind=kind)


def _same_submission(existing: Outcome, *, user: UserLike, recommendation: Recommendation, kind: str) -> Outcome:
    """Return ``existing`` if it is the same submission; a token reused for anything else is an error."""
    if existing.user_id != user.pk or existing.recommendation_id != recommendation.pk or existing.kind != kind:
        raise ValidationError({"client_token": _("This token was already used for another outcome.")})
    existing.duplicate = True  # lets the caller say "already recorded" instead of "recorded"
    return existing
