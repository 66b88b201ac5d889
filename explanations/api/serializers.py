"""Serializers of the review API: queue items, their history, and the reviewer's inputs."""

from __future__ import annotations

from django.conf import settings
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from explanations import selectors
from explanations.api.presentation import EvidenceRowSerializer, FlagSerializer
from explanations.models import Explanation, LocalizedReason, ReasonVersion, ReviewEvent
from explanations.presentation import evidence_lines
from explanations.review import can_approve
from explanations.services import review


class ReviewQueueParamsSerializer(serializers.Serializer):
    """Query parameters of the review queue."""

    status = serializers.ChoiceField(
        required=False, choices=selectors.QUEUE_STATUSES, default=Explanation.Status.PENDING_REVIEW
    )
    flag = serializers.ChoiceField(required=False, choices=list(selectors.FLAG_FILTERS), help_text=_("Flag filter."))
    confidence_min = serializers.FloatField(required=False, min_value=0, max_value=1)
    confidence_max = serializers.FloatField(required=False, min_value=0, max_value=1)
    consistency_min = serializers.FloatField(required=False, min_value=-1, max_value=1)
    consistency_max = serializers.FloatField(required=False, min_value=-1, max_value=1)
    min_age_hours = serializers.FloatField(
        required=False, min_value=0, max_value=24 * 3650, help_text=_("Only items waiting at least this long.")
    )
    region = serializers.CharField(required=False, allow_blank=True, max_length=64)
    sort = serializers.ChoiceField(required=False, choices=selectors.QUEUE_SORTS, default="oldest")

    def filters(self) -> selectors.ReviewQueueFilters:
        data = self.validated_data
        return selectors.ReviewQueueFilters(
            status=data.get("status") or Explanation.Status.PENDING_REVIEW,
            flag=data.get("flag"),
            confidence_min=data.get("confidence_min"),
            confidence_max=data.get("confidence_max"),
            consistency_min=data.get("consistency_min"),
            consistency_max=data.get("consistency_max"),
            min_age_hours=data.get("min_age_hours"),
            region=data.get("region") or None,
            sort=data.get("sort") or "oldest",
        )


class ReviewCustomerSerializer(serializers.Serializer):
    pseudonym = serializers.CharField(read_only=True)
    region = serializers.CharField(read_only=True)


class ReviewProductSerializer(serializers.Serializer):
    stock_code = serializers.CharField(read_only=True)
    description = serializers.CharField(read_only=True)


class LocalizedReasonSerializer(serializers.ModelSerializer):
    """The reason in another language than English, reviewed on its own (``language`` in the actions)."""

    flags = FlagSerializer(many=True, read_only=True)
    edited_by = serializers.SerializerMethodField(help_text=_("Who wrote the current text; null: the machine."))
    can_approve = serializers.SerializerMethodField(
        help_text=_("False when the caller wrote the current text: four-eyes, another reviewer has to approve it.")
    )

    class Meta:
        model = LocalizedReason
        fields = [
            "language",
            "status",
            "reason_text",
            "template_text",
            "flags",
            "edited_by",
            "can_approve",
            "review_requested_at",
        ]
        read_only_fields = fields

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_edited_by(self, text: LocalizedReason) -> str | None:
        editor = text.reason_edited_by
        return editor.get_username() if editor is not None else None

    @extend_schema_field(serializers.BooleanField())
    def get_can_approve(self, text: LocalizedReason) -> bool:
        request = self.context.get("request")
        return request is not None and can_approve(explanation=text, user=request.user)


class ReviewItemSerializer(serializers.ModelSerializer):
    """An explanation as a reviewer sees it: the text with its flags, the evidence and its age."""

    customer = ReviewCustomerSerializer(source="recommendation.customer", read_only=True)
    product = ReviewProductSerializer(source="recommendation.product", read_only=True)
    rank = serializers.IntegerField(source="recommendation.rank", read_only=True)
    score = serializers.FloatField(source="recommendation.score", read_only=True)
    flags = FlagSerializer(many=True, read_only=True)
    evidence = serializers.SerializerMethodField()
    edited_by = serializers.SerializerMethodField(help_text=_("Who wrote the current text; null: the machine."))
    can_approve = serializers.SerializerMethodField(
        help_text=_("False when the caller wrote the current text: four-eyes, another reviewer has to approve it.")
    )
    age_hours = serializers.SerializerMethodField(help_text=_("Hours since the text entered the queue."))
    overdue = serializers.SerializerMethodField(help_text=_("Waiting longer than the review SLA."))
    translations = serializers.SerializerMethodField(
        help_text=_("The reason in the other languages, each with its own review state (English is the item's own).")
    )

    class Meta:
        model = Explanation
        fields = [
            "id",
            "status",
            "customer",
            "product",
            "rank",
            "score",
            "reason_text",
            "template_text",
            "flags",
            "evidence",
            "confidence",
            "consistency",
            "edited_by",
            "can_approve",
            "review_requested_at",
            "age_hours",
            "overdue",
            "generated_at",
            "translations",
        ]
        read_only_fields = fields

    @extend_schema_field(LocalizedReasonSerializer(many=True))
    def get_translations(self, explanation: Explanation) -> list[dict]:
        texts = sorted(explanation.localized_reasons.all(), key=lambda t: t.language)  # prefetched by the selectors
        return LocalizedReasonSerializer(texts, many=True, context=self.context).data

    @extend_schema_field(EvidenceRowSerializer(many=True))
    def get_evidence(self, explanation: Explanation) -> list[dict]:
        # The same lines the review page shows (shares of the score, the aggregated rest, popularity).
        lines = evidence_lines(explanation.evidence or [], explanation.recommendation.score)
        return EvidenceRowSerializer(lines, many=True).data

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_edited_by(self, explanation: Explanation) -> str | None:
        editor = explanation.reason_edited_by
        return editor.get_username() if editor is not None else None

    @extend_schema_field(serializers.BooleanField())
    def get_can_approve(self, explanation: Explanation) -> bool:
        request = self.context.get("request")
        return request is not None and can_approve(explanation=explanation, user=request.user)

    def _age_hours(self, explanation: Explanation) -> float | None:
        if explanation.review_requested_at is None:
            return None
        return (timezone.now() - explanation.review_requested_at).total_seconds() / 3600

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_age_hours(self, explanation: Explanation) -> float | None:
        age = self._age_hours(explanation)
        return None if age is None else round(age, 2)

    @extend_schema_field(serializers.BooleanField())
    def get_overdue(self, explanation: Explanation) -> bool:
        age = self._age_hours(explanation)
        return (
            explanation.status == Explanation.Status.PENDING_REVIEW and age is not None and age >= selectors.sla_hours()
        )


class ReviewEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_name", read_only=True, help_text=_("Empty for the system."))

    class Meta:
        model = ReviewEvent
        fields = ["action", "language", "from_status", "to_status", "actor", "comment", "text_sha256", "created_at"]
        read_only_fields = fields


class ReasonVersionSerializer(serializers.ModelSerializer):
    author = serializers.CharField(source="author_name", read_only=True, help_text=_("Empty for the machine."))
    flags = FlagSerializer(many=True, read_only=True)

    class Meta:
        model = ReasonVersion
        fields = ["number", "source", "author", "language", "text", "sha256", "flags", "created_at"]
        read_only_fields = fields


class ReviewDetailSerializer(ReviewItemSerializer):
    """A review item with its audit events and every text version (oldest first)."""

    events = serializers.SerializerMethodField()
    versions = serializers.SerializerMethodField()

    class Meta(ReviewItemSerializer.Meta):
        fields = [*ReviewItemSerializer.Meta.fields, "events", "versions"]
        read_only_fields = fields

    @extend_schema_field(ReviewEventSerializer(many=True))
    def get_events(self, explanation: Explanation) -> list[dict]:
        return ReviewEventSerializer(selectors.review_events(explanation=explanation), many=True).data

    @extend_schema_field(ReasonVersionSerializer(many=True))
    def get_versions(self, explanation: Explanation) -> list[dict]:
        return ReasonVersionSerializer(selectors.reason_versions(explanation=explanation), many=True).data


def _language_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=settings.LANGUAGES,
        required=False,
        default=settings.LANGUAGE_CODE,
        help_text=_("The language of the text acted on (default English: the explanation's own text)."),
    )


class CommentInputSerializer(serializers.Serializer):
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    language = _language_field()


class EditInputSerializer(serializers.Serializer):
    text = serializers.CharField(max_length=review.MAX_REASON_CHARS, help_text=_("The new reason text."))
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")
    language = _language_field()


class BulkInputSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["approve", "reject"])
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=review.MAX_BULK_ITEMS
    )
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000, default="")


class BulkRefusalSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    reason = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    done = serializers.ListField(child=serializers.IntegerField())
    refused = BulkRefusalSerializer(many=True)


class ReviewErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    code = serializers.CharField()
