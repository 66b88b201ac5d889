"""Apply the remembered language when a user signs in (in any browser)."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in
from django.dispatch import receiver

from preferences.services import SESSION_KEY, user_language_get


@receiver(user_logged_in, dispatch_uid="preferences-apply-language")
def apply_language_on_login(sender, request, user, **kwargs) -> None:
    if request is None or not hasattr(request, "session"):
        return
    language = user_language_get(user=user)
    if language:
        # Kept in the session so later requests need no query; the middleware applies it.
        request.session[SESSION_KEY] = language
