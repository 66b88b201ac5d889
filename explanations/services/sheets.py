"""The fact sheet of a recommendation: what its reasons may claim, for one recommendation or a whole shard.

:func:`reason_sheet` builds one sheet with a few queries (the explain step, the reviewer, the claim audit);
:func:`reason_sheets_batch` builds the same sheets for a whole shard with a constant number of queries (the
numbers pass writes a template reason for every recommendation of the batch, ~43,000, so per-recommendation
queries would dominate it). Both read the same figures and hand them to :func:`_build`, so they cannot drift.
"""

from __future__ import annotations

from datetime import date
from itertools import pairwise
from statistics import median
from typing import TYPE_CHECKING

from django.db import connection

if TYPE_CHECKING:
    from explanations.services.explain import Facts

EVIDENCE_ROWS = 3


def title(description: str) -> str:
    """Return a catalogue description in readable case ("WHITE METAL LANTERN" -> "White metal lantern")."""
    text = " ".join(description.split()).strip(" .")
    return text[:1].upper() + text[1:].lower() if text else text


def _median_gap(days: list) -> float | None:
    days = sorted(set(days))
    gaps = [(b - a).days for a, b in pairwise(days)]
    return float(median(gaps)) if gaps else None


def _selection(facts: Facts) -> tuple[bool, list[dict], list[int], list[str]]:
    """What the sheet of ``facts`` is about: whether the product is its own evidence, the named evidence
    rows, the product ids whose orders it counts, and the shared concepts it may state."""
    rec = facts.recommendation
    rows = [r for r in facts.evidence_rows if r.get("product_id")]
    # A re-order recommendation is its own evidence (bought before): the other lines are what it goes with.
    in_evidence = any(r["product_id"] == rec.product_id for r in rows)
    named = [r for r in rows if r["product_id"] != rec.product_id][:EVIDENCE_ROWS]
    ids = [r["product_id"] for r in named] + [rec.product_id]
    shared = [c["concept"] for c in facts.concepts if c.get("shared")][:2]
    return in_evidence, named, ids, shared


def _build(facts: Facts, *, today: date, bought: dict, orders, order_dates, co: tuple | None, holds: dict) -> dict:
    """The sheet from the figures read for it: ``bought`` maps product id -> (orders, order dates) of this
    customer, ``co`` is (other buyers of the top evidence product, of whom bought the product too)."""
    rec = facts.recommendation
    in_evidence, named, _ids, shared = _selection(facts)

    def product_row(pid: int, description: str) -> dict:
        n, dates = bought.get(pid, (0, []))
        return {
            "product_id": pid,
            "name": title(description),
            "orders": n,
            "last_days": (today - max(dates)).days if dates else None,
            "reorder_days": _median_gap(dates or []),
        }

    buyers, both = co or (0, 0)
    co_purchase = {"evidence": title(named[0]["description"]), "buyers": buyers, "both": both} if (
        named and buyers and both) else None  # fmt: skip
    return {
        "reference": today.isoformat(),
        "product": {**product_row(rec.product_id, rec.product.description), "in_evidence": in_evidence},
        "evidence": [product_row(r["product_id"], r["description"]) for r in named],
        "customer_orders": orders or 0,
        "days_since_last_order": (today - max(order_dates)).days if order_dates else None,
        "order_interval_days": _median_gap(order_dates or []),
        "co_purchase": co_purchase,
        "concepts": [{"name": name, "holds": holds.get(name)} for name in shared],
        "popular": any(r.get("kind") == "popularity" for r in facts.evidence_rows),
    }


def reason_sheet(facts: Facts) -> dict:
    """Return (and keep on ``facts``) the JSON fact sheet every reason of this recommendation is written from."""
    cached = getattr(facts, "_reason_sheet", None)
    if cached is not None:
        return cached
    from explanations.services.concepts import concept_holds
    from recommendations import profile

    rec = facts.recommendation
    _in_evidence, named, ids, shared = _selection(facts)
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT product_id, count(DISTINCT invoice), array_agg(DISTINCT occurred_at::date)
            FROM recommendations_purchase
            WHERE customer_id = %s AND kind = 'sale' AND product_id = ANY(%s)
            GROUP BY product_id
            """,
            [rec.customer_id, ids],
        )
        bought = {pid: (n, dates) for pid, n, dates in cur.fetchall()}
        cur.execute(
            "SELECT count(DISTINCT invoice), array_agg(DISTINCT occurred_at::date) FROM recommendations_purchase "
            "WHERE customer_id = %s AND kind = 'sale'",
            [rec.customer_id],
        )
        orders, order_dates = cur.fetchone()
        co = None
        if named:
            cur.execute(
                """
                WITH e AS (SELECT DISTINCT customer_id FROM recommendations_purchase
                           WHERE product_id = %s AND kind = 'sale' AND customer_id IS NOT NULL AND customer_id <> %s)
                SELECT count(*), count(*) FILTER (WHERE EXISTS (
                    SELECT 1 FROM recommendations_purchase p
                    WHERE p.customer_id = e.customer_id AND p.product_id = %s AND p.kind = 'sale'))
                FROM e
                """,
                [named[0]["product_id"], rec.customer_id, rec.product_id],
            )
            co = cur.fetchone()
    holds = concept_holds(customer_id=rec.customer_id, concept_names=shared) if shared else {}
    sheet = _build(
        facts, today=profile.reference_time().date(), bought=bought, orders=orders, order_dates=order_dates,
        co=co, holds=holds,
    )  # fmt: skip
    facts._reason_sheet = sheet
    return sheet


def reason_sheets_batch(facts_list: list[Facts]) -> list[dict]:
    """Return (and keep on each ``facts``) the sheets of many recommendations, equal to :func:`reason_sheet`'s,
    with four queries for the whole list (plus the concept rules' population cut-offs, once per process)."""
    from explanations.services.concepts import concept_holds_batch
    from recommendations import profile

    if not facts_list:
        return []
    selections = [_selection(f) for f in facts_list]
    pairs = {(f.recommendation.customer_id, pid) for f, (_, _, ids, _) in zip(facts_list, selections, strict=True)
             for pid in ids}  # fmt: skip
    top = {(s[1][0]["product_id"], f.recommendation.product_id)
           for f, s in zip(facts_list, selections, strict=True) if s[1]}  # fmt: skip
    customers = sorted({f.recommendation.customer_id for f in facts_list})
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT p.customer_id, p.product_id, count(DISTINCT p.invoice), array_agg(DISTINCT p.occurred_at::date)
            FROM recommendations_purchase p
            JOIN (SELECT DISTINCT * FROM unnest(%s::bigint[], %s::bigint[]) AS t(customer_id, product_id)) t
              ON p.customer_id = t.customer_id AND p.product_id = t.product_id
            WHERE p.kind = 'sale'
            GROUP BY p.customer_id, p.product_id
            """,
            [[c for c, _ in pairs], [p for _, p in pairs]],
        )
        bought: dict[int, dict] = {}
        for cid, pid, n, dates in cur.fetchall():
            bought.setdefault(cid, {})[pid] = (n, dates)
        cur.execute(
            "SELECT customer_id, count(DISTINCT invoice), array_agg(DISTINCT occurred_at::date) "
            "FROM recommendations_purchase WHERE customer_id = ANY(%s) AND kind = 'sale' GROUP BY customer_id",
            [customers],
        )
        orders = {cid: (n, dates) for cid, n, dates in cur.fetchall()}
        # Per (top evidence product, product): all its buyers and those who bought both; the customer's
        # own purchases are taken out per recommendation below, as reason_sheet leaves the customer out.
        co_counts = {}
        if top:
            cur.execute(
                """
                WITH pairs AS (SELECT DISTINCT * FROM unnest(%s::bigint[], %s::bigint[]) AS t(e, p)),
                buyers AS (SELECT DISTINCT product_id, customer_id FROM recommendations_purchase
                           WHERE kind = 'sale' AND customer_id IS NOT NULL
                             AND product_id IN (SELECT e FROM pairs UNION SELECT p FROM pairs))
                SELECT pairs.e, pairs.p, count(*), count(b.customer_id)
                FROM pairs JOIN buyers a ON a.product_id = pairs.e
                LEFT JOIN buyers b ON b.product_id = pairs.p AND b.customer_id = a.customer_id
                GROUP BY pairs.e, pairs.p
                """,
                [[e for e, _ in top], [p for _, p in top]],
            )
            co_counts = {(e, p): (n, both) for e, p, n, both in cur.fetchall()}
    wanted = {f.recommendation.customer_id: [] for f, s in zip(facts_list, selections, strict=True) if s[3]}
    for f, s in zip(facts_list, selections, strict=True):
        names = wanted.get(f.recommendation.customer_id)
        if names is not None:
            names.extend(n for n in s[3] if n not in names)
    holds = concept_holds_batch(concept_names_by_customer=wanted) if wanted else {}
    today = profile.reference_time().date()
    sheets = []
    for f, (_, named, _, shared) in zip(facts_list, selections, strict=True):
        rec = f.recommendation
        own = bought.get(rec.customer_id, {})
        co = None
        if named:
            e = named[0]["product_id"]
            n, both = co_counts.get((e, rec.product_id), (0, 0))
            co = (n - (e in own), both - (e in own and rec.product_id in own))
        n_orders, order_dates = orders.get(rec.customer_id, (0, None))
        customer_holds = holds.get(rec.customer_id, {}) if shared else {}
        sheet = _build(f, today=today, bought=own, orders=n_orders, order_dates=order_dates, co=co,
                       holds={n: customer_holds.get(n) for n in shared})  # fmt: skip
        f._reason_sheet = sheet
        sheets.append(sheet)
    return sheets
