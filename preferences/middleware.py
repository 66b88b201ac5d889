"""Use the signed-in user's remembered language instead of the browser's cookie or Accept-Language."""

from __future__ import annotations

from django.conf import settings
from django.utils import translation

from preferences.services import SESSION_KEY


class UserLanguageMiddleware:
    """Activate the language stored in the session at sign-in, and keep the language cookie in step.

    Place after AuthenticationMiddleware (and LocaleMiddleware, whose choice it overrides). The
    cookie makes the sign-in page after a sign-out speak the same language.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        language = self._language(request)
        if language:
            translation.activate(language)
            request.LANGUAGE_CODE = language
        response = self.get_response(request)
        # Signing in (or switching) during this request may have set it just now.
        language = self._language(request)
        if language and request.COOKIES.get(settings.LANGUAGE_COOKIE_NAME) != language:
            response.set_cookie(
                settings.LANGUAGE_COOKIE_NAME,
                language,
                max_age=settings.LANGUAGE_COOKIE_AGE,
                path=settings.LANGUAGE_COOKIE_PATH,
                domain=settings.LANGUAGE_COOKIE_DOMAIN,
                secure=settings.LANGUAGE_COOKIE_SECURE,
                httponly=settings.LANGUAGE_COOKIE_HTTPONLY,
                samesite=settings.LANGUAGE_COOKIE_SAMESITE,
            )
        return response

    @staticmethod
    def _language(request) -> str | None:
        session = getattr(request, "session", None)
        if session is None:
            return None
        language = session.get(SESSION_KEY)
        return language if language in dict(settings.LANGUAGES) else None
