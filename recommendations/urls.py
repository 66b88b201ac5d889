from django.urls import path

from recommendations import quality_views

urlpatterns = [
    path("quality/", quality_views.quality_page, name="quality"),
]
