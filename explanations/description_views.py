"""Review actions on customer descriptions (the customer's vector in words), from the customer page."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from accounts.selectors import customer_queryset_for
from core.permissions import ADMIN, REVIEWER, role_required
from explanations.models import CustomerDescription
from explanations.services.descriptions import REVIEW_ACTIONS, DescriptionReviewError, customer_description_review

COMMENT_MAX_LENGTH = 1000


@role_required(REVIEWER, ADMIN)
@require_POST
def customer_description_action(request: HttpRequest, pseudonym: str, action: str) -> HttpResponse:
    """Approve or reject the description of a customer the reviewer may see."""
    if action not in REVIEW_ACTIONS:
        raise Http404(_("Unknown review action."))
    description = (
        CustomerDescription.objects.filter(
            customer__in=customer_queryset_for(request.user), customer__pseudonym=pseudonym
        )
        .select_related("customer")
        .first()
    )
    if description is None:
        raise Http404(_("No description for this customer."))
    comment = request.POST.get("comment", "")
    if len(comment) > COMMENT_MAX_LENGTH:
        messages.error(request, _("The comment is too long (at most %(n)d characters).") % {"n": COMMENT_MAX_LENGTH})
    else:
        try:
            customer_description_review(description=description, reviewer=request.user, action=action, comment=comment)
        except DescriptionReviewError as exc:
            messages.error(request, str(exc))
        else:
            done = _("approved") if action == "approve" else _("rejected")
            messages.success(request, _("The customer description was %(done)s.") % {"done": done})
    return redirect("customer-detail", pseudonym=pseudonym)
