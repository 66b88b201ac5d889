"""Erase one customer by source CustomerID (right to erasure)."""

from django.core.management.base import BaseCommand, CommandError

from accounts.services import customer_erase
from core.pseudonyms import InvalidSourceId, pseudonym_key, pseudonymize
from recommendations.models import Customer


class Command(BaseCommand):
    help = (
        "Erase the customer with this source CustomerID: compute its pseudonym with the key, delete the "
        "account and everything derived from it, detach its purchases, and audit the erasure (without the id)."
    )

    def add_arguments(self, parser):
        parser.add_argument("source_id", help="The CustomerID as in the source data (e.g. 17850).")
        parser.add_argument("--dry-run", action="store_true", help="Only say whether the customer exists.")

    def handle(self, *args, source_id, dry_run, **options):
        try:
            pseudonym = pseudonymize(source_id, key=pseudonym_key())
        except InvalidSourceId as exc:
            raise CommandError(str(exc)) from None
        customer = Customer.objects.filter(pseudonym=pseudonym).first()
        # The id is never echoed: terminal output ends up in logs and tickets.
        if customer is None:
            raise CommandError("No customer with this source id (already erased, or never imported).")
        if dry_run:
            self.stdout.write(f"Found customer {customer.pseudonym}; nothing erased (--dry-run).")
            return
        summary = customer_erase(customer=customer, actor=None)
        deleted = ", ".join(f"{n} {label}" for label, n in summary["deleted"].items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Erased: {deleted}; {summary['purchases_detached']} purchase lines detached; "
                f"{summary['audit_rows_redacted']} audit rows redacted."
            )
        )
