from django.urls import path, re_path

from explanations.api import views

urlpatterns = [
    path("review/", views.ReviewQueueApi.as_view(), name="api-review-queue"),
    path("review/bulk/", views.ReviewBulkApi.as_view(), name="api-review-bulk"),
    path("review/<int:explanation_id>/", views.ReviewDetailApi.as_view(), name="api-review-detail"),
    path("review/<int:explanation_id>/edit/", views.ReviewEditApi.as_view(), name="api-review-edit"),
    re_path(
        r"^review/(?P<explanation_id>[0-9]+)/(?P<action>approve|reject|request-changes|withdraw)/$",
        views.ReviewActionApi.as_view(),
        name="api-review-action",
    ),
]
