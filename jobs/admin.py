from django.contrib import admin

from jobs.models import Job, JobShard


class JobShardInline(admin.TabularInline):
    model = JobShard
    fields = ["index", "size", "status", "attempts", "error", "finished_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = ["pk", "kind", "status", "shards_done", "shards_total", "items_done", "items_total", "created_at"]
    list_filter = ["kind", "status"]
    readonly_fields = [f.name for f in Job._meta.fields]
    inlines = [JobShardInline]

    def has_add_permission(self, request):
        return False
