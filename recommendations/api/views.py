"""REST API of import runs: the list and the rejected-rows download (thin views over selectors).

The customer API is in ``sales.api``, the token exchange in ``core.api``.
"""

from __future__ import annotations

from django.http import FileResponse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from core.api.views import UNAUTHENTICATED
from core.pagination import StrictBoundedLimitOffsetPagination
from recommendations import selectors
from recommendations.api import serializers as s
from recommendations.models import ImportRun

BAD_QUERY = OpenApiResponse(
    s.VALIDATION_ERROR_SCHEMA, description=_("A malformed query parameter; the body names it and says why.")
)


class MayReadRejectedRows(BasePermission):
    message = _("Only managers and admins may download rejected rows.")

    def has_permission(self, request: Request, view: APIView) -> bool:
        return s.may_read_rejected_rows(request.user)


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
