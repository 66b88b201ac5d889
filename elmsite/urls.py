from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from preferences.views import language_set

urlpatterns = [
    path("admin/", admin.site.urls),
    # Django's set_language, plus remembering the choice for the signed-in user.
    path("i18n/setlang/", language_set, name="set_language"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("core.api.urls")),
    path("api/", include("sales.api.urls")),
    path("api/", include("recommendations.api.urls")),
    path("api/", include("search.api.urls")),
    path("api/", include("explanations.api.urls")),
    path("", include("core.urls")),
    path("", include("dashboard.urls")),
    path("", include("jobs.urls")),
    path("", include("sales.urls")),
    path("", include("search.urls")),
    path("", include("explanations.urls")),
]
# JSON for unmatched /api/ paths (the schema promises JSON), the normal page elsewhere.
handler404 = "core.api.views.not_found"
