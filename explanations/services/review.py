"""Writes of the legal review workflow: every status change of an explanation goes through here.

Each transition runs in one transaction that locks the explanation, changes its status through
the model's state machine (django-fsm), and writes an append-only ``ReviewEvent`` (who, when,
from/to, comment, SHA-256 of the text). A reviewer's edit is checked again like a generated text
(PII, policy terms, unsupported entities), kept as a new ``ReasonVersion`` next to the original,
and goes back to ``pending_review``; its semantic consistency is re-measured by a worker job
(the encoder needs torch, which web processes never import). Four-eyes: whoever wrote the
current text cannot approve it (the rule is ``explanations.review.can_approve``).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from django.utils.translation import gettext as _
from django_fsm import can_proceed

from accounts.selectors import customer_queryset_for
from core.permissions import ADMIN, REVIEWER, UserLike, user_has_role
from explanations.models import Explanation, LocalizedReason, ReasonVersion, ReviewedText, ReviewEvent
from explanations.review import can_approve

logger = logging.getLogger(__name__)

REVIEW_ROLES = (REVIEWER, ADMIN)
MAX_REASON_CHARS = 2000  # an edit longer than this is refused outright (the checks flag > 400 already)
MAX_BULK_ITEMS = 200
RESCORE_JOB_KIND = "rescore_reasons"

Status = Explanation.Status


class ReviewError(Exception):
    """A review action that is not allowed; ``code`` says why, ``message`` is for the user."""

    FORBIDDEN = "forbidden"  # the user may not review
    NOT_FOUND = "not_found"
    NOT_ALLOWED = "not_allowed"  # not from the explanation's current state
    FOUR_EYES = "four_eyes"  # the approver wrote the current text
    COMMENT_REQUIRED = "comment_required"
    FLAGGED = "flagged"  # bulk approval of a flagged text
    INVALID_TEXT = "invalid_text"

    def __init__(self, message: str, *, code: str):
        super().__init__(message)
        self.message = message
        self.code = code


def text_sha256(text: str) -> str:
    """Return the hex SHA-256 of a reason text (UTF-8), as stored in events and versions."""
    return hashlib.sha256((text or "").encode("utf-8")).hexdigest()


def _actor_name(user: UserLike | None) -> str:
    return user.get_username() if user is not None and getattr(user, "is_authenticated", False) else ""


def text_language(text: ReviewedText) -> str:
    """Return the language of a reviewed text: a LocalizedReason's own, else the site's (English)."""
    return text.language if isinstance(text, LocalizedReason) else settings.LANGUAGE_CODE


def _event(
    explanation: Explanation,
    *,
    actor,
    action: str,
    from_status: str,
    comment: str = "",
    text: ReviewedText | None = None,
) -> ReviewEvent:
    """Append the audit row of a transition of ``text`` (the explanation's English text by default)."""
    text = text or explanation
    return ReviewEvent.objects.create(
        explanation=explanation,
        actor=actor,
        actor_name=_actor_name(actor),
        action=action,
        language=text_language(text),
        from_status=from_status,
        to_status=text.status,
        comment=comment,
        text_sha256=text_sha256(text.reason_text),
    )


def _version(
    explanation: Explanation, *, author, source: str, text: str, flags: list[dict], language: str = ""
) -> ReasonVersion:
    last = ReasonVersion.objects.filter(explanation=explanation).aggregate(n=Max("number"))["n"] or 0
    return ReasonVersion.objects.create(
        explanation=explanation,
        number=last + 1,
        source=source,
        author=author,
        author_name=_actor_name(author),
        language=language or settings.LANGUAGE_CODE,
        text=text,
        sha256=text_sha256(text),
        flags=flags,
    )


def _require_reviewer(user: UserLike) -> None:
    if not user_has_role(user, *REVIEW_ROLES):
        raise ReviewError(_("Only reviewers may review explanations."), code=ReviewError.FORBIDDEN)


def _locked(*, user: UserLike, explanation_id: int) -> Explanation:
    """Return the explanation locked for this transaction, if ``user`` may see its customer."""
    try:
        return (
            Explanation.objects.select_for_update(of=("self",))
            .select_related("recommendation__customer", "recommendation__product")
            .get(pk=explanation_id, recommendation__customer__in=customer_queryset_for(user))
        )
    except Explanation.DoesNotExist:
        raise ReviewError(_("No such explanation."), code=ReviewError.NOT_FOUND) from None


def _text_locked(explanation: Explanation, language: str | None) -> ReviewedText:
    """Return the reviewed text of ``explanation`` in ``language`` (English: the explanation), locked."""
    if not language or language == settings.LANGUAGE_CODE:
        return explanation
    try:
        return LocalizedReason.objects.select_for_update().get(explanation=explanation, language=language)
    except LocalizedReason.DoesNotExist:
        raise ReviewError(_("No text in this language."), code=ReviewError.NOT_FOUND) from None


def _require_four_eyes(explanation: ReviewedText, user: UserLike) -> None:
    if not can_approve(explanation=explanation, user=user):
        raise ReviewError(_("You edited this text; another reviewer has to approve it."), code=ReviewError.FOUR_EYES)


def _has_errors(flags: Iterable[dict]) -> bool:
    return any(f.get("severity") == "error" for f in flags or [])


# --------------------------------------------------------------------------- automatic checks


def reason_check(*, explanation: Explanation, text: str) -> list[dict]:
    """Run the automatic checks on ``text`` as a reason of ``explanation`` and return the flags as dicts.

    The same checks as at generation: PII (the customer's own source id included), the admin's
    policy terms, entities or numbers the stored evidence does not support, and claims the stored
    fact sheet does not support.
    """
    from explanations.checks import Evidence, check_text
    from explanations.selectors import policy_term_list
    from explanations.services.reasons import catalogue_vocabulary, claim_flags, source_id_flags

    rec = explanation.recommendation
    product_words = (explanation.word_attributions or {}).get("product") or {}
    highlighted = [
        w
        for w, share in zip(product_words.get("words", []), product_words.get("normalized", []), strict=False)
        if share > 0.1
    ]
    evidence = Evidence(
        recommended=rec.product.description,
        evidence_products=[r.get("description", "") for r in explanation.evidence or [] if r.get("product_id")],
        concepts=[c["concept"] for c in explanation.concepts or [] if c.get("shared")],
        highlighted_words=highlighted,
        extra=[explanation.template_text],
        vocabulary=catalogue_vocabulary(),
    )
    flags = check_text(text, evidence=evidence, terms=policy_term_list())
    flags += source_id_flags(text, rec.customer.pseudonym)
    return [f.as_dict() for f in flags] + claim_flags(text, explanation.reason_facts)


# --------------------------------------------------------------------------- generation


def explanation_record_generated(*, explanation: Explanation, text: ReviewedText | None = None) -> Explanation:
    """Record a just-written machine text as a version and queue it for review.

    ``text``: the explanation's English text by default, or one of its ``LocalizedReason`` rows.
    Call it inside the transaction that wrote the text and its flags (the explain job). A text
    identical to the current machine version of its language (a redelivered shard) keeps its review
    state; any other text starts over: ``<state> -> generated -> pending_review``, each step an event.
    """
    text = text or explanation
    language = text_language(text)
    sha = text_sha256(text.reason_text)
    latest = ReasonVersion.objects.filter(explanation=explanation, language=language).order_by("-number").first()
    if (
        latest is not None
        and latest.source == ReasonVersion.Source.GENERATED
        and latest.sha256 == sha
        and text.status not in (Status.GENERATED, Status.FAILED)
    ):
        return explanation
    if text.status != Status.GENERATED:
        before = text.status
        text.regenerate()
        text.save(update_fields=["status"])
        _event(
            explanation,
            actor=None,
            action="regenerate",
            from_status=before,
            comment="A new text was generated.",
            text=text,
        )
    _version(
        explanation,
        author=None,
        source=ReasonVersion.Source.GENERATED,
        text=text.reason_text,
        flags=text.flags,
        language=language,
    )
    text.submit()
    text.reason_edited_by = None
    text.review_requested_at = timezone.now()
    text.save(update_fields=["status", "reason_edited_by", "review_requested_at"])
    n = len(text.flags or [])
    _event(
        explanation,
        actor=None,
        action="submit",
        from_status=Status.GENERATED,
        comment=f"Automatic checks: {n} flag{'s' if n != 1 else ''}.",
        text=text,
    )
    return explanation


# --------------------------------------------------------------------------- reviewer actions


def _transition(
    *,
    user: UserLike,
    explanation_id: int,
    action: str,
    comment: str,
    check: Callable[[ReviewedText], None] | None = None,
    language: str | None = None,
) -> Explanation:
    _require_reviewer(user)
    comment = (comment or "").strip()
    with transaction.atomic():
        explanation = _locked(user=user, explanation_id=explanation_id)
        text = _text_locked(explanation, language)
        method = getattr(text, action)
        if not can_proceed(method):
            raise ReviewError(
                _("This explanation is %(status)s; it cannot be %(action)s now.")
                % {"status": text.get_status_display().lower(), "action": ACTION_PAST[action]},
                code=ReviewError.NOT_ALLOWED,
            )
        if check is not None:
            check(text)
        before = text.status
        method()
        text.save(update_fields=["status"])
        _event(explanation, actor=user, action=action, from_status=before, comment=comment, text=text)
    return explanation


def _require_comment(comment: str, message: str) -> None:
    if not (comment or "").strip():
        raise ReviewError(message, code=ReviewError.COMMENT_REQUIRED)


def explanation_approve(
    *, user: UserLike, explanation_id: int, comment: str = "", language: str | None = None
) -> Explanation:
    """Approve the reason text in ``language`` (English by default): sales reading it see it from now on.

    Refused when ``user`` wrote the current text (four-eyes), and without a comment when an
    automatic check found an error (personal data, a sensitive attribute): the comment records why
    the finding is a false alarm. Each language's text is approved on its own.
    """

    def check(explanation: ReviewedText) -> None:
        _require_four_eyes(explanation, user)
        if _has_errors(explanation.flags) and not (comment or "").strip():
            raise ReviewError(
                _("The checks found errors in this text. Edit it, or explain in a comment why they do not apply."),
                code=ReviewError.COMMENT_REQUIRED,
            )

    return _transition(
        user=user, explanation_id=explanation_id, action="approve", comment=comment, check=check, language=language
    )


def explanation_reject(
    *, user: UserLike, explanation_id: int, comment: str, language: str | None = None
) -> Explanation:
    """Reject the reason text for good (a comment says why); sales keep seeing the evidence only."""
    _require_reviewer(user)
    _require_comment(comment, _("Say why the text is rejected."))
    return _transition(user=user, explanation_id=explanation_id, action="reject", comment=comment, language=language)


def explanation_request_changes(
    *, user: UserLike, explanation_id: int, comment: str, language: str | None = None
) -> Explanation:
    """Ask for an edited text; the comment says what to change."""
    _require_reviewer(user)
    _require_comment(comment, _("Say what should change."))
    return _transition(
        user=user, explanation_id=explanation_id, action="request_changes", comment=comment, language=language
    )


def explanation_withdraw(
    *, user: UserLike, explanation_id: int, comment: str, language: str | None = None
) -> Explanation:
    """Take an approved text back from sales (a comment says why)."""
    _require_reviewer(user)
    _require_comment(comment, _("Say why the text is withdrawn."))
    return _transition(user=user, explanation_id=explanation_id, action="withdraw", comment=comment, language=language)


def normalize_reason(text: str) -> str:
    """Return the text with runs of whitespace collapsed (flags' offsets refer to this form)."""
    return " ".join((text or "").split())


def explanation_edit(
    *, user: UserLike, explanation_id: int, text: str, comment: str = "", language: str | None = None
) -> Explanation:
    """Replace the reason text in ``language`` with ``user``'s edit, check it, keep the version, queue it.

    The checks' flags replace the old ones; the consistency of an English text is cleared and
    re-measured by a worker job (created in the same transaction; the encoder reads English).
    ``user`` becomes the text's editor and so cannot approve it.
    """
    _require_reviewer(user)
    text = normalize_reason(text)
    if not text:
        raise ReviewError(_("The text is empty."), code=ReviewError.INVALID_TEXT)
    if len(text) > MAX_REASON_CHARS:
        raise ReviewError(
            _("The text is longer than %(max)d characters.") % {"max": MAX_REASON_CHARS},
            code=ReviewError.INVALID_TEXT,
        )
    with transaction.atomic():
        explanation = _locked(user=user, explanation_id=explanation_id)
        target = _text_locked(explanation, language)
        if not can_proceed(target.edit):
            raise ReviewError(
                _("This explanation is %(status)s; its text cannot be edited now.")
                % {"status": target.get_status_display().lower()},
                code=ReviewError.NOT_ALLOWED,
            )
        if text == target.reason_text:
            raise ReviewError(_("The text is unchanged."), code=ReviewError.INVALID_TEXT)
        flags = reason_check(explanation=explanation, text=text)
        before = target.status
        target.edit()
        target.reason_text = text
        target.flags = flags
        target.reason_edited_by = user
        target.review_requested_at = timezone.now()
        fields = ["status", "reason_text", "flags", "reason_edited_by", "review_requested_at"]
        english = target is explanation
        if english:
            explanation.consistency = None
            fields.append("consistency")
        target.save(update_fields=fields)
        language = text_language(target)
        _version(
            explanation, author=user, source=ReasonVersion.Source.EDITED, text=text, flags=flags, language=language
        )
        _event(explanation, actor=user, action="edit", from_status=before, comment=(comment or "").strip(), text=target)
        if english:
            from jobs.services import job_create

            job_create(kind=RESCORE_JOB_KIND, params={"ids": [explanation.pk]}, created_by=user)
    return explanation


ACTIONS: dict[str, Callable[..., Explanation]] = {
    "approve": explanation_approve,
    "reject": explanation_reject,
    "request_changes": explanation_request_changes,
    "withdraw": explanation_withdraw,
}
# For messages: "cannot be approved now".
ACTION_PAST = {
    "approve": "approved",
    "reject": "rejected",
    "request_changes": "sent back for changes",
    "withdraw": "withdrawn",
    "edit": "edited",
}


@dataclass
class BulkResult:
    """Which explanations a bulk action changed, and why the others were refused."""

    done: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)


def explanations_bulk(*, user: UserLike, action: str, explanation_ids: Iterable[int], comment: str = "") -> BulkResult:
    """Approve or reject many explanations, each in its own transaction with its own event.

    Bulk approval takes only unflagged texts that ``user`` did not write; every other one is
    refused with the reason (approve those one by one after reading them).
    """
    _require_reviewer(user)
    if action not in ("approve", "reject"):
        raise ValueError(f"unknown bulk action {action!r}")
    if action == "reject":
        _require_comment(comment, _("Say why the texts are rejected."))
    ids = list(dict.fromkeys(int(i) for i in explanation_ids))
    if len(ids) > MAX_BULK_ITEMS:
        raise ReviewError(_("At most %(max)d items at once.") % {"max": MAX_BULK_ITEMS}, code=ReviewError.INVALID_TEXT)
    result = BulkResult()

    def unflagged(explanation: Explanation) -> None:
        if explanation.flags:
            raise ReviewError(_("It has flags; approve it on its own after reading them."), code=ReviewError.FLAGGED)
        _require_four_eyes(explanation, user)

    for explanation_id in ids:
        try:
            if action == "approve":
                _transition(
                    user=user, explanation_id=explanation_id, action="approve", comment=comment, check=unflagged
                )
            else:
                _transition(user=user, explanation_id=explanation_id, action="reject", comment=comment)
        except ReviewError as exc:
            result.refused.append((explanation_id, exc.message))
        else:
            result.done.append(explanation_id)
    return result


# --------------------------------------------------------------------------- worker


def reasons_rescore(*, explanation_ids: list[int]) -> int:
    """Measure the semantic consistency of edited reasons that lack it (worker only: loads the encoder).

    SC is the cosine of the encoded text with the normalized customer + product vector, exactly
    as at generation. A text edited again meanwhile is left for its own job.
    """
    import numpy as np

    from recommendations.ml.encoder import encode
    from recommendations.models import Customer, Product
    from recommendations.vectors import fetch_vectors

    rows = list(
        Explanation.objects.filter(pk__in=explanation_ids, consistency__isnull=True)
        .exclude(reason_text="")
        .values_list("pk", "reason_text", "recommendation__customer_id", "recommendation__product_id")
    )
    if not rows:
        return 0
    customers = fetch_vectors(Customer._meta.db_table, {r[2] for r in rows})
    products = fetch_vectors(Product._meta.db_table, {r[3] for r in rows})
    rows = [r for r in rows if r[2] in customers and r[3] in products]
    if not rows:
        return 0
    text_vectors = encode([r[1] for r in rows])
    done = 0
    for (pk, text, customer_id, product_id), tv in zip(rows, text_vectors, strict=True):
        pair = customers[customer_id].astype(np.float64) + products[product_id].astype(np.float64)
        pair /= np.linalg.norm(pair)
        done += Explanation.objects.filter(pk=pk, reason_text=text, consistency__isnull=True).update(
            consistency=float(np.dot(tv, pair))
        )
    return done
