from django.urls import path

from search.api import views

urlpatterns = [
    path("search/products/", views.ProductSearchApi.as_view(), name="api-product-search"),
]
