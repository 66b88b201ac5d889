"""The language switch: Django's set_language, remembered for the signed-in user."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from preferences.services import SESSION_KEY, user_language_set


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """Switch the interface language (cookie, as Django does) and remember it for the signed-in user."""
    response = set_language(request)
    language = request.POST.get("language")
    if language in dict(settings.LANGUAGES) and request.user.is_authenticated:
        user_language_set(user=request.user, language=language)
        request.session[SESSION_KEY] = language
    return response
