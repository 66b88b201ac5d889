"""REST API of the semantic product search (thin view over search.services and search.selectors)."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import customer_get
from core.api.serializers import ErrorSerializer
from core.permissions import ADMIN, MANAGER, REVIEWER, SALES, HasRole
from recommendations.models import Customer
from search import selectors, services


class SearchParamsSerializer(serializers.Serializer):
    q = serializers.CharField(max_length=selectors.QUERY_MAX_LENGTH, help_text=_("The query in plain words."))
    customer = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text=_("Re-rank towards this customer (pseudonym).")
    )
    limit = serializers.IntegerField(required=False, min_value=1, max_value=selectors.RESULTS_MAX, default=20)

    def validate_q(self, value: str) -> str:
        try:
            text = selectors.normalize_query(value)
        except selectors.InvalidSearch as exc:
            raise serializers.ValidationError(exc.message) from exc
        if not text:
            raise serializers.ValidationError(_("This field may not be blank."))
        return text


class SearchHitSerializer(serializers.Serializer):
    stock_code = serializers.CharField(source="product.stock_code")
    description = serializers.CharField(source="product.description")
    price_median = serializers.DecimalField(source="product.price_median", max_digits=12, decimal_places=3)
    score = serializers.FloatField(help_text=_("What the results are ordered by."))
    query_similarity = serializers.FloatField(help_text=_("Cosine similarity of the product to the query."))
    customer_similarity = serializers.FloatField(
        allow_null=True, help_text=_("Cosine similarity to the customer's vector (null without a customer).")
    )
    bought_before = serializers.BooleanField()
    recommended_rank = serializers.IntegerField(allow_null=True)


class ProductSearchApi(APIView):
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (SALES, REVIEWER, MANAGER, ADMIN)

    @extend_schema(
        tags=["search"],
        summary="Semantic product search",
        description="Encode the query with the sentence encoder (on a worker) and return the nearest products "
        "through the HNSW index; with `customer`, re-rank them towards that customer's vector. 503 when no "
        "worker answers.",
        parameters=[
            OpenApiParameter("q", OpenApiTypes.STR, required=True),
            OpenApiParameter("customer", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT),
        ],
        responses={
            200: SearchHitSerializer(many=True),
            400: OpenApiResponse(description=_("A malformed parameter.")),
            404: OpenApiResponse(ErrorSerializer, description=_("No such customer (or not visible to the caller).")),
            503: OpenApiResponse(ErrorSerializer, description=_("No worker encoded the query in time.")),
        },
    )
    def get(self, request: Request) -> Response:
        params = SearchParamsSerializer(data=request.query_params)
        if not params.is_valid():
            raise ValidationError(params.errors)
        data = params.validated_data
        customer = None
        if data.get("customer"):
            try:
                customer = customer_get(user=request.user, pseudonym=data["customer"])
            except Customer.DoesNotExist:
                raise NotFound(_("No customer with this pseudonym.")) from None
        try:
            vector = services.query_encode(data["q"])
        except services.SearchUnavailable as exc:
            return Response({"detail": exc.message, "code": exc.code}, status=503)
        hits = selectors.product_search(user=request.user, vector=vector, customer=customer, limit=data["limit"])
        return Response(SearchHitSerializer(hits, many=True).data)
