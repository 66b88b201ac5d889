from django.urls import path

from search import views

urlpatterns = [
    path("search/", views.product_search, name="product-search"),
]
