"""Audit the stored reasons' claims against the facts they were written from."""

import json
from pathlib import Path

from django.core.management.base import BaseCommand

from explanations.services.claims_audit import claims_audit


class Command(BaseCommand):
    help = "Check every stored reason's claims (products, counts, dates, concepts, attributes) against its facts."

    def add_arguments(self, parser):
        parser.add_argument("--status", action="append", default=None, help="Only this status (repeatable).")
        parser.add_argument("--limit", type=int, default=None)
        parser.add_argument("--out", type=Path, default=None, help="Write the JSON report here.")
        parser.add_argument("--show", type=int, default=10, help="Print this many flagged reasons.")

    def handle(self, *args, status, limit, out, show, **options):
        report = claims_audit(statuses=status, limit=limit)
        s = report["summary"]
        self.stdout.write(
            f"Audited {s['audited']:,} reasons: {s['with_unsupported_claims']:,} with unsupported claims "
            f"({s['share']:.1%}); fact sheets rebuilt for {s['sheets_rebuilt']:,}."
        )
        for code, n in s["by_kind"].items():
            self.stdout.write(f"  {code}: {n}")
        for reason in report["reasons"][:show]:
            claims = "; ".join(f"“{c['text']}” ({c['code'].split(':')[-1]})" for c in reason["claims"])
            self.stdout.write(f"  #{reason['explanation_id']}: {claims}")
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
            self.stdout.write(f"Wrote {out}.")
