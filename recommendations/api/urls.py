from django.urls import path

from recommendations.api import views

urlpatterns = [
    path("import-runs/", views.ImportRunListApi.as_view(), name="api-import-run-list"),
    path(
        "import-runs/<int:import_run_id>/rejected-rows/",
        views.ImportRunRejectedRowsApi.as_view(),
        name="api-import-run-rejected-rows",
    ),
]
