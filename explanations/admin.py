from django.contrib import admin

from explanations.models import Concept, ConfidenceCalibration, Explanation


@admin.register(Concept)
class ConceptAdmin(admin.ModelAdmin):
    list_display = ["name", "rule", "is_active", "usable", "auc", "auc_low", "positives", "negatives", "trained_at"]
    list_filter = ["rule", "is_active", "usable"]
    search_fields = ["name", "description", "seed_phrases"]
    readonly_fields = ["usable", "auc", "auc_low", "accuracy", "positives", "negatives", "version", "trained_at"]
    fields = ["name", "description", "rule", "seed_phrases", "threshold", "is_active", *readonly_fields]


@admin.register(Explanation)
class ExplanationAdmin(admin.ModelAdmin):
    list_display = ["pk", "recommendation", "status", "consistency", "confidence", "generated_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in Explanation._meta.fields]

    def has_add_permission(self, request):
        return False


@admin.register(ConfidenceCalibration)
class ConfidenceCalibrationAdmin(admin.ModelAdmin):
    list_display = ["pk", "recommender", "method", "ece_before", "ece_after", "test_pairs", "created_at"]
    readonly_fields = [f.name for f in ConfidenceCalibration._meta.fields]

    def has_add_permission(self, request):
        return False
