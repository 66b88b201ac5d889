"""Start, stop or show the embedded PostgreSQL and Valkey servers."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from elmsite import embedded


class Command(BaseCommand):
    help = "Manage the embedded PostgreSQL (pgvector) and Valkey servers under var/."

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status"])

    def handle(self, *args, action, **options):
        var = settings.VAR_DIR
        if action == "start":
            statuses = embedded.start_all(var, database=settings.EMBEDDED_DATABASE, broker=settings.EMBEDDED_BROKER)
        elif action == "stop":
            statuses = embedded.stop_all(var)
            if any(s.running for s in statuses):
                raise CommandError("; ".join(str(s) for s in statuses))
        else:
            statuses = [embedded.pg_status(var), embedded.valkey_status(var)]
        for status in statuses:
            self.stdout.write(str(status))
        if not settings.EMBEDDED_DATABASE:
            self.stdout.write("database: external (DATABASE_URL)")
        if not settings.EMBEDDED_BROKER:
            self.stdout.write("broker: external (CELERY_BROKER_URL)")
