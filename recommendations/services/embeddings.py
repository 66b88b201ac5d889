"""Embedding writes: product vectors from descriptions (model work), customer vectors from purchases.

Both are incremental: each row stores a hash of its inputs and the model version, and only rows
whose hash changed are recomputed, so a re-run on unchanged data does no model work.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from recommendations import profile
from recommendations.models import Customer, Product
from recommendations.vectors import VectorWriter, fetch_vectors, write_vectors


def product_embedding_text(description: str) -> str:
    """Return the text the encoder sees for a product (the cleaned canonical description)."""
    return " ".join(description.split()).lower()


def product_input_hash(description: str, model_version: str) -> str:
    return hashlib.sha256(f"{model_version}\x1f{product_embedding_text(description)}".encode()).hexdigest()


def products_needing_embedding(*, model_version: str) -> list[int]:
    """Return ids of products whose embedding is missing or was computed from other inputs.

    Shortest texts first: consecutive ids become one shard, and texts of similar length pad less in the
    encoder's batches (ordered by id, a shard's batches carry ~8% padding on the real catalogue).
    """
    stale = []
    rows = Product.objects.exclude(description="").values_list("id", "description", "embedding_input_hash")
    for pk, description, stored in rows.iterator(chunk_size=5000):
        if stored != product_input_hash(description, model_version):
            stale.append((len(product_embedding_text(description)), pk))
    return [pk for _, pk in sorted(stale)]


def products_embed(*, product_ids: Sequence[int]) -> int:
    """Embed the given products (skipping those already current); return how many were encoded."""
    from recommendations.ml.encoder import encode, encoder_version

    version = encoder_version()
    todo = [
        (pk, description)
        for pk, description, stored in Product.objects.filter(pk__in=product_ids).values_list(
            "id", "description", "embedding_input_hash"
        )
        if description and stored != product_input_hash(description, version)
    ]
    if not todo:
        return 0
    # Encode one batch at a time and write it without waiting: the server maintains the HNSW index for
    # one batch while the model encodes the next (see VectorWriter); only the last batch's write is
    # waited for. One transaction, as before.
    chunk = settings.ELM_ENCODER_BATCH_SIZE
    todo.sort(key=lambda item: (len(product_embedding_text(item[1])), item[0]))
    with transaction.atomic(), VectorWriter(Product._meta.db_table, now=timezone.now()) as writer:
        for start in range(0, len(todo), chunk):
            part = todo[start : start + chunk]
            vectors = encode([product_embedding_text(d) for _, d in part])
            writer.write(
                [(pk, vec, version, product_input_hash(d, version)) for (pk, d), vec in zip(part, vectors, strict=True)]
            )
    return len(todo)


# --------------------------------------------------------------------------- customers


def customer_profile_version() -> str:
    return f"weighted-mean(log1p-qty,half-life={settings.ELM_RECENCY_HALF_LIFE_DAYS:g}d)"


def customer_input_hashes(*, customer_ids: Sequence[int] | None = None) -> dict[int, str]:
    """Return, per customer, a hash of everything its vector depends on (purchases, product vectors)."""
    reference = profile.reference_time()
    salt = f"{customer_profile_version()}|{reference.isoformat()}"
    where = "AND p.customer_id = ANY(%s)" if customer_ids is not None else ""
    params: list = [salt]
    if customer_ids is not None:
        params.append(list(customer_ids))
    with connection.cursor() as cur:
        cur.execute(
            f"""
            SELECT p.customer_id,
                   md5(%s || string_agg(
                       p.product_id::text || ':' || p.quantity::text || ':' || p.occurred_at::text
                       || ':' || pr.embedding_input_hash, ',' ORDER BY p.id))
            FROM recommendations_purchase p
            JOIN recommendations_product pr ON pr.id = p.product_id
            WHERE p.customer_id IS NOT NULL AND p.kind IN ('sale', 'return') {where}
            GROUP BY p.customer_id
            """,  # noqa: S608 - the only interpolation is a fixed clause
            params,
        )
        return dict(cur.fetchall())


def customers_needing_embedding() -> list[int]:
    current = dict(Customer.objects.values_list("id", "embedding_input_hash"))
    return sorted(cid for cid, h in customer_input_hashes().items() if current.get(cid) != h)


def customers_embed(*, customer_ids: Sequence[int]) -> int:
    """Recompute the vectors of the given customers from their purchases; return how many changed."""
    hashes = customer_input_hashes(customer_ids=customer_ids)
    current = dict(Customer.objects.filter(pk__in=customer_ids).values_list("id", "embedding_input_hash"))
    todo = [cid for cid in customer_ids if cid in hashes and current.get(cid) != hashes[cid]]
    if not todo:
        return 0
    reference = profile.reference_time()
    weights = profile.purchase_weights(todo, reference=reference)
    product_ids = {pw.product_id for ws in weights.values() for pw in ws}
    vectors = fetch_vectors(Product._meta.db_table, product_ids)
    version = customer_profile_version()
    rows, empty = [], []
    for cid in todo:
        vec, _ = profile.customer_vector(weights.get(cid, []), vectors)
        if vec is None:
            empty.append(cid)
        else:
            rows.append((cid, vec, version, hashes[cid]))
    now = timezone.now()
    with transaction.atomic():
        write_vectors(Customer._meta.db_table, rows, now=now)
        for cid in empty:
            # Nothing positive left (e.g. everything returned): no vector, but remember the inputs.
            Customer.objects.filter(pk=cid).update(
                embedding=None, embedding_version=version, embedding_input_hash=hashes[cid], embedded_at=now
            )
    return len(todo)
