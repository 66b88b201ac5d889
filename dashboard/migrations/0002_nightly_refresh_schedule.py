"""Create the nightly refresh schedule (02:30 Europe/London) as a django-celery-beat row, editable in the admin."""

import json

from django.db import migrations

TASK = "jobs.nightly_refresh"
NAME = "Nightly refresh: embed changed, recommend, explain new"


def create_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(task=TASK).exists():
        return
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute="30", hour="2", day_of_week="*", day_of_month="*", month_of_year="*", timezone="Europe/London"
    )
    PeriodicTask.objects.create(
        name=NAME,
        task=TASK,
        crontab=crontab,
        # No chain in the kwargs: the task runs jobs.pipeline.NIGHTLY, the one definition of the steps.
        kwargs=json.dumps({}),
        enabled=True,
        description=(
            "Starts the nightly job chain (jobs.pipeline.NIGHTLY: embed products -> embed customers -> "
            "recommend -> explain). Skipped when a job of the chain is still queued or running. Put a "
            '"chain" list in the keyword arguments to run other steps instead.'
        ),
    )
    # Beat re-reads the schedule when this marker changes (the post_save signal does not run here).
    from django.utils import timezone

    PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(task=TASK).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0001_initial"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
