from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from explanations.models import (
    Concept,
    ConfidenceCalibration,
    Explanation,
    LocalizedReason,
    PolicyTerm,
    ReasonVersion,
    ReviewEvent,
)


@admin.register(Concept)
class ConceptAdmin(admin.ModelAdmin):
    list_display = ["name", "name_ja", "rule", "is_active", "usable", "auc", "auc_low", "positives", "negatives"]
    list_filter = ["rule", "is_active", "usable"]
    search_fields = ["name", "name_ja", "description", "seed_phrases"]
    readonly_fields = ["usable", "auc", "auc_low", "accuracy", "positives", "negatives", "version", "trained_at"]
    fields = [
        "name",
        "description",
        "name_ja",
        "description_ja",
        "rule",
        "seed_phrases",
        "threshold",
        "is_active",
        *readonly_fields,
    ]


class ReadOnlyInline(admin.TabularInline):
    """An inline that shows audit rows and never changes them."""

    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReasonVersionInline(ReadOnlyInline):
    model = ReasonVersion
    fields = ["number", "language", "source", "author_name", "text", "sha256", "created_at"]
    readonly_fields = fields


class ReviewEventInline(ReadOnlyInline):
    model = ReviewEvent
    fields = ["created_at", "language", "action", "from_status", "to_status", "actor_name", "comment", "text_sha256"]
    readonly_fields = fields


class LocalizedReasonInline(ReadOnlyInline):
    """The texts in the other languages: like the English one, changed only through the review workflow."""

    model = LocalizedReason
    fields = ["language", "status", "reason_text", "template_text", "flags", "reason_edited_by", "review_requested_at"]
    readonly_fields = fields


@admin.register(Explanation)
class ExplanationAdmin(admin.ModelAdmin):
    # Read-only: the status changes only through the review workflow (which writes the audit trail).
    list_display = ["pk", "recommendation", "status", "consistency", "confidence", "review_requested_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in Explanation._meta.fields]
    inlines = [LocalizedReasonInline, ReasonVersionInline, ReviewEventInline]

    def has_add_permission(self, request):
        return False


class AppendOnlyAdmin(admin.ModelAdmin):
    """Audit rows: viewable, never added, changed or deleted in the admin."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(ReviewEvent)
class ReviewEventAdmin(AppendOnlyAdmin):
    list_display = ["created_at", "explanation", "action", "from_status", "to_status", "actor_name"]
    list_filter = ["action", "to_status"]
    search_fields = ["actor_name", "comment", "text_sha256"]
    date_hierarchy = "created_at"


@admin.register(ReasonVersion)
class ReasonVersionAdmin(AppendOnlyAdmin):
    list_display = ["explanation", "number", "source", "author_name", "created_at"]
    list_filter = ["source"]
    search_fields = ["text", "sha256", "author_name"]


@admin.register(PolicyTerm)
class PolicyTermAdmin(admin.ModelAdmin):
    """The policy check's term list; changes apply to the next text checked (generated or edited)."""

    list_display = ["term", "category", "is_regex", "is_active", "updated_at"]
    list_filter = ["category", "is_active", "is_regex"]
    list_editable = ["is_active"]
    search_fields = ["term", "note"]
    fields = ["term", "category", "is_regex", "is_active", "note"]
    actions = ["activate", "deactivate"]

    def _set_active(self, request, queryset, value: bool) -> None:
        # save() per row, not update(): it stamps updated_at and sends the signal that refreshes the cache.
        changed = 0
        for term in queryset.exclude(is_active=value):
            term.is_active = value
            term.save(update_fields=["is_active", "updated_at"])
            changed += 1
        self.message_user(
            request,
            ngettext("%(count)d term changed.", "%(count)d terms changed.", changed) % {"count": changed},
            messages.SUCCESS,
        )

    @admin.action(description=_("Activate the selected terms"))
    def activate(self, request, queryset):
        self._set_active(request, queryset, True)

    @admin.action(description=_("Deactivate the selected terms"))
    def deactivate(self, request, queryset):
        self._set_active(request, queryset, False)


@admin.register(ConfidenceCalibration)
class ConfidenceCalibrationAdmin(admin.ModelAdmin):
    list_display = ["pk", "recommender", "method", "version", "ece_before", "ece_after", "test_pairs", "created_at"]
    # The pickled model is not for reading; its version and measures say what it is.
    exclude = ["artifact"]
    readonly_fields = [f.name for f in ConfidenceCalibration._meta.fields if f.name != "artifact"]

    def has_add_permission(self, request):
        return False
