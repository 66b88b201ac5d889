"""Import an Online Retail transaction file (.csv or .csv.gz) with a progress bar and a summary."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from recommendations.models import ImportRun
from recommendations.services.importer import ImportProgress, InvalidImportFile, transactions_import


class Command(BaseCommand):
    help = "Import transactions in one transaction; rejected rows are listed in a CSV under MEDIA_ROOT/imports/."

    def add_arguments(self, parser):
        parser.add_argument("path", nargs="?", type=Path, default=None, help="Default: settings.ELM_DATASET_PATH.")

    def handle(self, *args, path: Path | None, **options):
        path = path or Path(settings.ELM_DATASET_PATH)
        with tqdm(
            total=None, unit="B", unit_scale=True, desc=path.name, file=self.stderr, disable=options["verbosity"] == 0
        ) as bar:

            def on_progress(event: ImportProgress) -> None:
                bar.total = event.bytes_total
                bar.update(event.bytes_read - bar.n)
                bar.set_postfix_str(f"{event.phase}, {event.rows_read:,} rows")

            try:
                run = transactions_import(path=path, progress=on_progress)
            except InvalidImportFile as exc:
                raise CommandError(f"Nothing was imported from {path.name}: {exc}") from exc
        self.stdout.write(self._summary(run))

    def _summary(self, run: ImportRun) -> str:
        seconds = (run.finished_at - run.started_at).total_seconds()
        lines = [
            f"Import run #{run.pk} of {run.file_name} (sha256 {run.file_sha256[:12]}…): {run.status}",
            f"  rows read        {run.rows_read:>10,}",
            f"  accepted         {run.rows_accepted:>10,}",
            *(f"    {kind:<28}{n:>10,}" for kind, n in run.accepted_by_kind.items()),
            f"  inserted         {run.rows_inserted:>10,}",
            f"  duplicates       {run.rows_duplicate:>10,}",
            f"  rejected         {run.rows_rejected:>10,}",
            *(f"    {reason:<28}{n:>10,}" for reason, n in run.rejected_by_reason.items()),
            f"  customers        {run.customers_total:>10,}",
            f"  products         {run.products_total:>10,}",
            f"  personal data    {sum(run.pii_by_type.values()):>10,} rows scrubbed",
            *(f"    {kind:<28}{n:>10,}" for kind, n in run.pii_by_type.items()),
            f"  held back        {len(run.quarantined_products):>10,} products (for a reviewer to clear)",
            f"  region k         {run.region_k if run.region_k is not None else '-':>10}"
            f" (configured {settings.ELM_REGION_MIN_K})",
            "  rejected rows    "
            + (str(Path(settings.MEDIA_ROOT) / run.rejected_rows_file) if run.rejected_rows_file else "none"),
            f"  time             {seconds:>10.1f} s ({run.rows_read / seconds if seconds else 0:,.0f} rows/s)",
        ]
        return "\n".join(lines)
