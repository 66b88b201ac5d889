"""Write tests/data/pii_fp_reasons.txt: 200 real reasons (100 template, 100 language model) for the PII checks.

The reasons come from the real pipeline on a slice of the real file, in a scratch database that is dropped
afterwards: import, product and customer embeddings, recommendations, then explanations of the rank-1
recommendation of 200 customers (the first 100 with the template reason, the next 100 with the language
model). Reasons talk about products, never about the customer; the script refuses to write a file that
contains a pseudonym or a source CustomerID.

    nice -n 10 env ELM_TORCH_THREADS=1 OMP_NUM_THREADS=1 .venv/bin/python scripts/make_reason_sample.py

It takes ~10 minutes on a busy 2-core machine (mostly the language model).
"""

from __future__ import annotations

import csv
import gzip
import os
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "tests" / "data" / "pii_fp_reasons.txt"
HEAD_ROWS = 12_000  # ~330 customers with purchases: enough for 200 distinct rank-1 recommendations
TEMPLATE_REASONS = 100
LM_REASONS = 100


def main() -> None:
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "elmsite.settings.test")
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection

    from elmsite import embedded

    if settings.EMBEDDED_DATABASE:
        embedded.pg_start(settings.VAR_DIR)
    settings.DATABASES["default"].setdefault("TEST", {})["NAME"] = "elm_reason_sample"
    connection.settings_dict["TEST"] = {**connection.settings_dict.get("TEST", {}), "NAME": "elm_reason_sample"}
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True, keepdb=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            settings.MEDIA_ROOT = Path(tmp) / "media"
            reasons, forbidden = _run(Path(tmp))
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    leaks = [r for r in reasons if any(re.search(rf"(?<!\w){re.escape(f)}(?!\w)", r) for f in forbidden)]
    if leaks:
        raise SystemExit(f"{len(leaks)} reasons name a customer; not written: {leaks[:3]}")
    header = (
        "# 200 reasons written by the real pipeline on the first 12,000 rows of the Online Retail file\n"
        "# (scripts/make_reason_sample.py): 100 template reasons, then 100 language-model reasons. One a line.\n"
    )
    OUT.write_text(header + "".join(r.replace("\n", " ") + "\n" for r in reasons), encoding="utf-8")
    print(f"wrote {len(reasons)} reasons to {OUT}")


def _run(tmp: Path) -> tuple[list[str], set[str]]:
    from django.conf import settings

    from explanations.models import Explanation
    from explanations.services import explain
    from recommendations.models import Customer, Product, Recommendation
    from recommendations.services import embeddings, recommend
    from recommendations.services.importer import transactions_import

    with gzip.open(settings.ELM_DATASET_PATH, "rt", encoding="utf-8", newline="") as fh:
        rows = [row for _, row in zip(range(HEAD_ROWS + 1), csv.reader(fh), strict=False)]
    source = tmp / "slice.csv"
    with open(source, "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    source_ids = {r[6].removesuffix(".0") for r in rows[1:] if r[6]}
    started = time.monotonic()
    transactions_import(path=source)
    embeddings.products_embed(product_ids=list(Product.objects.values_list("id", flat=True)))
    embeddings.customers_embed(customer_ids=list(Customer.objects.values_list("id", flat=True)))
    batch = recommend.recommendation_batch_start(model_version="reason-sample")
    customer_ids = list(Customer.objects.values_list("id", flat=True))
    recommend.recommendations_compute(batch_id=batch.pk, customer_ids=customer_ids)
    recommend.recommendation_batch_activate(batch_id=batch.pk)
    print(f"pipeline ready in {time.monotonic() - started:.0f} s", flush=True)
    firsts = list(Recommendation.objects.filter(rank=1).order_by("customer_id").values_list("id", flat=True))
    template_ids = firsts[:TEMPLATE_REASONS]
    lm_ids = firsts[TEMPLATE_REASONS : TEMPLATE_REASONS + LM_REASONS]
    explain.explanations_generate(recommendation_ids=template_ids, use_lm=False)
    for start in range(0, len(lm_ids), 20):  # progress every 20 reasons
        explain.explanations_generate(recommendation_ids=lm_ids[start : start + 20], use_lm=True)
        print(f"{start + 20} language-model reasons after {time.monotonic() - started:.0f} s", flush=True)
    by_rec = dict(Explanation.objects.values_list("recommendation_id", "reason_text"))
    reasons = [by_rec[pk] for pk in template_ids + lm_ids]
    pseudonyms = set(Customer.objects.values_list("pseudonym", flat=True))
    return reasons, source_ids | pseudonyms


if __name__ == "__main__":
    main()
