"""Input (query parameter) and output serializers of the recommendations API."""

from __future__ import annotations

import math

from django.conf import settings
from django.core.validators import RegexValidator
from django.urls import reverse
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.permissions import ADMIN, MANAGER, user_has_role
from explanations.models import Explanation
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
        # The alphabet is in the schema, and checked on the value as sent (untrimmed), like the length.
        trim_whitespace=False,
        validators=[RegexValidator(r"^[0-9a-fA-F]*$", _("Pseudonyms contain only the characters 0-9 and a-f."))],
    )
    ordering = serializers.ChoiceField(
        required=False,
        choices=selectors.CUSTOMER_ORDERINGS,
        help_text=_("Sort key; a leading '-' sorts descending. Default: -last_purchase_at."),
        error_messages={"invalid_choice": lazy(_invalid_ordering_message, str)()},
    )

    def validate(self, attrs: dict) -> dict:
        # An empty ordering would silently mean the default: answer it like any other invalid value.
        if self.initial_data.get("ordering", None) == "":
            raise serializers.ValidationError({"ordering": [lazy(_invalid_ordering_message, str)().format(input="")]})
        return attrs

    def validate_pseudonym(self, value: str) -> str | None:
        try:
            return selectors.normalize_pseudonym_search(value)
        except selectors.InvalidCustomerQuery as exc:
            raise serializers.ValidationError(exc.message) from exc


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField(read_only=True)


class FiniteFloatField(serializers.FloatField):
    """A float that is null when not finite: NaN and infinity are not JSON, and a batch could store them."""

    def to_representation(self, value):
        value = super().to_representation(value)
        return value if math.isfinite(value) else None


class TokenRequestSerializer(serializers.Serializer):
    """The body of POST /api/auth/token/ as documented (DRF's AuthTokenSerializer validates it)."""

    username = serializers.CharField(min_length=1, max_length=150)
    password = serializers.CharField(min_length=1, max_length=4096, style={"input_type": "password"})


class ErrorSerializer(serializers.Serializer):
    """DRF's error body for 401/403/404/429."""

    detail = serializers.CharField(read_only=True)


# DRF's 400 body: each offending parameter (or non_field_errors) mapped to its messages.
VALIDATION_ERROR_SCHEMA = {
    "type": "object",
    # A body that is not JSON at all is answered with {"detail": "JSON parse error - ..."}.
    "properties": {"detail": {"type": "string"}},
    "additionalProperties": {"type": "array", "items": {"type": "string"}},
}


# --------------------------------------------------------------------------- output


class CustomerListItemSerializer(serializers.ModelSerializer):
    recommendation_count = serializers.IntegerField(
        read_only=True, help_text=_("Recommendations for this customer in the active batch.")
    )
    explained_count = serializers.IntegerField(
        read_only=True, help_text=_("How many of those recommendations have a generated explanation.")
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
            "explained_count",
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


class CustomerConceptSerializer(serializers.Serializer):
    """One of the customer's concept scores with its 90% bootstrap interval."""

    name = serializers.CharField(read_only=True)
    score = serializers.FloatField(read_only=True, help_text=_("Concept score of the customer (0-1)."))
    low = serializers.FloatField(read_only=True, help_text=_("Lower end of the 90% interval."))
    high = serializers.FloatField(read_only=True, help_text=_("Upper end of the 90% interval."))


class CustomerDetailSerializer(CustomerListItemSerializer):
    # customer_get(with_concepts=True) annotates the scores; a customer without them has none.
    concepts = CustomerConceptSerializer(
        source="concept_scores",
        many=True,
        read_only=True,
        default=list,
        help_text=_("The customer's scores on the usable concepts, highest first."),
    )
    recent_purchases = serializers.SerializerMethodField()
    recommendations_url = serializers.SerializerMethodField()

    class Meta(CustomerListItemSerializer.Meta):
        fields = [
            *CustomerListItemSerializer.Meta.fields,
            "concepts",
            "recommendations_url",
            "recent_purchases",
        ]
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


REASON_VISIBLE = "visible"
REASON_UNDER_REVIEW = "under_review"
# The recommendation is in the A/B control arm: sales never get its reason (outcomes.services).
REASON_NOT_SHOWN = "not_shown"


class EvidenceRowSerializer(serializers.Serializer):
    """A past purchase and its additive share of the score; the last row may aggregate the rest."""

    product_id = serializers.IntegerField(
        read_only=True, allow_null=True, help_text=_("Null for the aggregated 'other purchases' row.")
    )
    stock_code = serializers.CharField(read_only=True, allow_null=True, default=None)
    description = serializers.CharField(read_only=True)
    weight = serializers.FloatField(
        read_only=True, allow_null=True, default=None, help_text=_("Recency/quantity weight in the profile.")
    )
    share = serializers.FloatField(read_only=True, help_text=_("Share of the score; all shares add up to it."))
    count = serializers.IntegerField(
        read_only=True, allow_null=True, default=None, help_text=_("Purchases aggregated in this row.")
    )


class NecessitySerializer(serializers.Serializer):
    """Counterfactual: the recommendation recomputed without the top evidence purchases."""

    removed = serializers.ListField(
        child=serializers.IntegerField(), read_only=True, help_text=_("Product ids left out of the profile.")
    )
    drops_out = serializers.BooleanField(read_only=True, help_text=_("Whether the item leaves the top N."))
    new_rank = serializers.IntegerField(read_only=True, allow_null=True, help_text=_("Rank without them, or null."))
    counterfactual_score = serializers.FloatField(read_only=True, allow_null=True, default=None)
    top_n = serializers.IntegerField(read_only=True, help_text=_("Length of the recommendation list (N)."))


class ExplanationConceptSerializer(serializers.Serializer):
    concept = serializers.CharField(read_only=True)
    customer_score = serializers.FloatField(read_only=True)
    low = serializers.FloatField(read_only=True)
    high = serializers.FloatField(read_only=True)
    sensitivity = serializers.FloatField(
        read_only=True, help_text=_("Cosine of the item with the concept direction (positive: points along it).")
    )
    shared = serializers.BooleanField(read_only=True, help_text=_("The customer scores high and the item fits."))


class WordSharesSerializer(serializers.Serializer):
    """Words of a description and their normalized SIG attributions (absolute values add up to 1)."""

    words = serializers.ListField(child=serializers.CharField(), read_only=True)
    normalized = serializers.ListField(child=serializers.FloatField(), read_only=True)


class EvidenceWordSharesSerializer(WordSharesSerializer):
    product_id = serializers.IntegerField(read_only=True, help_text=_("The evidence purchase explained."))


class WordAttributionsSerializer(serializers.Serializer):
    product = WordSharesSerializer(read_only=True, allow_null=True, help_text=_("The recommended product."))
    evidence = EvidenceWordSharesSerializer(read_only=True, allow_null=True, help_text=_("The top evidence."))


class FlagSerializer(serializers.Serializer):
    """A finding of the automatic checks on the reason text (character offsets into it)."""

    code = serializers.CharField(read_only=True)
    message = serializers.CharField(read_only=True)
    start = serializers.IntegerField(read_only=True)
    end = serializers.IntegerField(read_only=True)
    text = serializers.CharField(read_only=True)
    severity = serializers.CharField(read_only=True)


def _word_shares(data: dict | None, *, with_product: bool = False) -> dict | None:
    if not data or not data.get("words"):
        return None
    out = {"words": list(data["words"]), "normalized": [float(x) for x in data.get("normalized", [])]}
    if with_product:
        out["product_id"] = data.get("product_id")
    return out


class ExplanationSerializer(serializers.Serializer):
    """The explanation of one recommendation as the caller may see it (needs ``request`` in the context)."""

    status = serializers.ChoiceField(choices=Explanation.Status.choices, read_only=True)
    reason = serializers.SerializerMethodField(
        help_text=_("The reason text; null while it is under review for the caller (see reason_status).")
    )
    reason_status = serializers.SerializerMethodField(
        help_text=_(
            "visible: the caller may read the reason; under_review: hidden until the review approves it; "
            "not_shown: an A/B control recommendation, shown to sales without a reason."
        )
    )
    template_text = serializers.SerializerMethodField(
        help_text=_("The deterministic reason built only from the evidence; hidden like the reason.")
    )
    evidence = EvidenceRowSerializer(many=True, read_only=True)
    necessity = serializers.SerializerMethodField()
    concepts = serializers.SerializerMethodField(help_text=_("Concept sensitivities, shared concepts first."))
    word_attributions = serializers.SerializerMethodField()
    consistency = FiniteFloatField(
        read_only=True, allow_null=True, help_text=_("Semantic consistency of the reason with the pair (cosine).")
    )
    confidence = FiniteFloatField(
        read_only=True,
        allow_null=True,
        help_text=_("Calibrated probability of a purchase within 90 days; null before calibration."),
    )
    flags = serializers.SerializerMethodField(
        help_text=_("Findings of the automatic checks; null for callers who do not review explanations.")
    )
    versions = serializers.DictField(
        child=serializers.JSONField(), read_only=True, help_text=_("Model and method versions used.")
    )
    generated_at = serializers.DateTimeField(read_only=True)

    def _reason_visible(self, explanation: Explanation) -> bool:
        # Decided once per explanation and serializer; the selector caches the user's groups.
        cache = self.context.setdefault("_reason_visible", {})
        if explanation.pk not in cache:
            cache[explanation.pk] = explanation.recommendation_id not in self.context.get(
                "reason_withheld", ()
            ) and selectors.reason_visible_to(self.context["request"].user, explanation)
        return cache[explanation.pk]

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_reason(self, explanation: Explanation) -> str | None:
        if not self._reason_visible(explanation):
            return None
        return explanation.reason_text or None

    @extend_schema_field(serializers.ChoiceField(choices=[REASON_VISIBLE, REASON_UNDER_REVIEW, REASON_NOT_SHOWN]))
    def get_reason_status(self, explanation: Explanation) -> str:
        if explanation.recommendation_id in self.context.get("reason_withheld", ()):
            return REASON_NOT_SHOWN
        return REASON_VISIBLE if self._reason_visible(explanation) else REASON_UNDER_REVIEW

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_template_text(self, explanation: Explanation) -> str | None:
        if not self._reason_visible(explanation):
            return None
        return explanation.template_text or None

    @extend_schema_field(NecessitySerializer(allow_null=True))
    def get_necessity(self, explanation: Explanation) -> dict | None:
        data = explanation.necessity or {}
        if "drops_out" not in data:
            return None
        top_n = explanation.recommendation.batch.params.get("top_n") or settings.ELM_RECOMMENDATIONS_PER_CUSTOMER
        return NecessitySerializer({**data, "top_n": int(top_n)}).data

    @extend_schema_field(ExplanationConceptSerializer(many=True))
    def get_concepts(self, explanation: Explanation) -> list[dict]:
        return ExplanationConceptSerializer(selectors.explanation_concepts(explanation), many=True).data

    @extend_schema_field(WordAttributionsSerializer)
    def get_word_attributions(self, explanation: Explanation) -> dict:
        data = explanation.word_attributions or {}
        return {
            "product": _word_shares(data.get("product")),
            "evidence": _word_shares(data.get("evidence"), with_product=True),
        }

    @extend_schema_field(FlagSerializer(many=True, allow_null=True))
    def get_flags(self, explanation: Explanation) -> list[dict] | None:
        if not selectors.user_is_reviewer(user=self.context["request"].user):
            return None
        return FlagSerializer(explanation.flags or [], many=True).data


class RecommendationSerializer(serializers.ModelSerializer):
    product = RecommendedProductSerializer(read_only=True)
    score = FiniteFloatField(
        read_only=True, allow_null=True, help_text=_("Cosine similarity of customer and product (null if undefined).")
    )
    explanation = serializers.SerializerMethodField(help_text=_("Null until the recommendation has been explained."))

    class Meta:
        model = Recommendation
        fields = ["rank", "score", "product", "generated_at", "explanation"]
        read_only_fields = fields

    @extend_schema_field(ExplanationSerializer(allow_null=True))
    def get_explanation(self, recommendation: Recommendation) -> dict | None:
        explanation = selectors.explanation_or_none(recommendation)
        if explanation is None:
            return None
        return ExplanationSerializer(explanation, context=self.context).data


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
