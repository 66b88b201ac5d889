"""REST API: token auth, customers, their active recommendations and import runs (thin views over selectors)."""

from __future__ import annotations

import re

from django.http import FileResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.authtoken.models import Token
from rest_framework.authtoken.views import ObtainAuthToken
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from core.pagination import BoundedLimitOffsetPagination
from outcomes.selectors import control_recommendation_ids, is_sales_only
from recommendations import selectors
from recommendations.api import serializers as s
from recommendations.models import Customer, ImportRun

# Larger offsets are never useful and must not reach PostgreSQL's bigint OFFSET.
MAX_OFFSET = 2**31 - 1
_INTEGER_RE = re.compile(r"^-?[0-9]{1,18}$")
MAX_LIMIT_PARAMETER = 10**18 - 1  # the largest limit parsed (and then capped); longer numbers are refused

PSEUDONYM_PATH_PARAMETER = OpenApiParameter(
    "pseudonym", OpenApiTypes.STR, OpenApiParameter.PATH, description=_("The customer's pseudonym.")
)
NOT_FOUND = OpenApiResponse(
    s.ErrorSerializer, description=_("No customer with this pseudonym (or not visible to the caller).")
)
BAD_QUERY = OpenApiResponse(
    s.VALIDATION_ERROR_SCHEMA, description=_("A malformed query parameter; the body names it and says why.")
)
UNAUTHENTICATED = OpenApiResponse(s.ErrorSerializer, description=_("No valid token or session."))


class StrictBoundedLimitOffsetPagination(BoundedLimitOffsetPagination):
    """Bounded limit/offset pagination that answers 400 to malformed values instead of guessing.

    A ``limit`` above ``max_limit`` is capped (clients may ask for "as many as possible"); a limit
    or offset that is not a whole number, or is out of range, is a client error.
    """

    def get_limit(self, request: Request) -> int:
        raw = request.query_params.get(self.limit_query_param)
        if raw is None or raw == "":
            return self.default_limit
        return min(_whole_number(raw, self.limit_query_param, minimum=1), self.max_limit)

    def get_offset(self, request: Request) -> int:
        raw = request.query_params.get(self.offset_query_param)
        if raw is None or raw == "":
            return 0
        return _whole_number(raw, self.offset_query_param, minimum=0, maximum=MAX_OFFSET)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        limit, offset = super().get_schema_operation_parameters(view)
        limit["description"] = f"Page size (default {self.default_limit}); values above {self.max_limit} are capped."
        limit["schema"] = {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT_PARAMETER}
        offset["description"] = "Index of the first result (0-based)."
        offset["schema"] = {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}
        return [limit, offset]


def _whole_number(raw: str, name: str, *, minimum: int, maximum: int | None = None) -> int:
    # Stricter than int(): no "1_000", "+5", " 5 " or thousands of digits.
    if not _INTEGER_RE.match(raw):
        raise ValidationError({name: [_("Must be a whole number.")]})
    value = int(raw)
    if value < minimum:
        raise ValidationError({name: [_("Must be at least %(minimum)d.") % {"minimum": minimum}]})
    if maximum is not None and value > maximum:
        raise ValidationError({name: [_("Must be at most %(maximum)d.") % {"maximum": maximum}]})
    return value


def not_found(request, exception=None):
    """Answer 404 as JSON under /api/ (a path no API route matches), else with the site's page."""
    from django.http import JsonResponse
    from django.views.defaults import page_not_found

    if request.path.startswith("/api/"):
        return JsonResponse({"detail": str(_("Not found."))}, status=404)
    return page_not_found(request, exception)


def _customer_or_404(request: Request, pseudonym: str, *, with_concepts: bool = False) -> Customer:
    try:
        return selectors.customer_get(user=request.user, pseudonym=pseudonym, with_concepts=with_concepts)
    except Customer.DoesNotExist:
        raise NotFound(_("No customer with this pseudonym.")) from None


class MayReadRejectedRows(BasePermission):
    message = _("Only managers and admins may download rejected rows.")

    def has_permission(self, request: Request, view: APIView) -> bool:
        return s.may_read_rejected_rows(request.user)


# --------------------------------------------------------------------------- auth


@extend_schema_view(
    post=extend_schema(
        tags=["auth"],
        summary="Obtain an API token",
        description="Exchange a username and password for the user's API token (created on first use). "
        "Send it as `Authorization: Token <token>`. Throttled per client (scope `auth`).",
        request=s.TokenRequestSerializer,
        responses={
            200: s.TokenSerializer,
            400: OpenApiResponse(s.VALIDATION_ERROR_SCHEMA, description=_("Wrong username or password.")),
            429: OpenApiResponse(s.ErrorSerializer, description=_("Too many attempts; retry later.")),
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


# --------------------------------------------------------------------------- customers


@extend_schema(
    tags=["customers"],
    summary="List customers",
    description="Customers the caller may see, with their number of active recommendations. "
    "`limit` above the maximum page size is capped; malformed parameters are answered with 400.",
    parameters=[s.CustomerListParamsSerializer],
    responses={200: s.CustomerListItemSerializer(many=True), 400: BAD_QUERY, 401: UNAUTHENTICATED},
)
class CustomerListApi(ListAPIView):
    serializer_class = s.CustomerListItemSerializer
    pagination_class = StrictBoundedLimitOffsetPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):  # schema generation has no request
            return Customer.objects.none()
        params = s.CustomerListParamsSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        data = params.validated_data
        return selectors.customer_list(
            user=self.request.user,
            region=data.get("region"),
            search=data.get("pseudonym"),
            ordering=data.get("ordering"),
        )


class CustomerDetailApi(APIView):
    @extend_schema(
        tags=["customers"],
        summary="Customer profile with concept scores and recent purchases",
        parameters=[PSEUDONYM_PATH_PARAMETER],
        responses={200: s.CustomerDetailSerializer, 401: UNAUTHENTICATED, 404: NOT_FOUND},
    )
    def get(self, request: Request, pseudonym: str) -> Response:
        customer = _customer_or_404(request, pseudonym, with_concepts=True)
        purchases = selectors.customer_recent_purchases(user=request.user, customer=customer)
        context = {"request": request, "recent_purchases": purchases}
        return Response(s.CustomerDetailSerializer(customer, context=context).data)


class CustomerRecommendationsApi(APIView):
    @extend_schema(
        tags=["customers"],
        summary="Active recommendations of a customer, best first, with their explanations",
        description="Each item carries its explanation (null until generated): evidence, necessity, concepts, "
        "word attributions and confidence for every caller; the reason text only for callers allowed to read "
        "it (otherwise `reason` is null and `reason_status` is `under_review`), flags only for reviewers.",
        parameters=[PSEUDONYM_PATH_PARAMETER],
        responses={200: s.RecommendationSerializer(many=True), 401: UNAUTHENTICATED, 404: NOT_FOUND},
    )
    def get(self, request: Request, pseudonym: str) -> Response:
        customer = _customer_or_404(request, pseudonym)
        recommendations = selectors.recommendations_for_customer(user=request.user, customer=customer)
        context = {"request": request, "reason_withheld": _reason_withheld(request, recommendations)}
        return Response(s.RecommendationSerializer(recommendations, many=True, context=context).data)


def _reason_withheld(request: Request, recommendations) -> set[int]:
    """Return the ids of the A/B control recommendations whose reason a sales-only caller must not get."""
    control = control_recommendation_ids(recommendations=recommendations)
    # Only asked when it matters: the role check may cost a query.
    return control if control and is_sales_only(request.user) else set()


# --------------------------------------------------------------------------- imports


@extend_schema(
    tags=["imports"],
    summary="List import runs, newest first",
    responses={200: s.ImportRunSerializer(many=True), 400: BAD_QUERY, 401: UNAUTHENTICATED},
)
class ImportRunListApi(ListAPIView):
    serializer_class = s.ImportRunSerializer
    pagination_class = StrictBoundedLimitOffsetPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ImportRun.objects.none()
        return selectors.import_run_list(user=self.request.user)


class ImportRunRejectedRowsApi(APIView):
    permission_classes = [IsAuthenticated, MayReadRejectedRows]

    @extend_schema(
        tags=["imports"],
        summary="Download the rejected rows of an import run as CSV",
        parameters=[
            OpenApiParameter("import_run_id", OpenApiTypes.INT, OpenApiParameter.PATH, description=_("Import run id."))
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            401: UNAUTHENTICATED,
            403: OpenApiResponse(s.ErrorSerializer, description=_("Only managers and admins may download them.")),
            404: OpenApiResponse(s.ErrorSerializer, description=_("No such import run, or it rejected no rows.")),
        },
    )
    def get(self, request: Request, import_run_id: int) -> FileResponse:
        try:
            import_run = selectors.import_run_get(user=request.user, import_run_id=import_run_id)
        except ImportRun.DoesNotExist:
            raise NotFound(_("No such import run.")) from None
        path = selectors.import_run_rejected_rows_path(import_run=import_run)
        if path is None:
            raise NotFound(_("This import run has no rejected-rows file."))
        return FileResponse(
            path.open("rb"),
            as_attachment=True,
            filename=f"import-run-{import_run.pk}-rejected-rows.csv",
            content_type="text/csv; charset=utf-8",
        )
