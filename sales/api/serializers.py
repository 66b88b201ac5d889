"""Serializers of the sales API: query parameters, customers, recommendation cards and outcomes.

The recommendation serializers render ``sales.presentation.Card`` objects: what a caller sees of an
explanation is decided there, once, for the page and the API alike; nothing here looks at an
Explanation.
"""

from __future__ import annotations

from django.core.validators import RegexValidator
from django.urls import reverse
from django.utils.functional import lazy
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.serializers import FiniteFloatField
from explanations.api.presentation import EvidenceRowSerializer, FlagSerializer
from explanations.models import Explanation
from outcomes.models import COMMENT_MAX_LENGTH, Outcome
from recommendations.models import Customer, Purchase
from recommendations.selectors import RECOMMENDATION_KINDS
from sales import selectors
from sales.presentation import REASON_STATUSES, ExplanationCard

# --------------------------------------------------------------------------- input


def _invalid_ordering_message() -> str:
    # Translated when the error is raised (the active language), not at import time.
    return gettext('"{input}" is not a valid ordering. Use one of: %(allowed)s.') % {
        "allowed": ", ".join(selectors.CUSTOMER_ORDERINGS)
    }


class RecommendationListParamsSerializer(serializers.Serializer):
    """Query parameters of a customer's recommendations."""

    kind = serializers.ChoiceField(
        choices=RECOMMENDATION_KINDS,
        required=False,
        help_text=_("reorder: only products the customer bought before; new: only products new to them."),
    )


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


# --------------------------------------------------------------------------- customers


def _absolute(serializer: serializers.Serializer, path: str) -> str:
    request = serializer.context.get("request")
    return request.build_absolute_uri(path) if request else path


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
        return _absolute(self, reverse("api-customer-detail", kwargs={"pseudonym": customer.pseudonym}))


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
    as_fact = serializers.BooleanField(
        read_only=True,
        default=False,
        help_text=_("False when the customer's own orders contradict the concept's rule: the score is then only "
                    "a similarity to the concept's profile."),
    )  # fmt: skip


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
        return _absolute(self, reverse("api-customer-recommendations", kwargs={"pseudonym": customer.pseudonym}))


# --------------------------------------------------------------------------- recommendation cards


class RecommendedProductSerializer(serializers.Serializer):
    stock_code = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)


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


def _word_shares(words) -> dict | None:
    if not words:
        return None  # none stored, or malformed (the page shows none either)
    return {"words": [w.word for w in words], "normalized": [w.share for w in words]}


class ExplanationSerializer(serializers.Serializer):
    """The explanation of one recommendation as the caller may see it (an ``ExplanationCard``)."""

    status = serializers.ChoiceField(choices=Explanation.Status.choices, read_only=True)
    reason = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text=_("The reason text; null while it is under review for the caller (see reason_status)."),
    )
    reason_status = serializers.ChoiceField(
        choices=REASON_STATUSES,
        read_only=True,
        help_text=_(
            "visible: the caller may read the reason; under_review: hidden until the review approves it; "
            "not_shown: an A/B control recommendation, shown to sales without a reason; from_evidence: the "
            "written reason was rejected or withdrawn, template_text (built from the evidence) is the reason; "
            "unavailable: the written reason was rejected or withdrawn and there is no template reason."
        ),
    )
    template_text = serializers.CharField(
        read_only=True,
        allow_null=True,
        help_text=_(
            "The deterministic reason built only from the evidence (shown while the reason is under review, "
            "and as the reason when the written one was refused); "
            "null for an A/B control recommendation shown to sales."
        ),
    )
    evidence = EvidenceRowSerializer(many=True, read_only=True)
    necessity = NecessitySerializer(
        read_only=True,
        allow_null=True,
        help_text=_("Null when it was not computed or no purchase was left out."),
    )
    concepts = ExplanationConceptSerializer(
        many=True, read_only=True, help_text=_("Concept sensitivities, shared concepts first.")
    )
    word_attributions = serializers.SerializerMethodField()
    consistency = FiniteFloatField(
        read_only=True,
        allow_null=True,
        help_text=_("Semantic consistency of the reason with the pair (cosine); null when the reason is hidden."),
    )
    confidence = FiniteFloatField(
        read_only=True,
        allow_null=True,
        help_text=_("Calibrated probability of a purchase within 90 days; null before calibration."),
    )
    confidence_band = serializers.CharField(
        source="confidence_view.band",
        read_only=True,
        allow_null=True,
        default=None,
        help_text=_("high, medium or low; null before calibration."),
    )
    confidence_meaning = serializers.CharField(
        source="confidence_view.meaning",
        read_only=True,
        allow_null=True,
        default=None,
        help_text=_("What the confidence figure means, in one line; null before calibration."),
    )
    flags = FlagSerializer(
        many=True,
        read_only=True,
        allow_null=True,
        help_text=_("Findings of the automatic checks; null for callers who do not review explanations."),
    )
    versions = serializers.DictField(
        child=serializers.JSONField(), read_only=True, help_text=_("Model and method versions used.")
    )
    generated_at = serializers.DateTimeField(read_only=True)

    @extend_schema_field(WordAttributionsSerializer)
    def get_word_attributions(self, card: ExplanationCard) -> dict:
        evidence = _word_shares(card.evidence_words)
        if evidence is not None:
            evidence["product_id"] = card.evidence_words_product_id
        return {"product": _word_shares(card.product_words), "evidence": evidence}


class RecommendationSerializer(serializers.Serializer):
    """A recommendation card (``sales.presentation.Card``)."""

    rank = serializers.IntegerField(read_only=True)
    score = FiniteFloatField(
        read_only=True, allow_null=True, help_text=_("Cosine similarity of customer and product (null if undefined).")
    )
    product = RecommendedProductSerializer(source="*", read_only=True)
    kind = serializers.ChoiceField(
        choices=RECOMMENDATION_KINDS,
        read_only=True,
        help_text=_("reorder: the customer bought this product before; new: they never did."),
    )
    history = serializers.CharField(
        read_only=True,
        help_text=_("The customer's history with the product: orders, the last one and the usual interval."),
    )
    generated_at = serializers.DateTimeField(read_only=True)
    explanation = ExplanationSerializer(
        read_only=True, allow_null=True, help_text=_("Null until the recommendation has been explained.")
    )


# --------------------------------------------------------------------------- outcomes


class OutcomeSerializer(serializers.ModelSerializer):
    recorded_by = serializers.CharField(source="user.get_username", default=None, read_only=True)
    stock_code = serializers.CharField(source="product.stock_code", read_only=True)

    class Meta:
        model = Outcome
        fields = ["id", "recommendation", "stock_code", "kind", "comment", "explained", "recorded_by", "created_at"]
        read_only_fields = fields


class OutcomeCreateSerializer(serializers.Serializer):
    kind = serializers.ChoiceField(choices=Outcome.Kind.choices)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=COMMENT_MAX_LENGTH, default="")
    client_token = serializers.UUIDField(
        required=False,
        allow_null=True,
        help_text=_(
            "Idempotency token: sending the same token again returns the first outcome (200) instead of a new one."
        ),
    )
