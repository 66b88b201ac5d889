"""What sales people did with a recommendation (outcomes) and which A/B arm it was shown in (exposures)."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from recommendations.models import Customer, Product, Recommendation

COMMENT_MAX_LENGTH = 1000


class Outcome(models.Model):
    """One sales action on a recommendation, stored with who and when; append-only, feeds the KPIs."""

    class Kind(models.TextChoices):
        PITCHED = "pitched", _("Pitched")
        WON = "won", _("Won")
        LOST = "lost", _("Lost")
        NOT_RELEVANT = "not_relevant", _("Not relevant")

    # Outcomes that settle a recommendation; after "pitched" it is still open.
    CLOSING_KINDS = (Kind.WON, Kind.LOST, Kind.NOT_RELEVANT)

    # Outcomes are business records that outlive recommendation batches: customer and product are
    # stored directly, and losing the recommendation row only clears the link.
    recommendation = models.ForeignKey(
        Recommendation, null=True, on_delete=models.SET_NULL, related_name="outcomes", verbose_name=_("recommendation")
    )
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="outcomes", verbose_name=_("customer")
    )
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="outcomes", verbose_name=_("product"))
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        on_delete=models.SET_NULL,
        related_name="outcomes",
        verbose_name=_("recorded by"),
    )
    kind = models.CharField(_("outcome"), max_length=16, choices=Kind.choices)
    comment = models.TextField(_("comment"), blank=True, max_length=COMMENT_MAX_LENGTH)
    # The A/B arm the recommendation was shown in when this was recorded (True = reason shown).
    explained = models.BooleanField(_("reason shown"))
    # One token per rendered form (or API Idempotency-Key): a double submit finds the first row.
    client_token = models.UUIDField(null=True, blank=True, unique=True, editable=False)
    created_at = models.DateTimeField(_("recorded at"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("outcome")
        verbose_name_plural = _("outcomes")
        indexes = [
            models.Index(fields=["user", "created_at"], name="outcome_user_created"),
            models.Index(fields=["customer", "created_at"], name="outcome_customer_created"),
            models.Index(fields=["kind", "created_at"], name="outcome_kind_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(kind__in=["pitched", "won", "lost", "not_relevant"]), name="outcome_kind_valid"
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.product_id} for {self.customer_id}"


class Exposure(models.Model):
    """The A/B arm of a recommendation (stored once, deterministic) and how often sales saw it."""

    class Arm(models.TextChoices):
        EXPLAINED = "explained", _("Explained")
        CONTROL = "control", _("Control (no reason)")

    recommendation = models.OneToOneField(
        Recommendation, on_delete=models.CASCADE, related_name="exposure", verbose_name=_("recommendation")
    )
    arm = models.CharField(_("arm"), max_length=16, choices=Arm.choices)
    assigned_at = models.DateTimeField(_("assigned at"), default=timezone.now)
    first_shown_at = models.DateTimeField(_("first shown at"), null=True, blank=True, db_index=True)
    last_shown_at = models.DateTimeField(_("last shown at"), null=True, blank=True)
    show_count = models.PositiveIntegerField(_("times shown"), default=0)

    class Meta:
        verbose_name = _("exposure")
        verbose_name_plural = _("exposures")
        constraints = [
            models.CheckConstraint(condition=models.Q(arm__in=["explained", "control"]), name="exposure_arm_valid")
        ]

    def __str__(self) -> str:
        return f"{self.recommendation_id}: {self.arm}"

    @property
    def is_control(self) -> bool:
        return self.arm == self.Arm.CONTROL
