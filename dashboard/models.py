"""Replay of the recommender at a past cutoff, scored against what customers really bought afterwards."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, FSMModelMixin, transition

from recommendations.models import Customer, Product


class ReplayRun(FSMModelMixin, models.Model):
    """One replay: recommendations as of ``cutoff``, outcomes from the ``horizon_days`` after it.

    ``status``: running -> succeeded | failed (a state machine; ``dashboard.services.replay`` moves it).
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    status = FSMField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True, protected=True)
    cutoff = models.DateTimeField()
    horizon_days = models.PositiveSmallIntegerField(default=90)
    control_share = models.FloatField()
    recommender = models.CharField(max_length=64)
    version = models.CharField(max_length=200)
    # top_n, exclude_days, half_life_days and the ids of products not on sale before the cutoff.
    params = models.JSONField(default=dict)
    customers = models.PositiveIntegerField(default=0)
    recommendations = models.PositiveIntegerField(default=0)
    won = models.PositiveIntegerField(default=0)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Replay #{self.pk} at {self.cutoff:%Y-%m-%d} ({self.status})"

    @transition(field=status, source=Status.RUNNING, target=Status.SUCCEEDED)
    def succeed(self) -> None:
        self.finished_at = timezone.now()

    @transition(field=status, source=Status.RUNNING, target=Status.FAILED)
    def fail(self) -> None:
        self.finished_at = timezone.now()


class ReplayRecommendation(models.Model):
    """A recommendation the replay made; ``won`` means the customer bought it within the horizon."""

    class Arm(models.TextChoices):
        EXPLAINED = "explained", _("Explained")
        CONTROL = "control", _("Control")

    run = models.ForeignKey(ReplayRun, on_delete=models.CASCADE, related_name="rows")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="+")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField()
    arm = models.CharField(max_length=16, choices=Arm.choices)
    won = models.BooleanField(default=False)
    won_at = models.DateTimeField(null=True, blank=True)  # first purchase of the product after the cutoff
    times_bought = models.PositiveIntegerField(default=0)  # orders of it before the cutoff (0 = new to them)

    class Meta:
        ordering = ["run_id", "customer_id", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["run", "customer", "rank"], name="replay_rank_unique"),
            models.UniqueConstraint(fields=["run", "customer", "product"], name="replay_product_unique"),
        ]
        indexes = [models.Index(fields=["run", "arm", "won"])]

    def __str__(self) -> str:
        return f"replay {self.run_id}: #{self.rank} {self.product_id} for {self.customer_id} ({self.arm})"
