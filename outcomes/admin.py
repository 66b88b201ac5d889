from django.contrib import admin

from outcomes.models import Exposure, Outcome


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    """Outcomes are evidence for the KPIs: readable in the admin, never edited there."""

    list_display = ("created_at", "kind", "customer", "product", "user", "explained")
    list_filter = ("kind", "explained", "created_at")
    search_fields = ("customer__pseudonym", "product__stock_code", "user__username")
    raw_id_fields = ("recommendation", "customer", "product", "user")
    date_hierarchy = "created_at"
    list_select_related = ("customer", "product", "user")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Exposure)
class ExposureAdmin(admin.ModelAdmin):
    list_display = ("recommendation", "arm", "assigned_at", "first_shown_at", "show_count")
    list_filter = ("arm",)
    raw_id_fields = ("recommendation",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
