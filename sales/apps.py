from django.apps import AppConfig


class SalesConfig(AppConfig):
    """What sales people use: their accounts, the customer page, recommendation cards, outcomes, and their API."""

    name = "sales"
    verbose_name = "Sales"
