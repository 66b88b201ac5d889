from django.urls import path

from explanations import description_views, views

urlpatterns = [
    path("review/", views.review_queue, name="review-queue"),
    path("review/bulk/", views.review_bulk, name="review-bulk"),
    path("review/<int:explanation_id>/", views.review_detail, name="review-detail"),
    path("review/<int:explanation_id>/action/", views.review_action, name="review-action"),
    path("review/<int:explanation_id>/edit/", views.review_edit, name="review-edit"),
    path(
        "customers/<str:pseudonym>/description/<str:action>/",
        description_views.customer_description_action,
        name="customer-description-action",
    ),
]
