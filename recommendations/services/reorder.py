"""Re-order or new: what a customer's history says about each recommended product, in one SQL pass.

An order is a calendar day (the data's local time zone) on which the customer bought the product, the unit
the confidence model counts in too (``explanations.confidence_model.pair_history``). The same sale lines
as the hybrid's fit: sales of merchandise with quantity and price above zero, before the reference time.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

from django.conf import settings
from django.db import connection

REORDER_SQL = """
    WITH pairs AS (SELECT * FROM unnest(%(customers)s::bigint[], %(products)s::bigint[]) AS t(customer_id, product_id)),
    days AS (
        SELECT DISTINCT p.customer_id, p.product_id, (p.occurred_at AT TIME ZONE %(tz)s)::date AS day
        FROM recommendations_purchase p
        JOIN pairs USING (customer_id, product_id)
        WHERE p.kind = 'sale' AND p.quantity > 0 AND p.unit_price > 0 AND p.occurred_at <= %(reference)s
    )
    SELECT customer_id, product_id, count(*), max(day), (max(day) - min(day))::float8 / nullif(count(*) - 1, 0)
    FROM days GROUP BY customer_id, product_id
"""


@dataclass(frozen=True)
class ReorderFacts:
    times_bought: int = 0  # 0 = new to the customer
    last_bought: date | None = None
    usual_interval_days: float | None = None  # mean days between its orders; None below two orders


NEW = ReorderFacts()


def reorder_facts(*, pairs: Iterable[tuple[int, int]], reference: datetime) -> dict[tuple[int, int], ReorderFacts]:
    """Return {(customer id, product id): ReorderFacts} for every pair (NEW where never bought)."""
    pairs = list(dict.fromkeys(pairs))
    if not pairs:
        return {}
    params = {
        "customers": [c for c, _ in pairs],
        "products": [p for _, p in pairs],
        "tz": settings.TIME_ZONE,
        "reference": reference,
    }
    with connection.cursor() as cur:
        cur.execute(REORDER_SQL, params)
        found = {(c, p): ReorderFacts(int(n), last, interval) for c, p, n, last, interval in cur.fetchall()}
    return {pair: found.get(pair, NEW) for pair in pairs}


def reorder_apply(recommendations: list, *, reference: datetime) -> None:
    """Set times_bought, last_bought and usual_interval_days on unsaved Recommendation rows (one query)."""
    facts = reorder_facts(pairs=[(r.customer_id, r.product_id) for r in recommendations], reference=reference)
    for rec in recommendations:
        fact = facts[(rec.customer_id, rec.product_id)]
        rec.times_bought = fact.times_bought
        rec.last_bought = fact.last_bought
        rec.usual_interval_days = fact.usual_interval_days
