"""URLs of the sales API, as the tests call them."""

from __future__ import annotations

from django.urls import reverse

CUSTOMERS_URL = reverse("api-customer-list")


def customer_url(pseudonym: str) -> str:
    return reverse("api-customer-detail", kwargs={"pseudonym": pseudonym})


def recommendations_url(pseudonym: str) -> str:
    return reverse("api-customer-recommendations", kwargs={"pseudonym": pseudonym})
