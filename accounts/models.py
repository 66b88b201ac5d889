"""Which sales person looks after which customer account."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from recommendations.models import Customer


class AccountAssignment(models.Model):
    """A customer account in a sales person's book; sales users see only the customers assigned to them."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="account_assignments")
    assigned_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "user"], name="account_assignment_unique")]
        # Scoping asks "which customers does this user have?" on every request.
        indexes = [models.Index(fields=["user", "customer"], name="account_assignment_user")]
        ordering = ["user_id", "customer_id"]

    def __str__(self) -> str:
        return f"{self.customer} → {self.user}"
