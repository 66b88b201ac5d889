"""Review pages: the reviewer queue and one explanation's review with its history (thin views)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_POST
from django_fsm import can_proceed

from accounts.selectors import customer_region_choices
from core.permissions import ADMIN, REVIEWER, role_required
from explanations import selectors
from explanations.models import Explanation, LocalizedReason, ReasonVersion
from explanations.presentation import EvidenceLine, ReasonSegment, evidence_lines, flag_view, reason_segments
from explanations.review import can_approve
from explanations.services import review

ITEMS_PER_PAGE = 20
COMMENT_MAX_LENGTH = 2000
Status = Explanation.Status

AGE_CHOICES = [
    ("", _("Any age")),
    ("24", _("Older than 1 day")),
    ("sla", _("Past the SLA")),
    ("168", _("Older than 7 days")),
]
SORT_CHOICES = [("oldest", _("Oldest first")), ("newest", _("Newest first"))]
STATUS_CHOICES = [
    (Status.PENDING_REVIEW, _("Pending review")),
    (Status.CHANGES_REQUESTED, _("Changes requested")),
]
# Labels of the actions, by the model's transition name.
ACTION_LABELS = {
    "approve": _("Approve"),
    "request_changes": _("Request changes"),
    "reject": _("Reject"),
    "withdraw": _("Withdraw"),
}
EVENT_LABELS = {
    "submit": _("Queued after the automatic checks"),
    "regenerate": _("New text generated"),
    "approve": _("Approved"),
    "reject": _("Rejected"),
    "request_changes": _("Changes requested"),
    "withdraw": _("Withdrawn"),
    "edit": _("Edited"),
}
DONE_MESSAGES = {
    "approve": _("Approved: sales can read the reason now."),
    "reject": _("Rejected."),
    "request_changes": _("Sent back for changes."),
    "withdraw": _("Withdrawn: sales no longer see the reason."),
}


class ReviewFilterForm(forms.Form):
    """The queue's filters (GET). Confidence is in percent; consistency is a cosine (-1..1)."""

    status = forms.ChoiceField(label=_("State"), required=False, choices=STATUS_CHOICES)
    flag = forms.ChoiceField(label=_("Flags"), required=False)
    confidence_min = forms.FloatField(label=_("Confidence from (%)"), required=False, min_value=0, max_value=100)
    confidence_max = forms.FloatField(label=_("Confidence to (%)"), required=False, min_value=0, max_value=100)
    consistency_min = forms.FloatField(label=_("Consistency from"), required=False, min_value=-1, max_value=1)
    consistency_max = forms.FloatField(label=_("Consistency to"), required=False, min_value=-1, max_value=1)
    age = forms.ChoiceField(label=_("Age"), required=False, choices=AGE_CHOICES)
    region = forms.ChoiceField(label=_("Region"), required=False)
    sort = forms.ChoiceField(label=_("Sort by"), required=False, choices=SORT_CHOICES)

    def __init__(self, *args, regions: list[str], **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["flag"].choices = [("", _("All items")), *selectors.FLAG_FILTERS.items()]
        self.fields["region"].choices = [("", _("All regions")), *((r, r) for r in regions)]
        for name in ("confidence_min", "confidence_max"):
            self.fields[name].widget.attrs.update({"step": "1", "inputmode": "decimal"})
        for name in ("consistency_min", "consistency_max"):
            self.fields[name].widget.attrs.update({"step": "0.05", "inputmode": "decimal"})

    def filters(self) -> selectors.ReviewQueueFilters:
        """Return the selector filters of the valid fields (invalid ones are reported and ignored)."""
        data = self.cleaned_data if self.is_bound else {}
        age = data.get("age") or ""
        min_age = selectors.sla_hours() if age == "sla" else (float(age) if age else None)

        def fraction(name: str) -> float | None:
            value = data.get(name)
            return None if value is None else value / 100

        return selectors.ReviewQueueFilters(
            status=data.get("status") or Status.PENDING_REVIEW,
            flag=data.get("flag") or None,
            confidence_min=fraction("confidence_min"),
            confidence_max=fraction("confidence_max"),
            consistency_min=data.get("consistency_min"),
            consistency_max=data.get("consistency_max"),
            min_age_hours=min_age,
            region=data.get("region") or None,
            sort=data.get("sort") or "oldest",
        )


# Which language's text an action or edit is about: empty for the English text (the explanation's own).
LANGUAGE_FIELD = {"required": False, "choices": [("", "")] + list(settings.LANGUAGES)}


class CommentForm(forms.Form):
    comment = forms.CharField(label=_("Comment"), required=False, max_length=COMMENT_MAX_LENGTH)
    language = forms.ChoiceField(**LANGUAGE_FIELD)


class EditForm(forms.Form):
    text = forms.CharField(
        label=_("Reason text"), max_length=review.MAX_REASON_CHARS, widget=forms.Textarea(attrs={"rows": 4})
    )
    comment = forms.CharField(label=_("Comment (optional)"), required=False, max_length=COMMENT_MAX_LENGTH)
    language = forms.ChoiceField(**LANGUAGE_FIELD)


@dataclass(frozen=True)
class TextReview:
    """One other language's text of an explanation, reviewed on its own: state, flags, what may be done."""

    text: LocalizedReason
    language_name: str
    segments: list[ReasonSegment]
    flags: list[dict]
    own_edit: bool  # the viewer wrote it: four-eyes forbids their approval
    actions: list[tuple[str, str]]
    can_edit: bool

    @property
    def language(self) -> str:
        return self.text.language


def text_review(text: LocalizedReason, *, user) -> TextReview:
    """Build the view of one language's text (no queries)."""
    flags = [flag_view(f) for f in text.flags or []]
    return TextReview(
        text=text,
        language_name=dict(settings.LANGUAGES).get(text.language, text.language),
        segments=reason_segments(text.reason_text, flags),
        flags=flags,
        own_edit=not can_approve(explanation=text, user=user),
        actions=[(name, label) for name, label in ACTION_LABELS.items() if can_proceed(getattr(text, name))],
        can_edit=can_proceed(text.edit),
    )


@dataclass(frozen=True)
class ReviewItem:
    """One explanation as the review pages show it, already decided for the viewer."""

    explanation: Explanation
    segments: list[ReasonSegment]
    flags: list[dict]
    evidence: list[EvidenceLine]
    confidence_percent: float | None
    age: timedelta | None
    overdue: bool
    own_edit: bool  # the viewer wrote the current text: four-eyes forbids their approval
    bulk_approvable: bool
    actions: list[tuple[str, str]]  # (transition, label) allowed from the current state
    can_edit: bool
    translations: list[TextReview]  # the texts in the other languages, each reviewed on its own

    @property
    def age_hours(self) -> float | None:
        return None if self.age is None else self.age.total_seconds() / 3600


def review_item(explanation: Explanation, *, user, now=None) -> ReviewItem:
    """Build the view of one explanation (no queries: everything is loaded with it)."""
    now = now or timezone.now()
    flags = [flag_view(f) for f in explanation.flags or []]
    since = explanation.review_requested_at
    age = now - since if since else None
    own_edit = not can_approve(explanation=explanation, user=user)
    actions = [(name, label) for name, label in ACTION_LABELS.items() if can_proceed(getattr(explanation, name))]
    rec = explanation.recommendation
    return ReviewItem(
        explanation=explanation,
        segments=reason_segments(explanation.reason_text, flags),
        flags=flags,
        evidence=evidence_lines(explanation.evidence or [], rec.score),
        confidence_percent=explanation.confidence * 100 if explanation.confidence is not None else None,
        age=age,
        overdue=age is not None and age >= timedelta(hours=selectors.sla_hours()),
        own_edit=own_edit,
        bulk_approvable=explanation.status == Status.PENDING_REVIEW and not explanation.flags and not own_edit,
        actions=actions,
        can_edit=can_proceed(explanation.edit),
        # Loaded with the explanation (selectors.review_queue, review_explanation_get).
        translations=[
            text_review(t, user=user) for t in sorted(explanation.localized_reasons.all(), key=lambda t: t.language)
        ],
    )


def _back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    """Redirect to the ``next`` URL the form carried if it is on this site, else to ``default``."""
    target = request.POST.get("next") or ""
    if not url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        target = default
    return HttpResponseRedirect(target)


@role_required(REVIEWER, ADMIN)
def review_queue(request: HttpRequest) -> HttpResponse:
    """List the explanations waiting for review with their flags, evidence and age; filter, sort, page."""
    regions = customer_region_choices(user=request.user)
    form = ReviewFilterForm(request.GET or None, regions=regions)
    if form.is_bound:
        form.is_valid()
    filters = form.filters()
    queue = selectors.review_queue(user=request.user, filters=filters)
    page = Paginator(queue, ITEMS_PER_PAGE).get_page(request.GET.get("page"))
    now = timezone.now()
    items = [review_item(e, user=request.user, now=now) for e in page.object_list]
    default = selectors.ReviewQueueFilters(status=filters.status)
    return render(
        request,
        "explanations/review_queue.html",
        {
            "form": form,
            "page": page,
            "items": items,
            "summary": selectors.review_summary(user=request.user),
            "sla_hours": selectors.sla_hours(),
            "is_filtered": filters != default,
            "comment_max_length": COMMENT_MAX_LENGTH,
            "reason_max_length": review.MAX_REASON_CHARS,
        },
    )


@role_required(REVIEWER, ADMIN)
def review_detail(request: HttpRequest, explanation_id: int) -> HttpResponse:
    """Show one explanation for review: text, flags, evidence, actions, edit form and its full history."""
    try:
        explanation = selectors.review_explanation_get(user=request.user, explanation_id=explanation_id)
    except Explanation.DoesNotExist:
        raise Http404(_("No such explanation.")) from None
    versions = selectors.reason_versions(explanation=explanation)
    version_views = [
        {
            "version": v,
            "segments": reason_segments(v.text, [flag_view(f) for f in v.flags or []]),
            "flags": [flag_view(f) for f in v.flags or []],
            "current": v.sha256 == review.text_sha256(explanation.reason_text) and v is versions[-1],
        }
        for v in versions
    ]
    status_labels = dict(Status.choices)
    events = [
        {
            "event": e,
            "label": EVENT_LABELS.get(e.action, e.action),
            "from_label": status_labels.get(e.from_status, e.from_status),
            "to_label": status_labels.get(e.to_status, e.to_status),
        }
        for e in selectors.review_events(explanation=explanation)
    ]
    return render(
        request,
        "explanations/review_detail.html",
        {
            "item": review_item(explanation, user=request.user),
            "versions": list(reversed(version_views)),
            "events": list(reversed(events)),
            "edit_form": EditForm(initial={"text": explanation.reason_text}),
            "sla_hours": selectors.sla_hours(),
            "comment_max_length": COMMENT_MAX_LENGTH,
            "reason_max_length": review.MAX_REASON_CHARS,
            "generated_source": ReasonVersion.Source.GENERATED,
        },
    )


@role_required(REVIEWER, ADMIN)
@require_POST
def review_action(request: HttpRequest, explanation_id: int) -> HttpResponse:
    """Approve, reject, request changes or withdraw (button ``action``), with the form's comment."""
    action = request.POST.get("action", "")
    default = reverse("review-detail", args=[explanation_id])
    service = review.ACTIONS.get(action)
    form = CommentForm(request.POST)
    if service is None or not form.is_valid():
        messages.error(request, _("That action is not available."))
        return _back(request, default)
    try:
        service(
            user=request.user,
            explanation_id=explanation_id,
            comment=form.cleaned_data["comment"],
            language=form.cleaned_data["language"] or None,
        )
    except review.ReviewError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, DONE_MESSAGES[action])
    return _back(request, default)


@role_required(REVIEWER, ADMIN)
@require_POST
def review_edit(request: HttpRequest, explanation_id: int) -> HttpResponse:
    """Replace the reason text with the reviewer's edit; it is checked again and queued for another reviewer."""
    default = reverse("review-detail", args=[explanation_id])
    form = EditForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return _back(request, default)
    try:
        explanation = review.explanation_edit(
            user=request.user,
            explanation_id=explanation_id,
            text=form.cleaned_data["text"],
            comment=form.cleaned_data["comment"],
            language=form.cleaned_data["language"] or None,
        )
    except review.ReviewError as exc:
        messages.error(request, exc.message)
    else:
        edited = next(
            (t for t in explanation.localized_reasons.all() if t.language == form.cleaned_data["language"]), None
        )
        n = len((edited or explanation).flags)
        messages.success(
            request,
            ngettext(
                "Saved. The checks found %(count)d flag. Another reviewer has to approve the new text.",
                "Saved. The checks found %(count)d flags. Another reviewer has to approve the new text.",
                n,
            )
            % {"count": n},
        )
    return _back(request, default)


@role_required(REVIEWER, ADMIN)
@require_POST
def review_bulk(request: HttpRequest) -> HttpResponse:
    """Approve or reject the ticked items; flagged ones are refused for bulk approval, with a message."""
    default = reverse("review-queue")
    action = request.POST.get("action", "")
    form = CommentForm(request.POST)
    try:
        ids = [int(i) for i in request.POST.getlist("ids")]
    except ValueError:
        ids = []
    if action not in ("approve", "reject") or not form.is_valid():
        messages.error(request, _("That action is not available."))
        return _back(request, default)
    if not ids:
        messages.warning(request, _("Tick the items first."))
        return _back(request, default)
    try:
        result = review.explanations_bulk(
            user=request.user, action=action, explanation_ids=ids, comment=form.cleaned_data["comment"]
        )
    except review.ReviewError as exc:
        messages.error(request, exc.message)
        return _back(request, default)
    if result.done:
        done = len(result.done)
        text = (
            ngettext("%(count)d item approved.", "%(count)d items approved.", done)
            if action == "approve"
            else ngettext("%(count)d item rejected.", "%(count)d items rejected.", done)
        )
        messages.success(request, text % {"count": done})
    for explanation_id, reason in result.refused:
        messages.warning(
            request, _("Item %(id)d was not changed: %(reason)s") % {"id": explanation_id, "reason": reason}
        )
    return _back(request, default)
