"""REST API of outcomes: list and record what sales did with a recommendation (thin views)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from outcomes.models import COMMENT_MAX_LENGTH, Outcome
from outcomes.selectors import outcome_list
from outcomes.services import outcome_record
from recommendations import selectors as customer_selectors
from recommendations.models import Customer, Recommendation, RecommendationBatch


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


PATH_PARAMETERS = [
    OpenApiParameter("pseudonym", OpenApiTypes.STR, OpenApiParameter.PATH),
    OpenApiParameter("recommendation_id", OpenApiTypes.INT, OpenApiParameter.PATH),
]


class RecommendationOutcomesApi(APIView):
    def _recommendation(self, request: Request, pseudonym: str, recommendation_id: int) -> Recommendation:
        try:
            customer = customer_selectors.customer_get(user=request.user, pseudonym=pseudonym)
        except Customer.DoesNotExist:
            raise NotFound(_("No customer with this pseudonym.")) from None
        recommendation = (
            Recommendation.objects.filter(
                pk=recommendation_id,
                customer=customer,
                batch__status__in=[RecommendationBatch.Status.ACTIVE, RecommendationBatch.Status.SUPERSEDED],
            )
            .select_related("batch")
            .first()
        )
        if recommendation is None:
            raise NotFound(_("No such recommendation for this customer."))
        return recommendation

    @extend_schema(
        tags=["outcomes"],
        summary="Outcomes recorded for a recommendation, newest first",
        parameters=PATH_PARAMETERS,
        responses={200: OutcomeSerializer(many=True), 404: OpenApiResponse(description=_("Not found."))},
    )
    def get(self, request: Request, pseudonym: str, recommendation_id: int) -> Response:
        recommendation = self._recommendation(request, pseudonym, recommendation_id)
        outcomes = outcome_list(user=request.user, customer_id=recommendation.customer_id).filter(
            recommendation=recommendation
        )
        return Response(OutcomeSerializer(outcomes, many=True).data)

    @extend_schema(
        tags=["outcomes"],
        summary="Record an outcome (sales only)",
        description="pitched / won / lost / not_relevant with an optional comment. The A/B arm the recommendation "
        "is in is stored with it. 201 for a new outcome, 200 when `client_token` was already used for it.",
        parameters=PATH_PARAMETERS,
        request=OutcomeCreateSerializer,
        responses={
            201: OutcomeSerializer,
            200: OutcomeSerializer,
            400: OpenApiResponse(description=_("Invalid kind, comment or token.")),
            403: OpenApiResponse(description=_("Not a sales person.")),
            404: OpenApiResponse(description=_("Not found.")),
        },
    )
    def post(self, request: Request, pseudonym: str, recommendation_id: int) -> Response:
        recommendation = self._recommendation(request, pseudonym, recommendation_id)
        body = OutcomeCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            outcome = outcome_record(user=request.user, recommendation=recommendation, **body.validated_data)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc) or None) from None
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None
        created = not getattr(outcome, "duplicate", False)
        return Response(
            OutcomeSerializer(outcome).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
