"""Admin of the data. The Customer admin is registered by accounts/admin.py: its actions (assign, erase) are
accounts' services, which sit above this app."""

from django.contrib import admin

from recommendations.models import EvaluationRun, ImportRun, Product, RecommendationBatch, SegmentRun


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["stock_code", "description", "is_merchandise", "price_median", "units_sold", "buyer_count"]
    list_filter = ["is_merchandise"]
    search_fields = ["stock_code", "description"]
    exclude = ["embedding"]
    readonly_fields = ["embedding_version", "embedding_input_hash", "embedded_at"]


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = ["pk", "file_name", "status", "started_at", "rows_read", "rows_inserted", "rows_rejected"]
    list_filter = ["status"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RecommendationBatch)
class RecommendationBatchAdmin(admin.ModelAdmin):
    list_display = ["pk", "status", "recommender", "model_version", "created_at", "activated_at"]
    list_filter = ["status", "recommender"]

    def has_add_permission(self, request):
        return False


class _ReadOnly(admin.ModelAdmin):
    """Results of jobs: inspected here, written only by the jobs."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(EvaluationRun)
class EvaluationRunAdmin(_ReadOnly):
    list_display = ["pk", "status", "source", "reduced", "chosen_model", "chosen_version", "created_at", "wall_seconds"]
    list_filter = ["status", "source", "reduced", "chosen_model"]


@admin.register(SegmentRun)
class SegmentRunAdmin(_ReadOnly):
    list_display = ["pk", "status", "k", "silhouette", "customers", "description_source", "created_at"]
    list_filter = ["status"]
