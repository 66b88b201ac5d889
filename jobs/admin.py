from django.contrib import admin, messages
from django.urls import reverse

from jobs import services
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
    actions = ["retry_failed"]

    def has_add_permission(self, request):
        return False  # jobs are started from the jobs page, commands or the schedule

    def view_on_site(self, obj):
        return reverse("job-detail", args=[obj.pk])

    # Retrying changes jobs: it needs jobs.change_job, which the manager role (view only) does not hold.
    @admin.action(description="Retry the unfinished shards of the selected failed jobs", permissions=["change"])
    def retry_failed(self, request, queryset):
        failed = list(queryset.filter(status=Job.Status.FAILED).values_list("pk", flat=True))
        for pk in failed:
            services.job_retry(job_id=pk)
        self.message_user(request, f"Retrying {len(failed)} failed job(s).", messages.SUCCESS)
