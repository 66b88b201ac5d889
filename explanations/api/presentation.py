"""Serializers of ``explanations.presentation``'s plain data: evidence lines and flags, as every API shows them.

Kept apart from the review API's serializers so that the customers API (``sales.api``) can render
them without importing the review workflow.
"""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from rest_framework import serializers


class EvidenceRowSerializer(serializers.Serializer):
    """A past purchase and its additive share of the score (an ``explanations.presentation.EvidenceLine``).

    The last rows may aggregate the other purchases, or be the non-personal popularity term (``kind``).
    """

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
    kind = serializers.ChoiceField(
        source="line_kind",
        choices=["purchase", "family", "self", "rest", "popularity"],
        read_only=True,
        help_text=_(
            "purchase: one past purchase; family: similar past purchases grouped (named by the largest); "
            "self: the recommended product itself, bought before; rest: the other purchases aggregated; "
            "popularity: the non-personal popularity term of the hybrid recommender."
        ),
    )
    family = serializers.CharField(read_only=True, default="", help_text=_("The family's common word, if grouped."))
    co_buyers_rate = serializers.FloatField(
        read_only=True,
        allow_null=True,
        default=None,
        help_text=_("Share of the customers who bought this purchase that also bought the recommended product."),
    )
    co_buyers = serializers.IntegerField(
        read_only=True, allow_null=True, default=None, help_text=_("Customers who bought this purchase.")
    )


class FlagSerializer(serializers.Serializer):
    """A finding of the automatic checks on the reason text (character offsets into it)."""

    code = serializers.CharField(read_only=True)
    message = serializers.CharField(read_only=True)
    start = serializers.IntegerField(read_only=True)
    end = serializers.IntegerField(read_only=True)
    text = serializers.CharField(read_only=True)
    severity = serializers.CharField(read_only=True)
