"""Customers' published regions: recomputed over all customers whenever customers arrive or leave.

What is known of a customer's location: the country of most of its lines in the file being imported,
else the region stored earlier (a country, a wider region or OTHER: a country behind a wider region
was never stored). ``core.regions.generalize`` maps these to regions with at least k customers that
are true of each customer, so an incremental import can move a customer up (France -> Western
Europe -> Other) but never to a region it is not in.
"""

from __future__ import annotations

from django.conf import settings
from django.db import connection, transaction

from core.regions import generalize
from recommendations.models import Customer

# The importer's temporary table of (pseudonym, country) for the customers of the file being imported.
FILE_COUNTRIES = "import_customer_country"


def regions_update(cur, *, file_countries: bool) -> int | None:
    """Regeneralize every customer's region; return the achieved k (the smallest region), None if none.

    ``file_countries``: the FILE_COUNTRIES table exists (inside an import) and its countries win.
    """
    customer = Customer._meta.db_table
    if file_countries:
        known = f"SELECT c.id, coalesce(i.country, c.region) AS label FROM {customer} c "  # noqa: S608
        known += f"LEFT JOIN {FILE_COUNTRIES} i ON i.customer = c.pseudonym"
    else:
        known = f"SELECT c.id, c.region AS label FROM {customer} c"  # noqa: S608
    cur.execute(f"SELECT label, count(*) FROM ({known}) k GROUP BY label")  # noqa: S608
    counts = dict(cur.fetchall())
    if not counts:
        return None
    generalization = generalize(counts, k=settings.ELM_REGION_MIN_K)
    labels = list(generalization.region_of)
    cur.execute(
        f"""
        WITH mapping AS (SELECT * FROM unnest(%s::text[], %s::text[]) AS m(label, region))
        UPDATE {customer} c SET region = m.region, updated_at = now()
        FROM ({known}) k JOIN mapping m ON m.label = k.label
        WHERE c.id = k.id AND c.region IS DISTINCT FROM m.region
        """,  # noqa: S608
        [labels, [generalization.region_of[label] for label in labels]],
    )
    # The achieved k is measured on what is stored, so it is true whatever generalize() decided.
    cur.execute(f"SELECT min(n) FROM (SELECT count(*) AS n FROM {customer} GROUP BY region) groups")  # noqa: S608
    return cur.fetchone()[0]


@transaction.atomic
def customer_regions_generalize() -> int | None:
    """Regeneralize the stored regions (after an erasure); return the achieved k."""
    with connection.cursor() as cur:
        return regions_update(cur, file_countries=False)
