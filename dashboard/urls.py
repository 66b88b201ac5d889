from django.urls import path

from dashboard import quality_views, views

urlpatterns = [
    path("dashboard/", views.dashboard, name="dashboard"),
    path("quality/", quality_views.quality_page, name="quality"),
]
