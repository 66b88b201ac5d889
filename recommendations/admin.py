"""Admin of the data. The Customer admin is registered by accounts/admin.py: its actions (assign, erase) are
accounts' services, which sit above this app."""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from recommendations.models import CustomerTombstone, EvaluationRun, ImportRun, Product, RecommendationBatch, SegmentRun
from recommendations.services.quarantine import product_quarantine_clear


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = [
        "stock_code",
        "description",
        "is_merchandise",
        "pii_quarantined",
        "price_median",
        "units_sold",
        "buyer_count",
    ]
    list_filter = ["pii_quarantined", "is_merchandise"]
    search_fields = ["stock_code", "description"]
    exclude = ["embedding"]
    readonly_fields = ["embedding_version", "embedding_input_hash", "embedded_at", "pii_quarantined", "pii_codes"]
    actions = ["clear_pii_quarantine"]

    def has_clear_pii_quarantine_permission(self, request) -> bool:
        return request.user.has_perm("recommendations.clear_pii_quarantine")

    @admin.action(
        description=_("Clear the personal-data quarantine (I read the scrubbed description)"),
        permissions=["clear_pii_quarantine"],
    )
    def clear_pii_quarantine(self, request, queryset):
        n = product_quarantine_clear(products=queryset, actor=request.user)
        self.message_user(
            request,
            ngettext("%(n)d product may be recommended again.", "%(n)d products may be recommended again.", n)
            % {"n": n},
            messages.SUCCESS,
        )


@admin.register(ImportRun)
class ImportRunAdmin(admin.ModelAdmin):
    list_display = [
        "pk",
        "file_name",
        "status",
        "started_at",
        "rows_read",
        "rows_inserted",
        "rows_rejected",
        "products_held_back",
    ]
    list_filter = ["status"]

    @admin.display(description=_("products held back (personal data)"))
    def products_held_back(self, obj: ImportRun) -> int:
        return len(obj.quarantined_products)

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


@admin.register(CustomerTombstone)
class CustomerTombstoneAdmin(_ReadOnly):
    """Keyed marks of erased customers: written by erasure only, never edited or removed by hand."""

    list_display = ["pk", "created_at"]

    def has_delete_permission(self, request, obj=None):
        return False  # removing one would let a re-import bring the erased customer back
