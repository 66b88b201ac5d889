"""Template context shared by every page."""

from __future__ import annotations

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from core.permissions import user_roles


def roles(request: HttpRequest) -> dict:
    """Expose ``user_roles``: the set of roles of the signed-in user (empty for anonymous visitors)."""
    user = getattr(request, "user", None)
    # Lazy: pages that never ask (e.g. the sign-in page) do not query the user's groups.
    return {"user_roles": SimpleLazyObject(lambda: set(user_roles(user)) if user is not None else set())}
