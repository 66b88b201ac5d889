from django.urls import path

from recommendations.api import views

urlpatterns = [
    path("auth/token/", views.AuthTokenApi.as_view(), name="api-auth-token"),
    path("customers/", views.CustomerListApi.as_view(), name="api-customer-list"),
    path("customers/<str:pseudonym>/", views.CustomerDetailApi.as_view(), name="api-customer-detail"),
    path(
        "customers/<str:pseudonym>/recommendations/",
        views.CustomerRecommendationsApi.as_view(),
        name="api-customer-recommendations",
    ),
    path("import-runs/", views.ImportRunListApi.as_view(), name="api-import-run-list"),
    path(
        "import-runs/<int:import_run_id>/rejected-rows/",
        views.ImportRunRejectedRowsApi.as_view(),
        name="api-import-run-rejected-rows",
    ),
]
