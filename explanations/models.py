"""Explanations: measured evidence, concepts, word attributions and the reason text, all versioned."""

from __future__ import annotations

from django.db import models
from pgvector.django import VectorField

from recommendations.models import EMBEDDING_DIM, Customer, Recommendation


class Concept(models.Model):
    """A human concept (e.g. "bulk buyer") with a labelling rule and its trained activation vector."""

    class Rule(models.TextChoices):
        BULK_BUYER = "bulk_buyer", "Bulk buyer (large quantities per line)"
        SEASONAL = "seasonal", "Seasonal buyer (orders concentrated in Oct–Dec)"
        PRICE_SENSITIVE = "price_sensitive", "Price-sensitive (buys below the catalogue median price)"
        FREQUENT = "frequent", "Frequent buyer (many orders)"
        LAPSED = "lapsed", "Lapsed (no order in the last 90 days)"
        SEED_PHRASES = "seed_phrases", "Buys products matching the seed phrases"

    name = models.CharField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    rule = models.CharField(max_length=32, choices=Rule.choices)
    seed_phrases = models.TextField(blank=True, help_text="One keyword or phrase per line (for seed-phrase rules).")
    threshold = models.FloatField(
        default=0.0,
        help_text="Rule cut-off; 0 uses the rule's default (quantile or share).",
    )
    is_active = models.BooleanField(default=True)
    # Training results (written by the train_concepts job).
    cav = VectorField(dimensions=EMBEDDING_DIM, null=True, blank=True, editable=False)
    cav_bias = models.FloatField(null=True, editable=False)
    auc = models.FloatField(null=True, editable=False)
    auc_low = models.FloatField(null=True, editable=False)
    accuracy = models.FloatField(null=True, editable=False)
    positives = models.PositiveIntegerField(default=0, editable=False)
    negatives = models.PositiveIntegerField(default=0, editable=False)
    usable = models.BooleanField(default=False, editable=False, help_text="Better than chance on held-out customers.")
    version = models.CharField(max_length=128, blank=True, editable=False)
    trained_at = models.DateTimeField(null=True, editable=False)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class CustomerConcept(models.Model):
    """A customer's concept score with its 90% bootstrap interval."""

    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="concepts")
    concept = models.ForeignKey(Concept, on_delete=models.CASCADE, related_name="customer_scores")
    score = models.FloatField()
    low = models.FloatField()
    high = models.FloatField()
    version = models.CharField(max_length=128)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["customer", "concept"], name="customer_concept_unique")]

    def __str__(self) -> str:
        return f"{self.customer_id}: {self.concept_id} = {self.score:.2f}"


class Explanation(models.Model):
    """Everything that explains one recommendation; the reason text is the last layer on top."""

    class Status(models.TextChoices):
        GENERATED = "generated", "Generated"
        FAILED = "failed", "Failed"

    recommendation = models.OneToOneField(Recommendation, on_delete=models.CASCADE, related_name="explanation")
    status = models.CharField(max_length=32, choices=Status.choices, default=Status.GENERATED, db_index=True)
    # [{product_id, stock_code, description, weight, share}], shares sum to the score
    evidence = models.JSONField(default=list)
    evidence_residual = models.FloatField(default=0.0)  # score - sum(shares); ~0 by construction
    necessity = models.JSONField(default=dict)  # counterfactual without the top evidence
    concepts = models.JSONField(default=list)  # [{concept, customer_score, low, high, sensitivity}]
    word_attributions = models.JSONField(default=dict)  # {"product": {...}, "evidence": {...}}
    reason_text = models.TextField(blank=True)
    template_text = models.TextField(blank=True)
    consistency = models.FloatField(null=True)  # semantic consistency of the reason
    confidence = models.FloatField(null=True)  # calibrated P(buys within 90 days)
    flags = models.JSONField(default=list)
    versions = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    generated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Explanation of {self.recommendation_id}"


class ConfidenceCalibration(models.Model):
    """A score -> probability map fitted on a temporal holdout of the real data, with its test ECE."""

    recommender = models.CharField(max_length=64)
    method = models.CharField(max_length=16)
    params = models.JSONField()
    validation_cutoff = models.DateTimeField()
    test_cutoff = models.DateTimeField()
    horizon_days = models.PositiveSmallIntegerField()
    validation_pairs = models.PositiveIntegerField()
    test_pairs = models.PositiveIntegerField()
    base_rate = models.FloatField()
    ece_before = models.FloatField()  # raw score read as a probability, on the test window
    ece_after = models.FloatField()  # calibrated probability, on the test window
    reliability = models.JSONField()  # test-window reliability table after calibration
    reliability_before = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.recommender} {self.method} ECE {self.ece_after:.3f}"
