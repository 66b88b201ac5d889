from django.urls import path

from core.api import views

urlpatterns = [
    path("auth/token/", views.AuthTokenApi.as_view(), name="api-auth-token"),
]
