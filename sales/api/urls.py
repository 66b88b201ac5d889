from django.urls import path

from sales.api import views

urlpatterns = [
    path("customers/", views.CustomerListApi.as_view(), name="api-customer-list"),
    path("customers/<str:pseudonym>/", views.CustomerDetailApi.as_view(), name="api-customer-detail"),
    path(
        "customers/<str:pseudonym>/recommendations/",
        views.CustomerRecommendationsApi.as_view(),
        name="api-customer-recommendations",
    ),
    path(
        "customers/<str:pseudonym>/recommendations/<int:recommendation_id>/outcomes/",
        views.RecommendationOutcomesApi.as_view(),
        name="api-recommendation-outcomes",
    ),
]
