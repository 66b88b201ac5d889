"""REST API of the sales side: customers, their recommendation cards and outcomes (thin views over selectors)."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.api.serializers import VALIDATION_ERROR_SCHEMA, ErrorSerializer
from core.api.views import UNAUTHENTICATED
from core.pagination import StrictBoundedLimitOffsetPagination
from outcomes.selectors import control_recommendation_ids, outcome_list
from outcomes.services import outcome_record
from recommendations.models import Customer, Recommendation
from recommendations.selectors import customer_recent_purchases
from sales import selectors
from sales.api import serializers as s
from sales.cache import cached_cards
from sales.presentation import recommendation_cards, viewer_for

PSEUDONYM_PATH_PARAMETER = OpenApiParameter(
    "pseudonym", OpenApiTypes.STR, OpenApiParameter.PATH, description=_("The customer's pseudonym.")
)
NOT_FOUND = OpenApiResponse(
    ErrorSerializer, description=_("No customer with this pseudonym (or not visible to the caller).")
)
BAD_QUERY = OpenApiResponse(
    VALIDATION_ERROR_SCHEMA, description=_("A malformed query parameter; the body names it and says why.")
)


def _customer_or_404(
    request: Request, pseudonym: str, *, with_concepts: bool = False, with_versions: bool = False,
    with_counts: bool = True,
) -> Customer:  # fmt: skip
    try:
        return selectors.customer_get(
            user=request.user, pseudonym=pseudonym, with_concepts=with_concepts, with_versions=with_versions,
            with_counts=with_counts,
        )  # fmt: skip
    except Customer.DoesNotExist:
        raise NotFound(_("No customer with this pseudonym.")) from None


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
        purchases = customer_recent_purchases(user=request.user, customer=customer)
        context = {"request": request, "recent_purchases": purchases}
        return Response(s.CustomerDetailSerializer(customer, context=context).data)


class CustomerRecommendationsApi(APIView):
    @extend_schema(
        tags=["customers"],
        summary="Active recommendations of a customer, best first, with their explanations",
        description="Each item is the recommendation card the customer page shows (`sales.presentation`): its "
        "explanation (null until generated) with evidence, necessity, concepts, word attributions and confidence "
        "for every caller; the reason text only for callers allowed to read it (otherwise `reason` is null, "
        "`reason_status` is `under_review` and `template_text` is the reason built from the evidence alone), "
        "flags only for reviewers.",
        parameters=[PSEUDONYM_PATH_PARAMETER, s.RecommendationListParamsSerializer],
        responses={200: s.RecommendationSerializer(many=True), 400: BAD_QUERY, 401: UNAUTHENTICATED, 404: NOT_FOUND},
    )
    def get(self, request: Request, pseudonym: str) -> Response:
        params = s.RecommendationListParamsSerializer(data=request.query_params)
        params.is_valid(raise_exception=True)
        kind = params.validated_data.get("kind")
        customer = _customer_or_404(request, pseudonym, with_versions=True, with_counts=False)
        viewer = viewer_for(request.user)

        def build() -> list:
            recommendations = selectors.recommendations_for_customer(
                user=request.user, customer=customer, kind=kind, language=viewer.language
            )
            cards = recommendation_cards(
                recommendations=recommendations,
                viewer=viewer,
                # Read without assigning: an API read is not an exposure of the A/B test.
                control_ids=control_recommendation_ids(recommendations=recommendations),
            )
            return list(s.RecommendationSerializer(cards, many=True).data)

        # The serialized cards are cached by their versions, the filter, the language and the caller's roles
        # (sales.cache).
        data, _hit = cached_cards(kind=f"api:{kind or 'all'}", customer=customer, viewer=viewer, build=build)
        return Response(data)


# --------------------------------------------------------------------------- outcomes

OUTCOME_PATH_PARAMETERS = [
    OpenApiParameter("pseudonym", OpenApiTypes.STR, OpenApiParameter.PATH),
    OpenApiParameter("recommendation_id", OpenApiTypes.INT, OpenApiParameter.PATH),
]


class RecommendationOutcomesApi(APIView):
    def _recommendation(self, request: Request, pseudonym: str, recommendation_id: int) -> Recommendation:
        try:
            return selectors.recommendation_for_outcome(
                user=request.user, pseudonym=pseudonym, recommendation_id=recommendation_id
            )
        except Customer.DoesNotExist:
            raise NotFound(_("No customer with this pseudonym.")) from None
        except Recommendation.DoesNotExist:
            raise NotFound(_("No such recommendation for this customer.")) from None

    @extend_schema(
        tags=["outcomes"],
        summary="Outcomes recorded for a recommendation, newest first",
        parameters=OUTCOME_PATH_PARAMETERS,
        responses={200: s.OutcomeSerializer(many=True), 404: OpenApiResponse(description=_("Not found."))},
    )
    def get(self, request: Request, pseudonym: str, recommendation_id: int) -> Response:
        recommendation = self._recommendation(request, pseudonym, recommendation_id)
        outcomes = outcome_list(user=request.user, customer_id=recommendation.customer_id).filter(
            recommendation=recommendation
        )
        return Response(s.OutcomeSerializer(outcomes, many=True).data)

    @extend_schema(
        tags=["outcomes"],
        summary="Record an outcome (sales only)",
        description="pitched / won / lost / not_relevant with an optional comment. The A/B arm the recommendation "
        "is in is stored with it. 201 for a new outcome, 200 when `client_token` was already used for it.",
        parameters=OUTCOME_PATH_PARAMETERS,
        request=s.OutcomeCreateSerializer,
        responses={
            201: s.OutcomeSerializer,
            200: s.OutcomeSerializer,
            400: OpenApiResponse(description=_("Invalid kind, comment or token.")),
            403: OpenApiResponse(description=_("Not a sales person.")),
            404: OpenApiResponse(description=_("Not found.")),
        },
    )
    def post(self, request: Request, pseudonym: str, recommendation_id: int) -> Response:
        recommendation = self._recommendation(request, pseudonym, recommendation_id)
        body = s.OutcomeCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        try:
            outcome = outcome_record(user=request.user, recommendation=recommendation, **body.validated_data)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc) or None) from None
        except DjangoValidationError as exc:
            raise ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages) from None
        created = not getattr(outcome, "duplicate", False)
        return Response(
            s.OutcomeSerializer(outcome).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )
