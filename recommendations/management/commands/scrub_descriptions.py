"""Scrub personal data from the stored descriptions and hold their products back (run once after upgrading)."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from recommendations.services.quarantine import descriptions_scrub


class Command(BaseCommand):
    help = (
        "Replace personal data in stored purchase and product descriptions with placeholders (<EMAIL>, ...) "
        "and quarantine the products for a reviewer. Imports do this for new lines; run it once for lines "
        "imported before, and again after the detectors improve."
    )

    def handle(self, *args, **options):
        result = descriptions_scrub()
        self.stdout.write(
            f"Scrubbed {result['descriptions']:,} descriptions on {result['lines']:,} lines; "
            f"{len(result['products']):,} products held back for a reviewer."
        )
