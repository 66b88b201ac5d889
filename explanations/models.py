"""Explanations: measured evidence, concepts, word attributions and the reason text, all versioned."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _
from django_fsm import FSMField, FSMModelMixin, transition
from pgvector.django import VectorField

from recommendations.models import EMBEDDING_DIM, Customer, Recommendation


class Concept(models.Model):
    """A human concept (e.g. "bulk buyer") with a labelling rule and its trained activation vector."""

    class Rule(models.TextChoices):
        BULK_BUYER = "bulk_buyer", _("Bulk buyer (large quantities per line)")
        SEASONAL = "seasonal", _("Seasonal buyer (orders concentrated in Oct–Dec)")
        PRICE_SENSITIVE = "price_sensitive", _("Price-sensitive (buys below the catalogue median price)")
        FREQUENT = "frequent", _("Frequent buyer (many orders)")
        LAPSED = "lapsed", _("Lapsed (no order in the last 90 days)")
        SEED_PHRASES = "seed_phrases", _("Buys products matching the seed phrases")

    name = models.CharField(max_length=80, unique=True)
    description = models.TextField(blank=True)
    # What a Japanese-speaking user reads; blank: the English name or description is shown.
    name_ja = models.CharField(_("name in Japanese"), max_length=80, blank=True)
    description_ja = models.TextField(_("description in Japanese"), blank=True)
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

    def name_in(self, language: str) -> str:
        """Return the name a user reading ``language`` sees (the English name where none is written)."""
        field = CONCEPT_TEXT_FIELDS.get(language)
        return (getattr(self, field[0]) if field else "") or self.name

    def description_in(self, language: str) -> str:
        """Return the description a user reading ``language`` sees (the English one where none is written)."""
        field = CONCEPT_TEXT_FIELDS.get(language)
        return (getattr(self, field[1]) if field else "") or self.description


# Language -> the Concept fields of its (name, description); English is the concept's own name.
CONCEPT_TEXT_FIELDS = {"ja": ("name_ja", "description_ja")}


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


class ReviewedText(models.Model):
    """A reason text under legal review, in one language: its state machine, its editor, its queue time.

    ``status`` is a state machine (django-fsm): a generated text goes through the automatic checks
    to ``pending_review``; a reviewer approves, rejects or requests changes; an edit sends the text
    back to ``pending_review``; an approved text can be withdrawn. Only the transition methods below
    change it, and only ``explanations.services.review`` calls them (it writes the audit rows). The
    English text is the explanation's own (``Explanation``); each other language's is a
    ``LocalizedReason`` with the same table.
    """

    class Status(models.TextChoices):
        GENERATED = "generated", _("Generated")
        PENDING_REVIEW = "pending_review", _("Pending review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        CHANGES_REQUESTED = "changes_requested", _("Changes requested")
        WITHDRAWN = "withdrawn", _("Withdrawn")
        FAILED = "failed", _("Failed")

    status = FSMField(max_length=32, choices=Status.choices, default=Status.GENERATED, db_index=True)
    # The reviewer who wrote the current reason text (null: the machine did); four-eyes reads it.
    reason_edited_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # When the current text entered the review queue: the age the SLA is measured on.
    review_requested_at = models.DateTimeField(null=True, blank=True, db_index=True)

    class Meta:
        abstract = True

    # Transitions: the whole table. The bodies are empty on purpose; the review service does the
    # writes (text versions, audit events) in the same transaction as the state change. The field is
    # named, not passed: each concrete model gets its own copy of it.
    @transition(field="status", source=Status.GENERATED, target=Status.PENDING_REVIEW)
    def submit(self) -> None:
        """Queue a checked, generated text for review."""

    @transition(field="status", source=Status.GENERATED, target=Status.FAILED)
    def fail(self) -> None:
        """Record that no text could be generated."""

    @transition(
        field="status",
        source=[
            Status.PENDING_REVIEW,
            Status.APPROVED,
            Status.REJECTED,
            Status.CHANGES_REQUESTED,
            Status.WITHDRAWN,
            Status.FAILED,
        ],
        target=Status.GENERATED,
    )
    def regenerate(self) -> None:
        """Replace the text with a new machine-generated one (it is reviewed again)."""

    @transition(field="status", source=Status.PENDING_REVIEW, target=Status.APPROVED)
    def approve(self) -> None:
        """Release the text to sales."""

    @transition(field="status", source=[Status.PENDING_REVIEW, Status.CHANGES_REQUESTED], target=Status.REJECTED)
    def reject(self) -> None:
        """Refuse the text for good."""

    @transition(field="status", source=Status.PENDING_REVIEW, target=Status.CHANGES_REQUESTED)
    def request_changes(self) -> None:
        """Ask for an edited text."""

    @transition(
        field="status",
        source=[Status.PENDING_REVIEW, Status.CHANGES_REQUESTED, Status.WITHDRAWN],
        target=Status.PENDING_REVIEW,
    )
    def edit(self) -> None:
        """Replace the text with a reviewer's edit and queue it for review again."""

    @transition(field="status", source=Status.APPROVED, target=Status.WITHDRAWN)
    def withdraw(self) -> None:
        """Take an approved text back from sales."""


class Explanation(ReviewedText):
    """Everything that explains one recommendation; the reason text is the last layer on top.

    Its reason text is the English one, reviewed through the state machine of ``ReviewedText``;
    other languages' texts are ``LocalizedReason`` rows, reviewed on their own.
    """

    recommendation = models.OneToOneField(Recommendation, on_delete=models.CASCADE, related_name="explanation")
    # [{product_id, stock_code, description, weight, share}], shares sum to the score
    evidence = models.JSONField(default=list)
    # What a sales person reads: at most five lines (purchase families, co-purchase facts, the rest, the
    # popularity term) whose shares still sum to the score; see explanations.services.families.
    evidence_groups = models.JSONField(default=dict, blank=True)
    evidence_residual = models.FloatField(default=0.0)  # score - sum(shares); ~0 by construction
    necessity = models.JSONField(default=dict)  # counterfactual without the top evidence
    concepts = models.JSONField(default=list)  # [{concept, customer_score, low, high, sensitivity}]
    word_attributions = models.JSONField(default=dict)  # {"product": {...}, "evidence": {...}}
    reason_text = models.TextField(blank=True)
    template_text = models.TextField(blank=True)
    # The fact sheet the reasons were written from (explanations.services.reasons.reason_sheet): what a
    # reason may claim, checked by the claim checker at generation, at review and by audit_claims.
    reason_facts = models.JSONField(default=dict, blank=True)
    consistency = models.FloatField(null=True)  # semantic consistency of the reason; null while re-scored
    confidence = models.FloatField(null=True)  # calibrated P(buys within 90 days)
    flags = models.JSONField(default=list)
    versions = models.JSONField(default=dict)
    error = models.TextField(blank=True)
    generated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Explanation of {self.recommendation_id}"


class LocalizedReason(ReviewedText):
    """An explanation's reason in another language than English, reviewed on its own.

    Written at generation: the template reason in that language (from the same evidence), unless a
    configured model writes the language. Sales reading that language see it once approved, and the
    template in their language until then.
    """

    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="localized_reasons")
    language = models.CharField(max_length=16, choices=settings.LANGUAGES)
    reason_text = models.TextField(blank=True)
    template_text = models.TextField(blank=True)
    flags = models.JSONField(default=list)
    generated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["explanation", "language"], name="localized_reason_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.language} reason of {self.explanation_id}"


class MaskedText(models.Model):
    """A text's one-word-masked encodings, customer-independent: word attributions become dot products.

    Keyed by the text's hash and the encoder version (explanations.services.word_cache).
    """

    text_hash = models.CharField(max_length=64)
    encoder_version = models.CharField(max_length=128)
    text = models.TextField()
    words = models.JSONField(default=list)
    token_spans = models.JSONField(default=list)
    tokens = models.JSONField(default=list)
    vectors = models.BinaryField()  # float32, (words + 1) x dimensions, unit rows: [text, word 1 masked, ...]
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["text_hash", "encoder_version"], name="masked_text_unique"),
        ]

    def __str__(self) -> str:
        return self.text[:60]


class AppendOnlyError(Exception):
    """Raised on an attempt to change or delete an audit row through the ORM."""


class AppendOnlyQuerySet(models.QuerySet):
    """A queryset that can insert and read, never update or delete."""

    def update(self, **kwargs):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only.")

    def delete(self):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only.")

    def bulk_update(self, objs, fields, batch_size=None):
        raise AppendOnlyError(f"{self.model.__name__} rows are append-only.")


class AppendOnlyModel(models.Model):
    """A model whose rows are written once; a database trigger (migration 0004) backs this up.

    Deleting the parent explanation still removes them (erasure of a customer): the cascade runs
    in SQL, not through these methods.
    """

    objects = AppendOnlyQuerySet.as_manager()

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        if not self._state.adding:
            raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise AppendOnlyError(f"{type(self).__name__} rows are append-only.")


class ReasonVersion(AppendOnlyModel):
    """One version of an explanation's reason text: the generated original and every edit."""

    class Source(models.TextChoices):
        GENERATED = "generated", _("Generated")
        EDITED = "edited", _("Edited by a reviewer")

    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="reason_versions")
    number = models.PositiveIntegerField()
    source = models.CharField(max_length=16, choices=Source.choices)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_name = models.CharField(max_length=150, blank=True)  # kept when the user is deleted
    language = models.CharField(max_length=16, default="en")  # a LocalizedReason's language, or English
    text = models.TextField(blank=True)
    sha256 = models.CharField(max_length=64)
    flags = models.JSONField(default=list)  # the automatic checks on this text
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["explanation", "number"]
        constraints = [models.UniqueConstraint(fields=["explanation", "number"], name="reason_version_unique")]

    def __str__(self) -> str:
        return f"v{self.number} of {self.explanation_id}"


class ReviewEvent(AppendOnlyModel):
    """An audit row for every status transition of an explanation (append-only)."""

    explanation = models.ForeignKey(Explanation, on_delete=models.CASCADE, related_name="review_events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_name = models.CharField(max_length=150, blank=True)  # "" for the system; kept when the user is deleted
    action = models.CharField(max_length=32)
    language = models.CharField(max_length=16, default="en")  # the language of the text it is about
    from_status = models.CharField(max_length=32)
    to_status = models.CharField(max_length=32)
    comment = models.TextField(blank=True)
    text_sha256 = models.CharField(max_length=64)  # the reason text after the transition
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["explanation", "created_at", "pk"]
        indexes = [models.Index(fields=["explanation", "created_at"], name="review_event_expl_created")]

    def __str__(self) -> str:
        return f"{self.explanation_id}: {self.from_status} -> {self.to_status}"


class PolicyTerm(models.Model):
    """A term of the policy check (sensitive attribute or risky claim), edited in the admin."""

    class Category(models.TextChoices):
        AGE = "age", _("Sensitive attribute: age")
        GENDER = "gender", _("Sensitive attribute: gender")
        ETHNICITY = "ethnicity", _("Sensitive attribute: ethnicity")
        RELIGION = "religion", _("Sensitive attribute: religion")
        HEALTH = "health", _("Sensitive attribute: health")
        NATIONALITY = "nationality", _("Sensitive attribute: nationality")
        GUARANTEE = "guarantee", _("Risky claim: guarantee")
        CAUSAL = "causal", _("Risky claim: causal claim")

    term = models.CharField(
        max_length=1000,
        help_text="A word or phrase (spaces and hyphens match any run of them), or a regular expression.",
    )
    category = models.CharField(max_length=16, choices=Category.choices)
    is_regex = models.BooleanField(default=False, help_text="Treat the term as a regular expression.")
    is_active = models.BooleanField(default=True)
    note = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["category", "term"]
        constraints = [models.UniqueConstraint(fields=["category", "term"], name="policy_term_unique")]

    def __str__(self) -> str:
        return f"{self.get_category_display()}: {self.term}"

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from explanations.checks import validate_term

        try:
            validate_term(self.category, self.term, self.is_regex)
        except ValueError as exc:
            raise ValidationError({"term": str(exc)}) from exc


class ConfidenceCalibration(models.Model):
    """The confidence model fitted on temporal folds of the real data, with its test-window measures.

    For the hybrid: a purchase-probability classifier over features a sales manager recognises
    (``explanations.confidence_model``), pickled in ``artifact``, calibrated on a later fold; ``metrics``
    holds the test window's AUC, within-list AUC, ECE, per-rank and re-order/new rows. Older rows (and the
    embedding recommender's) map the score alone to a probability (``params``, no artifact).
    """

    recommender = models.CharField(max_length=64)
    method = models.CharField(max_length=32)
    params = models.JSONField()
    version = models.CharField(max_length=64, blank=True)
    artifact = models.BinaryField(null=True, editable=False)  # the fitted FittedConfidence, pickled
    metrics = models.JSONField(default=dict, blank=True)
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


class CustomerDescription(FSMModelMixin, models.Model):
    """The customer's embedding said in words: the ELM adapter's text, grounded in the purchase facts.

    Like a reason, it is checked automatically and reviewed before sales see it; a new text (the
    customer's vector changed, or a better adapter) goes back to ``pending_review``. ``status`` is a
    state machine; ``explanations.services.descriptions`` calls its transitions.
    """

    class Status(models.TextChoices):
        PENDING_REVIEW = "pending_review", _("Pending review")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    class Method(models.TextChoices):
        ELM_GROUNDED = "elm_grounded", _("ELM adapter with the purchase facts")
        TEMPLATE = "template", _("Template from the purchase facts (no adapter yet)")

    customer = models.OneToOneField(Customer, on_delete=models.CASCADE, related_name="description")
    text = models.TextField()
    reference_text = models.TextField()  # the deterministic profile built from the same facts
    method = models.CharField(max_length=32, choices=Method.choices)
    consistency = models.FloatField(null=True)  # SC = cos(encoder(text), customer embedding)
    reference_consistency = models.FloatField(null=True)  # SC of the reference text, for comparison
    flags = models.JSONField(default=list)
    # encoder, lm, adapter and the customer's embedding input hash the text was made from
    versions = models.JSONField(default=dict)
    status = FSMField(
        max_length=32, choices=Status.choices, default=Status.PENDING_REVIEW, db_index=True, protected=True
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    generated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Description of customer {self.customer_id}"

    @transition(field=status, source=Status.PENDING_REVIEW, target=Status.APPROVED)
    def approve(self) -> None:
        """Release the text to sales."""

    @transition(field=status, source=Status.PENDING_REVIEW, target=Status.REJECTED)
    def reject(self) -> None:
        """Refuse the text."""

    @transition(field=status, source=[Status.APPROVED, Status.REJECTED], target=Status.PENDING_REVIEW)
    def resubmit(self) -> None:
        """A new text replaced the reviewed one: it is reviewed again."""
