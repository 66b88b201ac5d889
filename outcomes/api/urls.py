from django.urls import path

from outcomes.api import views

urlpatterns = [
    path(
        "customers/<str:pseudonym>/recommendations/<int:recommendation_id>/outcomes/",
        views.RecommendationOutcomesApi.as_view(),
        name="api-recommendation-outcomes",
    ),
]
