"""API views that belong to no app: the token exchange and the JSON 404 for unmatched /api/ paths."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.translation import gettext_lazy as _
from django.views.defaults import page_not_found
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle

from core.api.serializers import VALIDATION_ERROR_SCHEMA, ErrorSerializer, TokenRequestSerializer, TokenSerializer

UNAUTHENTICATED = OpenApiResponse(ErrorSerializer, description=_("No valid token or session."))


def not_found(request: HttpRequest, exception=None) -> HttpResponse:
    """Answer 404 as JSON under /api/ (a path no API route matches), else with the site's page."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": str(_("Not found."))}, status=404)
    return page_not_found(request, exception)


@extend_schema_view(
    post=extend_schema(
        tags=["auth"],
        summary="Obtain an API token",
        description="Exchange a username and password for the user's API token (created on first use). "
        "Send it as `Authorization: Token <token>`. Throttled per client (scope `auth`).",
        request=TokenRequestSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(VALIDATION_ERROR_SCHEMA, description=_("Wrong username or password.")),
            429: OpenApiResponse(ErrorSerializer, description=_("Too many attempts; retry later.")),
        },
        auth=[],
    ),
    delete=extend_schema(
        tags=["auth"],
        summary="Revoke the caller's API token",
        description="Delete the caller's token; requests with it fail from now on. POST again for a new one.",
        request=None,
        responses={204: OpenApiResponse(description=_("Token revoked.")), 401: UNAUTHENTICATED},
    ),
)
class AuthTokenApi(ObtainAuthToken):
    # The obtain side is DRF's ObtainAuthToken; this adds throttling and revocation.

    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    def get_permissions(self):
        if self.request is not None and self.request.method == "DELETE":
            return [IsAuthenticated()]
        return []

    def delete(self, request: Request) -> Response:
        # Any session or token of the caller may revoke; the token itself is the only state.
        Token.objects.filter(user=request.user).delete()
        return Response(status=status.HTTP_204_NO_CONTENT)
