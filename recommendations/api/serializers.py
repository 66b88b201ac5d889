"""Output serializers of the import-runs API (the customer API's are in ``sales.api.serializers``)."""

from __future__ import annotations

from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

# The import-run views document their error answers with DRF's bodies, defined once in core.
from core.api.serializers import VALIDATION_ERROR_SCHEMA, ErrorSerializer  # noqa: F401
from core.permissions import ADMIN, MANAGER, user_has_role
from recommendations.models import ImportRun


def may_read_rejected_rows(user) -> bool:
    """Managers and admins read rejected import rows; the permission comes from the role, never from is_staff."""
    return user_has_role(user, MANAGER, ADMIN)


class ImportRunSerializer(serializers.ModelSerializer):
    rejected_by_reason = serializers.DictField(
        child=serializers.IntegerField(), read_only=True, help_text=_("Rejected rows per reason code.")
    )
    accepted_by_kind = serializers.DictField(
        child=serializers.IntegerField(), read_only=True, help_text=_("Accepted rows per kind (sale, return, ...).")
    )
    rejected_rows_url = serializers.SerializerMethodField(
        help_text=_("Download link for the rejected rows; null when there are none or the caller may not read them.")
    )
    pii_by_type = serializers.DictField(
        child=serializers.IntegerField(),
        read_only=True,
        help_text=_("Rows whose description held personal data (scrubbed at import), per kind (pii:email, ...)."),
    )
    quarantined_products = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text=_("Stock codes held back from recommendations until a reviewer clears them."),
    )

    class Meta:
        model = ImportRun
        fields = [
            "id",
            "file_name",
            "file_sha256",
            "status",
            "started_at",
            "finished_at",
            "rows_read",
            "rows_accepted",
            "rows_inserted",
            "rows_duplicate",
            "rows_rejected",
            "rejected_by_reason",
            "accepted_by_kind",
            "customers_total",
            "products_total",
            "region_k",
            "pii_by_type",
            "quarantined_products",
            "rejected_rows_url",
            "error",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_rejected_rows_url(self, import_run: ImportRun) -> str | None:
        request = self.context.get("request")
        if not import_run.rejected_rows_file or request is None:
            return None
        if not may_read_rejected_rows(request.user):
            return None
        path = reverse("api-import-run-rejected-rows", kwargs={"import_run_id": import_run.pk})
        return request.build_absolute_uri(path)
