"""Purchase lines imported before keyed identifiers: invoice numbers and line keys become keyed pseudonyms.

Before, ``Purchase.invoice`` held the source invoice number (which re-identified customers through the
public copy of the data file) and ``line_key`` an unkeyed MD5 over the line's source values and the
customer's pseudonym (recomputable from the public file). This rewrites both with the functions the
importer now uses (``core.pseudonyms``), so re-imports of the same file still find these lines.

Lines an erasure detached (customer NULL, random line key) keep a random key and get a random invoice
value per invoice: nothing of them is recomputable, as for lines detached from now on.

Also grants the reviewer group the permission to clear a product's personal-data quarantine.
"""

import hashlib
import secrets

from django.conf import settings
from django.db import migrations

BATCH = 50_000


def _old_key(invoice, stock_code, description, quantity, unit_price, occurred_local, pseudonym):
    fields = (invoice, stock_code, description, str(quantity), unit_price, occurred_local, pseudonym or "")
    return hashlib.md5("\x1f".join(fields).encode(), usedforsecurity=False).hexdigest()


def rewrite_identifiers(apps, schema_editor):
    from core.pseudonyms import line_key, pseudonym_key, pseudonymize_invoice

    Purchase = apps.get_model("recommendations", "Purchase")
    if not Purchase.objects.exists():
        return  # a new database: nothing imported yet (and no key needed)
    key = pseudonym_key()
    schema_editor.connection.ensure_connection()
    pg = schema_editor.connection.connection  # psycopg: a server-side cursor streams the lines
    random_invoice: dict[str, str] = {}
    with pg.cursor() as writer, pg.cursor(name="keyed_identifiers_read") as cur:
        writer.execute("CREATE TEMP TABLE keyed_identifiers (id bigint PRIMARY KEY, invoice text, line_key text)")
        cur.execute(
            """
            SELECT p.id, p.invoice, pr.stock_code, p.description, p.quantity, p.unit_price::text,
                   to_char(p.occurred_at AT TIME ZONE %s, 'YYYY-MM-DD HH24:MI:SS'), c.pseudonym, p.line_key
            FROM recommendations_purchase p
            JOIN recommendations_product pr ON pr.id = p.product_id
            LEFT JOIN recommendations_customer c ON c.id = p.customer_id
            ORDER BY p.id
            """,
            [settings.TIME_ZONE],
        )
        while rows := cur.fetchmany(BATCH):
            out = []
            for pk, invoice, code, description, quantity, price, local, pseudonym, stored_key in rows:
                natural = pseudonym is not None or stored_key == _old_key(
                    invoice, code, description, quantity, price, local, pseudonym
                )
                if natural:
                    fields = (invoice, code, description, str(quantity), price, local, pseudonym or "")
                    out.append((pk, pseudonymize_invoice(invoice, key=key), line_key(fields, key=key)))
                else:  # detached by an erasure: keep the random key, give the invoice a random value too
                    if invoice not in random_invoice:
                        random_invoice[invoice] = invoice[:1].rstrip("0123456789") + secrets.token_hex(7)
                    out.append((pk, random_invoice[invoice], stored_key))
            with writer.copy("COPY keyed_identifiers FROM STDIN") as copy:
                for row in out:
                    copy.write_row(row)
        writer.execute(
            """
            UPDATE recommendations_purchase p SET invoice = k.invoice, line_key = k.line_key
            FROM keyed_identifiers k WHERE k.id = p.id
            """
        )
        writer.execute("DROP TABLE keyed_identifiers")


def grant_clear_quarantine(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    reviewer, _ = Group.objects.get_or_create(name="reviewer")
    reviewer.permissions.add(*Permission.objects.filter(codename="clear_pii_quarantine"))


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0005_privacy"),
        ("core", "0001_roles"),
    ]

    operations = [
        migrations.RunPython(rewrite_identifiers, migrations.RunPython.noop, elidable=False),
        migrations.RunPython(grant_clear_quarantine, migrations.RunPython.noop),
    ]
