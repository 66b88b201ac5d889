"""Rules of the legal review, each defined once: four-eyes approval and who reads a reason.

The review service (``explanations.services.review``), the review pages and API, the customer
page and the customers API all ask these functions; none of them restates a rule.
"""

from __future__ import annotations

from django.conf import settings
from django.utils.translation import get_language

from core.permissions import UserLike, user_is_reviewer
from explanations.models import Explanation, ReviewedText


def wrote_current_text(*, explanation: Explanation, user: UserLike) -> bool:
    """Return whether ``user`` wrote the explanation's current reason text (null editor: the machine)."""
    editor_id = explanation.reason_edited_by_id
    return editor_id is not None and editor_id == getattr(user, "pk", None)


def can_approve(*, explanation: Explanation, user: UserLike) -> bool:
    """Four-eyes: whoever wrote the current text cannot approve it; another reviewer must.

    Only the authorship rule: the role and the state machine are checked by the review service.
    """
    return not wrote_current_text(explanation=explanation, user=user)


def reason_readable(*, status: str, reviewer: bool, authenticated: bool = True) -> bool:
    """Return whether a viewer may read a reason in review state ``status``.

    Reviewers, managers and admins (``reviewer``) always may; every other signed-in user (sales,
    users without a role) only once a reviewer approved the text. Evidence, concepts, word
    attributions and confidence are never hidden by this.
    """
    if reviewer:
        return True
    return authenticated and status == Explanation.Status.APPROVED


# A written reason in these states will not reach sales as it stands: rejected for good, or an approved
# text taken back. Sales get the template reason built from the evidence instead (or are told plainly
# that there is none), never "under review", which would promise a text no one is reviewing.
REFUSED_STATUSES = frozenset({Explanation.Status.REJECTED, Explanation.Status.WITHDRAWN})


def reason_refused(*, status: str) -> bool:
    """Return whether a reason in review state ``status`` was refused (see ``REFUSED_STATUSES``)."""
    return status in REFUSED_STATUSES


def reason_visible_to(user: UserLike, explanation: Explanation) -> bool:
    """Return whether ``user`` may read the reason text of ``explanation`` (see ``reason_readable``)."""
    return reason_readable(
        status=explanation.status,
        reviewer=user_is_reviewer(user=user),
        authenticated=getattr(user, "is_authenticated", False),
    )


# The attribute a reader's LocalizedReason rows are prefetched into (explanations.selectors).
LOCALIZED_ATTR = "localized_for_reader"


def reader_language() -> str:
    """Return the active language as one of the site's (``LANGUAGE_CODE`` when it is none of them)."""
    language = (get_language() or "").split("-")[0]
    return language if language in dict(settings.LANGUAGES) else settings.LANGUAGE_CODE


def reviewed_text_in(explanation: Explanation, language: str) -> ReviewedText:
    """Return the reviewed reason a reader of ``language`` gets: its LocalizedReason, else the English one.

    Reads only the rows prefetched into ``LOCALIZED_ATTR`` (no query): an explanation loaded without
    them, or without a text in that language (generated before there were any), gives its English text.
    """
    if language == settings.LANGUAGE_CODE:
        return explanation
    rows = getattr(explanation, LOCALIZED_ATTR, None) or ()
    return next((row for row in rows if row.language == language), explanation)
