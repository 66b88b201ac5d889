"""Writes of user preferences."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from preferences.models import UserPreference

SESSION_KEY = "elm_language"


def user_language_set(*, user: AbstractBaseUser, language: str) -> UserPreference:
    """Remember ``language`` as the user's interface language; raise ValueError for an unknown code."""
    if language not in dict(settings.LANGUAGES):
        raise ValueError(f"unknown language {language!r}")
    with transaction.atomic():
        preference, _ = UserPreference.objects.update_or_create(user=user, defaults={"language": language})
    return preference


def user_language_get(*, user: AbstractBaseUser) -> str | None:
    """Return the user's remembered language, or None when they never chose one."""
    language = UserPreference.objects.filter(user=user).values_list("language", flat=True).first()
    return language or None
