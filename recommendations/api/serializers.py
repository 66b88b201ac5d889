"""Input (query parameter) and output serializers of the recommendations API."""

from __future__ import annotations

from django.urls import reverse
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from recommendations import selectors
from recommendations.models import Customer, ImportRun, Purchase, Recommendation

# --------------------------------------------------------------------------- input


def _invalid_ordering_message() -> str:
    # Translated when the error is raised (the active language), not at import time.
    return gettext('"{input}" is not a valid ordering. Use one of: %(allowed)s.') % {
        "allowed": ", ".join(selectors.CUSTOMER_ORDERINGS)
    }


class CustomerListParamsSerializer(serializers.Serializer):
    """Query parameters of the customer list."""

    region = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text=_("Exact region name; empty = all regions.")
    )
    pseudonym = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=selectors.PSEUDONYM_SEARCH_MAX_LENGTH,
        help_text=_("Pseudonym prefix (hexadecimal, case-insensitive)."),
    )
    ordering = serializers.ChoiceField(
        required=False,
        choices=selectors.CUSTOMER_ORDERINGS,
        help_text=_("Sort key; a leading '-' sorts descending. Default: -last_purchase_at."),
        error_messages={"invalid_choice": lazy(_invalid_ordering_message, str)()},
    )

    def validate_pseudonym(self, value: str) -> str | None:
        try:
            return selectors.normalize_pseudonym_search(value)
        except selectors.InvalidCustomerQuery as exc:
            raise serializers.ValidationError(exc.message) from exc


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)


class ErrorSerializer(serializers.Serializer):
    """DRF's error body for 401/403/404/429."""

    detail = serializers.CharField(read_only=True)


# DRF's 400 body: each offending parameter (or non_field_errors) mapped to its messages.
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


# --------------------------------------------------------------------------- output


class CustomerListItemSerializer(serializers.ModelSerializer):
    recommendation_count = serializers.IntegerField(
        read_only=True, help_text=_("Recommendations for this customer in the active batch.")
    )
    url = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = [
            "pseudonym",
            "region",
            "first_purchase_at",
            "last_purchase_at",
            "order_count",
            "revenue",
            "recommendation_count",
            "url",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.URI)
    def get_url(self, customer: Customer) -> str:
        path = reverse("api-customer-detail", kwargs={"pseudonym": customer.pseudonym})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class PurchaseSummarySerializer(serializers.ModelSerializer):
    stock_code = serializers.CharField(source="product.stock_code", read_only=True)

    class Meta:
        model = Purchase
        fields = ["occurred_at", "invoice", "stock_code", "description", "quantity", "unit_price", "kind"]
        read_only_fields = fields


class CustomerDetailSerializer(CustomerListItemSerializer):
    recent_purchases = serializers.SerializerMethodField()
    recommendations_url = serializers.SerializerMethodField()

    class Meta(CustomerListItemSerializer.Meta):
        fields = [*CustomerListItemSerializer.Meta.fields, "recommendations_url", "recent_purchases"]
        read_only_fields = fields

    @extend_schema_field(PurchaseSummarySerializer(many=True))
    def get_recent_purchases(self, customer: Customer) -> list[dict]:
        purchases = self.context["recent_purchases"]
        return PurchaseSummarySerializer(purchases, many=True, context=self.context).data

    @extend_schema_field(OpenApiTypes.URI)
    def get_recommendations_url(self, customer: Customer) -> str:
        path = reverse("api-customer-recommendations", kwargs={"pseudonym": customer.pseudonym})
        request = self.context.get("request")
        return request.build_absolute_uri(path) if request else path


class RecommendedProductSerializer(serializers.Serializer):
    stock_code = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)


class RecommendationSerializer(serializers.ModelSerializer):
    product = RecommendedProductSerializer(read_only=True)

    class Meta:
        model = Recommendation
        fields = ["rank", "score", "product", "generated_at"]
        read_only_fields = fields


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
            "rejected_rows_url",
            "error",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.URLField(allow_null=True))
    def get_rejected_rows_url(self, import_run: ImportRun) -> str | None:
        request = self.context.get("request")
        if not import_run.rejected_rows_file or request is None:
            return None
        if not selectors.user_is_staff_or_manager(user=request.user):
            return None
        path = reverse("api-import-run-rejected-rows", kwargs={"import_run_id": import_run.pk})
        return request.build_absolute_uri(path)
