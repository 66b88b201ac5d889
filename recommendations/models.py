"""Anonymized customers, products, purchase lines, imports and recommendation batches."""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, FSMModelMixin, transition
from pgvector.django import HnswIndex, VectorField

EMBEDDING_DIM = 384


class Customer(models.Model):
    """A customer account known only by its keyed pseudonym and generalized attributes."""

    pseudonym = models.CharField(max_length=64, unique=True)
    region = models.CharField(max_length=64, db_index=True)
    first_purchase_at = models.DateTimeField(null=True)
    last_purchase_at = models.DateTimeField(null=True, db_index=True)
    order_count = models.PositiveIntegerField(default=0)
    revenue = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    embedding = VectorField(dimensions=EMBEDDING_DIM, null=True)
    embedding_version = models.CharField(max_length=128, blank=True)
    # Hash of everything the embedding was computed from; equal hash = nothing to recompute.
    embedding_input_hash = models.CharField(max_length=64, blank=True)
    embedded_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        indexes = [
            HnswIndex(
                name="customer_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            )
        ]

    def __str__(self) -> str:
        return self.pseudonym


class Product(models.Model):
    stock_code = models.CharField(max_length=32, unique=True)  # normalized: trimmed, upper-cased
    description = models.CharField(max_length=255, blank=True)  # most frequent clean variant
    is_merchandise = models.BooleanField(default=True, db_index=True)
    price_min = models.DecimalField(max_digits=12, decimal_places=3, null=True)
    price_median = models.DecimalField(max_digits=12, decimal_places=3, null=True)
    price_max = models.DecimalField(max_digits=12, decimal_places=3, null=True)
    units_sold = models.BigIntegerField(default=0)
    buyer_count = models.PositiveIntegerField(default=0)
    embedding = VectorField(dimensions=EMBEDDING_DIM, null=True)
    embedding_version = models.CharField(max_length=128, blank=True)
    embedding_input_hash = models.CharField(max_length=64, blank=True)
    embedded_at = models.DateTimeField(null=True)
    # Personal data was found (and scrubbed) in a description of this product at import: it is held back
    # from recommendations until a reviewer has read the scrubbed text and cleared it.
    pii_quarantined = models.BooleanField(default=False, db_index=True)
    pii_codes = models.JSONField(default=list, blank=True)  # the kinds found, e.g. ["pii:email"]; never the text
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        permissions = [("clear_pii_quarantine", "Can clear a product's personal-data quarantine")]
        indexes = [
            HnswIndex(
                name="product_embedding_hnsw",
                fields=["embedding"],
                m=16,
                ef_construction=64,
                opclasses=["vector_cosine_ops"],
            )
        ]

    def __str__(self) -> str:
        return f"{self.stock_code} {self.description}"


class Purchase(models.Model):
    """One invoice line. ``line_key`` is the natural key: re-imports and overlapping files dedupe."""

    class Kind(models.TextChoices):
        SALE = "sale", _("Sale")
        RETURN = "return", _("Return")
        ADJUSTMENT = "adjustment", _("Stock adjustment")

    line_key = models.CharField(max_length=32, unique=True)
    customer = models.ForeignKey(Customer, null=True, on_delete=models.SET_NULL, related_name="purchases")
    product = models.ForeignKey(Product, on_delete=models.PROTECT, related_name="purchases")
    invoice = models.CharField(max_length=16, db_index=True)
    description = models.CharField(max_length=255, blank=True)  # as written on this line, cleaned
    quantity = models.IntegerField()
    unit_price = models.DecimalField(max_digits=12, decimal_places=3)
    occurred_at = models.DateTimeField(db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    import_run = models.ForeignKey("ImportRun", null=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        indexes = [models.Index(fields=["customer", "occurred_at"]), models.Index(fields=["product", "occurred_at"])]

    def __str__(self) -> str:
        return f"{self.invoice} {self.kind} {self.quantity} x {self.product_id}"


class ImportRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    file_name = models.CharField(max_length=255)
    file_sha256 = models.CharField(max_length=64, db_index=True)
    status = FSMField(max_length=16, choices=Status.choices, default=Status.RUNNING, protected=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)
    rows_read = models.PositiveIntegerField(default=0)
    rows_accepted = models.PositiveIntegerField(default=0)  # valid rows, duplicates included
    rows_inserted = models.PositiveIntegerField(default=0)  # new purchase lines written
    rows_duplicate = models.PositiveIntegerField(default=0)  # exact duplicates, in file or in DB
    rows_rejected = models.PositiveIntegerField(default=0)
    rejected_by_reason = models.JSONField(default=dict)
    accepted_by_kind = models.JSONField(default=dict)
    customers_total = models.PositiveIntegerField(default=0)
    products_total = models.PositiveIntegerField(default=0)
    region_k = models.PositiveIntegerField(null=True)  # achieved k of the region generalization
    rejected_rows_file = models.CharField(max_length=255, blank=True)  # relative to MEDIA_ROOT
    # Personal data found in free text (descriptions) and scrubbed: rows per kind ("pii:email": 3), and
    # the stock codes of the products held back for a reviewer (never the text that was found).
    pii_by_type = models.JSONField(default=dict)
    quarantined_products = models.JSONField(default=list)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Import #{self.pk} {self.file_name} ({self.status})"

    @transition(field=status, source=Status.RUNNING, target=Status.SUCCEEDED)
    def succeed(self, *, finished_at) -> None:
        self.finished_at = finished_at

    @transition(field=status, source=Status.RUNNING, target=Status.FAILED)
    def fail(self, *, error: str, finished_at) -> None:
        self.error = error
        self.finished_at = finished_at


class CustomerTombstone(models.Model):
    """A keyed mark of an erased customer, so that re-importing an old file does not bring them back.

    ``tombstone`` is ``core.pseudonyms.tombstone(pseudonym)``: neither the pseudonym (erasure removes
    every copy of it) nor the source id. Only the key holder can tell whether a given source id was erased.
    """

    tombstone = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Tombstone #{self.pk}"


class RecommendationBatch(FSMModelMixin, models.Model):
    """One run of the recommender; exactly one succeeded batch is active at a time.

    ``status`` is a state machine: running -> active -> superseded, or running -> failed. Only
    ``recommendations.services.recommend`` calls the transitions.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        ACTIVE = "active", _("Active")
        SUPERSEDED = "superseded", _("Superseded")
        FAILED = "failed", _("Failed")

    status = FSMField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True, protected=True)
    recommender = models.CharField(max_length=64)
    model_version = models.CharField(max_length=128)
    params = models.JSONField(default=dict)
    # The evaluation that chose this recommender (None: the built-in default, or no evaluation yet).
    evaluation_run = models.ForeignKey(
        "EvaluationRun", null=True, blank=True, on_delete=models.SET_NULL, related_name="batches"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=models.Q(status="active"), name="one_active_recommendation_batch"
            )
        ]

    def __str__(self) -> str:
        return f"Batch #{self.pk} {self.recommender} ({self.status})"

    @transition(field=status, source=Status.RUNNING, target=Status.ACTIVE)
    def activate(self) -> None:
        """Every customer's list is written: this batch is the one everybody reads."""
        self.activated_at = timezone.now()

    @transition(field=status, source=Status.ACTIVE, target=Status.SUPERSEDED)
    def supersede(self) -> None:
        """A newer batch became active (kept for outcomes recorded against it)."""

    @transition(field=status, source=Status.RUNNING, target=Status.FAILED)
    def fail(self) -> None:
        """The batch will not be completed."""


class Recommendation(models.Model):
    batch = models.ForeignKey(RecommendationBatch, on_delete=models.CASCADE, related_name="recommendations")
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="recommendations")
    product = models.ForeignKey(Product, on_delete=models.CASCADE, related_name="+")
    rank = models.PositiveSmallIntegerField()
    score = models.FloatField()
    generated_at = models.DateTimeField()
    # Re-order or new (recommendations.services.reorder), as of the batch: orders (days with a purchase)
    # that included this product, the day of the latest, and the mean days between them (None below two).
    times_bought = models.PositiveIntegerField(default=0)
    last_bought = models.DateField(null=True, blank=True)
    usual_interval_days = models.FloatField(null=True, blank=True)

    class Meta:
        ordering = ["customer_id", "rank"]
        constraints = [
            models.UniqueConstraint(fields=["batch", "customer", "rank"], name="recommendation_rank_unique"),
            models.UniqueConstraint(fields=["batch", "customer", "product"], name="recommendation_product_unique"),
        ]

    def __str__(self) -> str:
        return f"#{self.rank} {self.product_id} for {self.customer_id} ({self.score:.3f})"

    @property
    def is_reorder(self) -> bool:
        """Whether the customer bought this product before the batch (else it is new to them)."""
        return self.times_bought > 0


class EvaluationRun(FSMModelMixin, models.Model):
    """One offline evaluation: configuration, metrics of every model with intervals, and the model it chose.

    ``metrics`` maps each model to ``{params, version, baseline, validation_ndcg@10, test: {metric: {mean,
    ci95}}}``; ``by_region`` maps each model to its per-region test metrics (small regions pooled).
    Reduced runs (a slice of the data, e.g. CI or a smoke test) never choose the production recommender.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    status = FSMField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True, protected=True)
    source = models.CharField(max_length=16)  # "db" or "csv"
    reduced = models.BooleanField(default=False)
    config = models.JSONField(default=dict)
    split = models.JSONField(default=dict)
    customers_active_both = models.PositiveIntegerField(null=True)
    customers_evaluated = models.PositiveIntegerField(null=True)
    metrics = models.JSONField(default=dict)
    by_region = models.JSONField(default=dict)
    goal = models.JSONField(default=dict)
    chosen_model = models.CharField(max_length=64, blank=True)
    chosen_version = models.CharField(max_length=128, blank=True)
    chosen_params = models.JSONField(default=dict)
    calibration = models.JSONField(default=dict)  # ECE before/after and reliability tables of the chosen model
    wall_seconds = models.FloatField(null=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Evaluation #{self.pk} ({self.status}, chose {self.chosen_model or '-'})"

    # running -> succeeded | failed; a failed run is run again by its job's retry (failed -> running).
    @transition(field=status, source=Status.RUNNING, target=Status.SUCCEEDED)
    def succeed(self) -> None:
        self.finished_at = timezone.now()

    @transition(field=status, source=Status.RUNNING, target=Status.FAILED)
    def fail(self, error: str = "") -> None:
        self.error = error[:4000]
        self.finished_at = timezone.now()

    @transition(field=status, source=Status.FAILED, target=Status.RUNNING)
    def retry(self) -> None:
        self.error = ""
        self.finished_at = None


class SegmentRun(FSMModelMixin, models.Model):
    """One k-means segmentation of the customer vectors, k chosen by silhouette.

    running -> succeeded | failed; a new segmentation is a new run.
    """

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")

    status = FSMField(max_length=16, choices=Status.choices, default=Status.RUNNING, db_index=True, protected=True)
    k = models.PositiveSmallIntegerField(null=True)
    silhouette = models.FloatField(null=True)  # mean silhouette (cosine) at the chosen k
    silhouette_by_k = models.JSONField(default=dict)  # {k: mean silhouette} of every k tried
    customers = models.PositiveIntegerField(default=0)
    embedding_version = models.CharField(max_length=128, blank=True)
    description_source = models.CharField(max_length=16, blank=True)  # "elm" or "grounded"
    adapter_version = models.CharField(max_length=128, blank=True)
    interpolation = models.JSONField(default=dict)  # {"from": i, "to": j, "points": [{"t", "text", ...}]}
    wall_seconds = models.FloatField(null=True)
    error = models.TextField(blank=True)
    job = models.ForeignKey("jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Segmentation #{self.pk} (k={self.k}, {self.status})"

    @transition(field=status, source=Status.RUNNING, target=Status.SUCCEEDED)
    def succeed(self) -> None:
        self.finished_at = timezone.now()

    @transition(field=status, source=Status.RUNNING, target=Status.FAILED)
    def fail(self, error: str = "") -> None:
        self.error = error[:4000]
        self.finished_at = timezone.now()


class Segment(models.Model):
    """A customer segment: a k-means cluster, its centroid described in words, size and top concepts."""

    run = models.ForeignKey(SegmentRun, on_delete=models.CASCADE, related_name="segments")
    index = models.PositiveSmallIntegerField()
    size = models.PositiveIntegerField()
    share = models.FloatField()  # of the segmented customers
    silhouette = models.FloatField(null=True)  # mean silhouette of the members
    centroid = VectorField(dimensions=EMBEDDING_DIM)
    description = models.TextField(blank=True)
    description_source = models.CharField(max_length=16, blank=True)  # "elm" or "grounded"
    facts = models.TextField(blank=True)  # the grounded description from top products and concepts (always)
    consistency = models.FloatField(null=True)  # cosine(encoder(description), centroid): the ELM paper's SC
    top_concepts = models.JSONField(default=list)  # [{concept, mean_score, lift}]
    top_products = models.JSONField(default=list)  # [{stock_code, description, buyers_share, lift}]

    class Meta:
        ordering = ["run_id", "-size", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="segment_index_unique")]

    def __str__(self) -> str:
        return f"Segment {self.index} of run {self.run_id} ({self.size} customers)"
