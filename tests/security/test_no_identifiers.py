"""No source CustomerID survives a realistic run: not in a full database dump, not in any log, not in any output.

A slice of the real file goes through the real pipeline (import command, embeddings, recommendations,
explanations with the template reason, account books, an erasure, pages and API reads); then the test
database is dumped with ``pg_dump`` and every log written meanwhile is read back.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import os
import re
import subprocess
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.test import Client, override_settings
from django.urls import reverse

from accounts.services import assignment_demo_books
from elmsite import embedded
from tests.factories import UserFactory

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True, reset_sequences=True)]

HEAD_ROWS = 1200  # ~60 customers, ~700 products: enough variety, a few seconds of encoding per 100 products


def _slice() -> list[list[str]]:
    path = Path(settings.ELM_DATASET_PATH)
    if not path.exists():
        pytest.skip(f"the dataset is not at {path}")
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        return [header, *(row for _, row in zip(range(HEAD_ROWS), reader, strict=False))]


def _id_pattern(ids: set[str]) -> re.Pattern:
    """Match an id as a whole token: '17850' or '17850.0', not inside '0.17850', '117850' or 'A17850'."""
    alternatives = "|".join(sorted(ids))
    return re.compile(rf"(?<![0-9A-Za-z.])(?:{alternatives})(?:\.0+)?(?![0-9A-Za-z]|\.[0-9])")


def _pg_dump(path: Path) -> str:
    db = connection.settings_dict
    if not settings.EMBEDDED_DATABASE:
        pytest.skip("pg_dump of an external DATABASE_URL is not set up here")
    pg_dump = Path(embedded._pg_bin()) / "pg_dump"
    subprocess.run(
        [str(pg_dump), "--no-owner", "--no-privileges", "-h", db["HOST"], "-U", db["USER"], "-d", db["NAME"],
         "-f", str(path)],
        check=True, capture_output=True, timeout=300, env={**os.environ, "PGPASSWORD": db["PASSWORD"]},
    )  # fmt: skip
    return path.read_text(encoding="utf-8", errors="replace")


class _LogFiles:
    """Remember the size of every existing log file, then read what was appended since."""

    def __init__(self, paths: list[Path]):
        self.start = {p: (p.stat().st_size if p.exists() else 0) for p in paths}

    def appended(self) -> dict[str, str]:
        out = {}
        for path, offset in self.start.items():
            if path.exists():
                with open(path, "rb") as fh:
                    fh.seek(offset)
                    out[str(path)] = fh.read().decode("utf-8", errors="replace")
        return out


@pytest.fixture
def log_file(tmp_path):
    """Send every log record of this process (SQL included) to a file for the duration of the test."""
    path = tmp_path / "test-run.log"
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root, sql = logging.getLogger(), logging.getLogger("django.db.backends")
    levels = (root.level, sql.level)
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    sql.setLevel(logging.DEBUG)
    connection.force_debug_cursor = True  # log every query with its parameters
    yield path
    connection.force_debug_cursor = False
    root.removeHandler(handler)
    handler.close()
    root.setLevel(levels[0])
    sql.setLevel(levels[1])


@override_settings(ELM_SIG_STEPS=4)
def test_no_source_customer_id_in_the_database_dump_or_the_logs(tmp_path, settings, log_file):
    """Run the pipeline on a real slice, dump the database and read every log: no source CustomerID anywhere."""
    from explanations.services import explain
    from recommendations.models import Customer, Product, Recommendation
    from recommendations.services import embeddings, recommend

    settings.MEDIA_ROOT = tmp_path / "media"
    # Given a real slice, and its source ids that do not also occur in another column (e.g. as a stock code)
    rows = _slice()
    raw_ids = {r[6].removesuffix(".0") for r in rows[1:] if r[6]}
    other_numbers = {t for r in rows[1:] for i, f in enumerate(r) if i != 6 for t in re.findall(r"\d+", f)}
    raw_ids -= other_numbers
    assert len(raw_ids) >= 40
    pattern = _id_pattern(raw_ids)
    source = tmp_path / "slice.csv.gz"
    with gzip.open(source, "wt", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    with gzip.open(source, "rt", encoding="utf-8") as fh:
        found = {m.split(".")[0] for m in pattern.findall(fh.read())}
    assert found == raw_ids  # the pattern finds every id in the source
    server_logs = _LogFiles(
        [
            *sorted((settings.VAR_DIR / "log").glob("*.log")),
            embedded.pg_data_dir(settings.VAR_DIR) / "server.log",
        ]
    )
    out, err = io.StringIO(), io.StringIO()
    # Numbers already in the database before the slice arrives (rows that other tests' workers committed,
    # sequence values) cannot have come from it: only what this run adds counts as a leak.
    before = set(pattern.findall(_pg_dump(tmp_path / "before.sql")))

    # When it is imported, embedded, recommended and explained
    call_command("import_transactions", str(source), stdout=out, stderr=err)
    embeddings.products_embed(product_ids=list(Product.objects.values_list("id", flat=True)))
    embeddings.customers_embed(customer_ids=list(Customer.objects.values_list("id", flat=True)))
    batch = recommend.recommendation_batch_start(model_version="dump-test")
    recommend.recommendations_compute(
        batch_id=batch.pk, customer_ids=list(Customer.objects.values_list("id", flat=True))
    )
    recommend.recommendation_batch_activate(batch_id=batch.pk)
    first = list(Recommendation.objects.filter(rank=1).order_by("customer_id").values_list("id", flat=True)[:2])
    assert explain.explanations_generate(recommendation_ids=first, use_lm=False) == 2
    # And sales books are dealt, one customer is erased by source id, and pages and the API are read
    sales = UserFactory(username="dump-sales", groups=["sales"])
    assignment_demo_books(users=[sales], per_user=20)
    erased_id = sorted(raw_ids)[0]
    call_command("erase_customer", erased_id, stdout=out, stderr=err)
    manager = Client()
    manager.force_login(UserFactory(username="dump-manager", groups=["manager"]))
    pages = [manager.get(reverse("customer-list")), manager.get(reverse("api-customer-list"))]
    shown = Recommendation.objects.filter(pk__in=first).select_related("customer").first()
    pages.append(manager.get(reverse("customer-detail", args=[shown.customer.pseudonym])))
    pages.append(manager.get(reverse("api-customer-recommendations", args=[shown.customer.pseudonym])))
    assert [p.status_code for p in pages] == [200, 200, 200, 200]
    dump = _pg_dump(tmp_path / "dump.sql")

    # Then the dump is a real one (customers by pseudonym, the explained reasons)…
    assert Customer.objects.count() >= 40
    assert shown.customer.pseudonym in dump
    assert "COPY public.explanations_explanation" in dump
    # …and no source id occurs in it, in any log written meanwhile, in any output or file the run wrote
    texts = {
        "pg_dump": dump,
        "test log": log_file.read_text(encoding="utf-8"),
        "command output": out.getvalue() + err.getvalue(),
        "pages": "\n".join(p.content.decode() for p in pages),
        **server_logs.appended(),
        **{str(p): p.read_text(errors="replace") for p in Path(settings.MEDIA_ROOT).rglob("*") if p.is_file()},
    }
    assert "SELECT" in texts["test log"]  # SQL with parameters really was logged
    leaks = {name: sorted(set(pattern.findall(text)))[:5] for name, text in texts.items() if pattern.search(text)}
    leaks["pg_dump"] = sorted(set(pattern.findall(dump)) - before)[:5]
    assert {name: found for name, found in leaks.items() if found} == {}
