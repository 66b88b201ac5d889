from django.contrib import admin

from dashboard.models import ReplayRun


@admin.register(ReplayRun)
class ReplayRunAdmin(admin.ModelAdmin):
    """Replays are made by the replay job; the admin only shows them (and may delete old ones)."""

    list_display = ["pk", "cutoff", "horizon_days", "status", "customers", "recommendations", "won", "created_at"]
    list_filter = ["status"]
    readonly_fields = [f.name for f in ReplayRun._meta.fields if f.name != "params"]
    exclude = ["params"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
