from django.urls import path

from sales import views

urlpatterns = [
    path("customers/", views.customer_list, name="customer-list"),
    path("customers/<str:pseudonym>/", views.customer_detail, name="customer-detail"),
    path(
        "customers/<str:pseudonym>/recommendations/<int:recommendation_id>/outcome/",
        views.outcome_create,
        name="outcome-create",
    ),
]
