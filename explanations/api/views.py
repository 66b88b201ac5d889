"""Review API (role reviewer): the pending queue, one item with its history, and the transitions."""

from __future__ import annotations

from django.utils.translation import gettext_lazy as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotFound
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.pagination import StrictBoundedLimitOffsetPagination
from core.permissions import ADMIN, REVIEWER, HasRole
from explanations import selectors
from explanations.api import serializers as s
from explanations.models import Explanation
from explanations.services import review

# How each refusal of the review service is answered.
ERROR_STATUS = {
    review.ReviewError.FORBIDDEN: status.HTTP_403_FORBIDDEN,
    review.ReviewError.FOUR_EYES: status.HTTP_403_FORBIDDEN,
    review.ReviewError.NOT_FOUND: status.HTTP_404_NOT_FOUND,
    review.ReviewError.NOT_ALLOWED: status.HTTP_409_CONFLICT,
    review.ReviewError.FLAGGED: status.HTTP_409_CONFLICT,
    review.ReviewError.COMMENT_REQUIRED: status.HTTP_400_BAD_REQUEST,
    review.ReviewError.INVALID_TEXT: status.HTTP_400_BAD_REQUEST,
}
# URL action -> the model's transition name.
URL_ACTIONS = {"approve": "approve", "reject": "reject", "request-changes": "request_changes", "withdraw": "withdraw"}

ID_PARAMETER = OpenApiParameter("explanation_id", OpenApiTypes.INT, OpenApiParameter.PATH)
REFUSED = {
    400: OpenApiResponse(s.ReviewErrorSerializer, description=_("A comment is required, or the text is invalid.")),
    403: OpenApiResponse(s.ReviewErrorSerializer, description=_("Not a reviewer, or four-eyes: you edited it.")),
    404: OpenApiResponse(s.ReviewErrorSerializer, description=_("No such explanation.")),
    409: OpenApiResponse(s.ReviewErrorSerializer, description=_("Not possible from the current state.")),
}


def _refused(exc: review.ReviewError) -> Response:
    return Response({"detail": exc.message, "code": exc.code}, status=ERROR_STATUS[exc.code])


def _item(request: Request, explanation_id: int) -> Response:
    try:
        explanation = selectors.review_explanation_get(user=request.user, explanation_id=explanation_id)
    except Explanation.DoesNotExist:
        raise NotFound(_("No such explanation.")) from None
    return Response(s.ReviewDetailSerializer(explanation, context={"request": request}).data)


class ReviewerApi(APIView):
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (REVIEWER, ADMIN)


@extend_schema(
    tags=["review"],
    summary="The review queue",
    description="Explanations of the active batch waiting for review (or for changes), oldest first by default.",
    parameters=[s.ReviewQueueParamsSerializer],
    responses={200: s.ReviewItemSerializer(many=True)},
)
class ReviewQueueApi(ListAPIView):
    permission_classes = [IsAuthenticated, HasRole]
    required_roles = (REVIEWER, ADMIN)
    serializer_class = s.ReviewItemSerializer
    pagination_class = StrictBoundedLimitOffsetPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Explanation.objects.none()
        params = s.ReviewQueueParamsSerializer(data=self.request.query_params)
        params.is_valid(raise_exception=True)
        return selectors.review_queue(user=self.request.user, filters=params.filters())


class ReviewDetailApi(ReviewerApi):
    @extend_schema(
        tags=["review"],
        summary="One explanation with its audit events and text versions",
        parameters=[ID_PARAMETER],
        responses={200: s.ReviewDetailSerializer, 404: REFUSED[404]},
    )
    def get(self, request: Request, explanation_id: int) -> Response:
        return _item(request, explanation_id)


class ReviewActionApi(ReviewerApi):
    @extend_schema(
        tags=["review"],
        summary="Approve, reject, request changes or withdraw",
        description="Approval is refused to whoever wrote the current text (four-eyes), and needs a comment "
        "when the automatic checks found an error. Reject, request-changes and withdraw need a comment.",
        parameters=[
            ID_PARAMETER,
            OpenApiParameter("action", OpenApiTypes.STR, OpenApiParameter.PATH, enum=list(URL_ACTIONS)),
        ],
        request=s.CommentInputSerializer,
        responses={200: s.ReviewDetailSerializer, **REFUSED},
    )
    def post(self, request: Request, explanation_id: str, action: str) -> Response:
        explanation_id = int(explanation_id)  # the pattern admits digits only
        data = s.CommentInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        service = review.ACTIONS[URL_ACTIONS[action]]
        try:
            service(
                user=request.user,
                explanation_id=explanation_id,
                comment=data.validated_data["comment"],
                language=data.validated_data["language"],
            )
        except review.ReviewError as exc:
            return _refused(exc)
        return _item(request, explanation_id)


class ReviewEditApi(ReviewerApi):
    @extend_schema(
        tags=["review"],
        summary="Replace the reason text with an edit",
        description="The edit is checked again (PII, policy terms, entities), kept as a new version and queued "
        "for review by another reviewer; its consistency is re-measured in the background (null until then).",
        parameters=[ID_PARAMETER],
        request=s.EditInputSerializer,
        responses={200: s.ReviewDetailSerializer, **REFUSED},
    )
    def post(self, request: Request, explanation_id: int) -> Response:
        data = s.EditInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            review.explanation_edit(
                user=request.user,
                explanation_id=explanation_id,
                text=data.validated_data["text"],
                comment=data.validated_data["comment"],
                language=data.validated_data["language"],
            )
        except review.ReviewError as exc:
            return _refused(exc)
        return _item(request, explanation_id)


class ReviewBulkApi(ReviewerApi):
    @extend_schema(
        tags=["review"],
        summary="Approve or reject many items",
        description="Each item changes in its own transaction. Bulk approval takes only unflagged items the caller "
        "did not edit; the others are listed in `refused` with the reason. Rejection needs a comment.",
        request=s.BulkInputSerializer,
        responses={200: s.BulkResultSerializer, 400: REFUSED[400]},
    )
    def post(self, request: Request) -> Response:
        data = s.BulkInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            result = review.explanations_bulk(
                user=request.user,
                action=data.validated_data["action"],
                explanation_ids=data.validated_data["ids"],
                comment=data.validated_data["comment"],
            )
        except review.ReviewError as exc:
            return _refused(exc)
        refused = [{"id": i, "reason": reason} for i, reason in result.refused]
        return Response(s.BulkResultSerializer({"done": result.done, "refused": refused}).data)
