"""Set-based SQL of an import: merge the staged lines, then recompute the touched products and customers.

Products, customers and purchase lines are merged with INSERT ... SELECT ... ON CONFLICT DO NOTHING
(``Purchase.line_key`` makes re-imports and overlapping files idempotent); then the aggregates of the
touched products and customers are recomputed over all their stored lines.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

from django.conf import settings
from psycopg import sql

from recommendations.models import Customer, Product, Purchase
from recommendations.services.cleaning import MERCHANDISE_PATTERN, Kind

# A load of at least this many lines, and this share of the stored ones, rebuilds indexes instead.
BULK_MIN_ROWS = 50_000
BULK_MIN_SHARE = 0.25
# Customer.revenue is numeric(14, 2).
MAX_REVENUE = 10**12


class RevenueOutOfRange(Exception):
    """A customer's lines add up to more than the revenue column holds; the message names the pseudonym."""


def purchases_merge(cur, *, run_id: int, stock_codes: set[str], customers: set[str]) -> int:
    """Create missing products and customers, insert new purchase lines; return how many were inserted."""
    product, customer, purchase = Product._meta.db_table, Customer._meta.db_table, Purchase._meta.db_table
    cur.execute(
        f"""
        INSERT INTO {product} (stock_code, description, is_merchandise, units_sold, buyer_count,
                               embedding_version, embedding_input_hash, pii_quarantined, pii_codes, updated_at)
        SELECT code, '', code ~ %s, 0, 0, '', '', false, '[]'::jsonb, now() FROM unnest(%s::text[]) AS code
        ON CONFLICT (stock_code) DO NOTHING
        """,  # noqa: S608 - table names come from model metadata
        [MERCHANDISE_PATTERN, sorted(stock_codes)],
    )
    cur.execute(
        f"""
        INSERT INTO {customer} (pseudonym, region, order_count, revenue, embedding_version,
                                embedding_input_hash, updated_at)
        SELECT pseudonym, '', 0, 0, '', '', now() FROM unnest(%s::text[]) AS pseudonym
        ON CONFLICT (pseudonym) DO NOTHING
        """,  # noqa: S608
        [sorted(customers)],
    )
    cur.execute(f"SELECT count(*) FROM {purchase}")  # noqa: S608
    stored = cur.fetchone()[0]
    cur.execute("SELECT count(*) FROM import_stage")
    staged = cur.fetchone()[0]
    bulk = staged >= BULK_MIN_ROWS and staged >= stored * BULK_MIN_SHARE
    with indexes_dropped(cur, purchase) if bulk else contextlib.nullcontext():
        # The first occurrence of a key in the file wins; keys already stored are skipped. ON CONFLICT
        # stays as a guard although imports are serialized by the advisory lock (in bulk mode the
        # unique index is being rebuilt, and there is nothing to conflict with).
        cur.execute(
            f"""
            INSERT INTO {purchase} (line_key, customer_id, product_id, invoice, description, quantity,
                                    unit_price, occurred_at, kind, import_run_id)
            SELECT s.line_key, c.id, p.id, s.invoice, s.description, s.quantity, s.unit_price,
                   s.occurred_local AT TIME ZONE %s, s.kind, %s
            FROM import_stage s
            JOIN {product} p ON p.stock_code = s.stock_code
            LEFT JOIN {customer} c ON c.pseudonym = s.customer
            LEFT JOIN (
                -- Few keys repeat, so only they are joined back (cheaper than joining every row).
                SELECT line_key, min(line_no) AS first_no FROM import_stage GROUP BY line_key HAVING count(*) > 1
            ) repeated ON repeated.line_key = s.line_key
            WHERE (repeated.first_no IS NULL OR repeated.first_no = s.line_no)
              AND NOT EXISTS (SELECT 1 FROM {purchase} e WHERE e.line_key = s.line_key)
            """  # noqa: S608
            + ("" if bulk else "ON CONFLICT (line_key) DO NOTHING"),
            [settings.TIME_ZONE, run_id],
        )
        inserted = cur.rowcount
    if inserted >= stored * BULK_MIN_SHARE:
        # The aggregates below plan on these statistics; stale ones (an empty table) give slow plans.
        cur.execute(f"ANALYZE {purchase}, {product}, {customer}")
    return inserted


@contextlib.contextmanager
def indexes_dropped(cur, table: str) -> Iterator[None]:
    """Drop the table's unique and foreign-key constraints and its indexes but the primary key; restore them.

    Building each index once after a large insert is several times faster than updating 11 indexes and
    queueing 3 foreign-key checks per row. It is one transaction, so a failure restores them all, and
    the definitions are read from the catalog, so they come back exactly as the migrations made them
    (same names); re-adding the constraints validates the new rows. The table stays locked
    (ACCESS EXCLUSIVE) until the import commits.
    """
    cur.execute(
        """
        SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE conrelid = %s::regclass AND contype IN ('u', 'f')
        ORDER BY contype DESC, conname
        """,
        [table],
    )
    constraints = cur.fetchall()  # unique ones first: foreign keys are added back last
    cur.execute(
        """
        SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i
        WHERE i.indrelid = %s::regclass
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
        ORDER BY 1
        """,
        [table],
    )
    indexes = cur.fetchall()
    table_sql = sql.Identifier(table)
    for name, _, _ in reversed(constraints):
        cur.execute(sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(table_sql, sql.Identifier(name)))
    for name, _ in indexes:
        cur.execute(sql.SQL("DROP INDEX {}").format(sql.SQL(name)))  # regclass text is already quoted
    yield
    for _, definition in indexes:
        cur.execute(definition)
    for name, _, definition in constraints:
        cur.execute(
            sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(table_sql, sql.Identifier(name), sql.SQL(definition))
        )


def products_update(cur, *, stock_codes: list[str]) -> None:
    """Recompute the aggregates of the products in this file over all their stored lines."""
    product, purchase = Product._meta.db_table, Purchase._meta.db_table
    cur.execute(
        f"""
        CREATE TEMP TABLE import_products ON COMMIT DROP AS
        SELECT p.id FROM {product} p WHERE p.stock_code = ANY(%s::text[])
        """,  # noqa: S608
        [stock_codes],
    )
    cur.execute("ANALYZE import_products")
    # units_sold is net of returns (floored at 0): an order cancelled minutes later was not sold.
    # The canonical description is the most frequent "clean" variant (no lowercase, no '?'),
    # else the most frequent variant; ties go to the first in byte order (locale-independent).
    cur.execute(
        f"""
        WITH agg AS (
            SELECT product_id,
                   min(unit_price) FILTER (WHERE kind = %(sale)s) AS price_min,
                   round((percentile_cont(0.5) WITHIN GROUP (ORDER BY unit_price::float8)
                          FILTER (WHERE kind = %(sale)s))::numeric, 3) AS price_median,
                   max(unit_price) FILTER (WHERE kind = %(sale)s) AS price_max,
                   greatest(coalesce(sum(quantity) FILTER (WHERE kind IN (%(sale)s, %(return)s)), 0), 0) AS units,
                   count(DISTINCT customer_id) FILTER (WHERE kind = %(sale)s) AS buyers
            FROM {purchase} WHERE product_id IN (SELECT id FROM import_products)
            GROUP BY product_id
        ), variants AS (
            SELECT product_id, description, count(*) AS n
            FROM {purchase}
            WHERE product_id IN (SELECT id FROM import_products) AND description <> ''
            GROUP BY product_id, description
        ), canonical AS (
            SELECT DISTINCT ON (product_id) product_id, description FROM variants
            ORDER BY product_id,
                     (description = upper(description) AND strpos(description, '?') = 0) DESC,
                     n DESC, description COLLATE "C"
        )
        UPDATE {product} p
        SET description = coalesce(c.description, ''),
            is_merchandise = p.stock_code ~ %(merchandise)s,
            price_min = a.price_min, price_median = a.price_median, price_max = a.price_max,
            units_sold = coalesce(a.units, 0), buyer_count = coalesce(a.buyers, 0),
            updated_at = now()
        FROM import_products t
        LEFT JOIN agg a ON a.product_id = t.id
        LEFT JOIN canonical c ON c.product_id = t.id
        WHERE p.id = t.id
        """,  # noqa: S608
        {"sale": Kind.SALE, "return": Kind.RETURN, "merchandise": MERCHANDISE_PATTERN},
    )


def customers_update(cur, *, country_of: dict[str, str]) -> None:
    """Recompute first/last purchase, order count and revenue of the customers in this file."""
    customer, purchase = Customer._meta.db_table, Purchase._meta.db_table
    # The countries live in this temporary table only; it is dropped at commit.
    cur.execute(
        """
        CREATE TEMP TABLE import_customer_country ON COMMIT DROP AS
        SELECT * FROM unnest(%s::text[], %s::text[]) AS i(customer, country)
        """,
        [list(country_of), list(country_of.values())],
    )
    cur.execute("ANALYZE import_customer_country")
    cur.execute(
        f"""
        CREATE TEMP TABLE import_customer_totals ON COMMIT DROP AS
        WITH touched AS (
            SELECT c.id FROM {customer} c JOIN import_customer_country i ON i.customer = c.pseudonym
        ), agg AS (
            SELECT customer_id,
                   min(occurred_at) FILTER (WHERE kind = %(sale)s) AS first_at,
                   max(occurred_at) FILTER (WHERE kind = %(sale)s) AS last_at,
                   count(DISTINCT invoice) FILTER (WHERE kind = %(sale)s) AS orders,
                   round(coalesce(sum(quantity::numeric * unit_price)
                                  FILTER (WHERE kind IN (%(sale)s, %(return)s)), 0), 2) AS revenue
            FROM {purchase} WHERE customer_id IN (SELECT id FROM touched)
            GROUP BY customer_id
        )
        SELECT t.id, a.first_at, a.last_at, a.orders, a.revenue FROM touched t LEFT JOIN agg a ON a.customer_id = t.id
        """,  # noqa: S608
        {"sale": Kind.SALE, "return": Kind.RETURN},
    )
    # Each line is within MAX_LINE_AMOUNT; many of them could still overflow the column: say so, by pseudonym.
    cur.execute(
        f"""
        SELECT c.pseudonym FROM import_customer_totals t JOIN {customer} c ON c.id = t.id
        WHERE abs(t.revenue) >= %s ORDER BY c.pseudonym LIMIT 1
        """,  # noqa: S608
        [MAX_REVENUE],
    )
    if row := cur.fetchone():
        raise RevenueOutOfRange(
            f"The lines of customer {row[0]} add up to more than {MAX_REVENUE:,} (the revenue column's limit); "
            "check their quantities and prices."
        )
    cur.execute(
        f"""
        UPDATE {customer} c
        SET first_purchase_at = t.first_at, last_purchase_at = t.last_at,
            order_count = coalesce(t.orders, 0), revenue = coalesce(t.revenue, 0), updated_at = now()
        FROM import_customer_totals t
        WHERE c.id = t.id
        """  # noqa: S608
    )


def products_quarantine(cur, *, pii_by_code: dict[str, set[str]]) -> list[str]:
    """Hold back the products whose descriptions held personal data; return their stock codes (sorted).

    The flag is only ever set here: a reviewer clears it (recommendations.services.quarantine).
    """
    if not pii_by_code:
        return []
    codes = sorted(pii_by_code)
    kinds = [sorted(pii_by_code[code]) for code in codes]
    cur.execute(
        f"""
        UPDATE {Product._meta.db_table} p
        SET pii_quarantined = true, updated_at = now(),
            pii_codes = (SELECT coalesce(jsonb_agg(DISTINCT k ORDER BY k), '[]'::jsonb)
                         FROM jsonb_array_elements_text(p.pii_codes || q.kinds) AS k)
        FROM (SELECT code, kinds::jsonb FROM unnest(%s::text[], %s::text[]) AS q(code, kinds)) q
        WHERE p.stock_code = q.code
        """,  # noqa: S608
        [codes, [json.dumps(k) for k in kinds]],
    )
    return codes
