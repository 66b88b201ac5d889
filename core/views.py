"""Sign-in, sign-out, the home redirect and the health check."""

from __future__ import annotations

import logging

from django.contrib.auth import views as auth_views
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponseRedirect, JsonResponse
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


class LoginView(auth_views.LoginView):
    template_name = "core/login.html"
    redirect_authenticated_user = True


class LogoutView(auth_views.LogoutView):
    """Sign out (POST only, as Django requires) and return to the sign-in page."""


def home(request: HttpRequest) -> HttpResponseRedirect:
    """Send visitors to the customer list (which asks anonymous visitors to sign in)."""
    return HttpResponseRedirect(reverse("customer-list"))


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Report whether the app can reach its database: 200 when it can, 503 when it cannot."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError:
        # Logged for operators; the probe's body stays free of connection details.
        logger.exception("health check: database unreachable")
        return JsonResponse({"status": "error", "database": "unavailable"}, status=503)
    return JsonResponse({"status": "ok", "database": "ok"})
