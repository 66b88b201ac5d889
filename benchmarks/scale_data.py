"""Row 4's synthetic data: generated from the benchmark database's real embeddings, loaded by binary COPY.

``bench_scale.py generate`` and ``bench_scale.py load`` call :func:`generate` and :func:`load`; the
module docstring of ``bench_scale.py`` says how the products and customers are derived.
"""

from __future__ import annotations

import time

import numpy as np
from common import ROOT, admin_conninfo, log, setup_django

DATA = ROOT / "benchmarks" / "data"
DIM = 384


# --------------------------------------------------------------------------- generation


def _real_data() -> tuple[np.ndarray, list[int], dict[int, list[tuple[int, float]]]]:
    """Return the real product vectors, their ids, and each real customer's (product id, weight) list."""
    setup_django()
    from recommendations import profile
    from recommendations.models import Customer, Product
    from recommendations.vectors import fetch_vectors

    vectors = fetch_vectors(Product._meta.db_table)
    if len(vectors) < 100:
        raise SystemExit("the benchmark database has no product embeddings yet: run benchmarks/setup_data.py")
    ids = sorted(vectors)
    matrix = np.stack([vectors[i] for i in ids]).astype(np.float32)
    customer_ids = list(Customer.objects.filter(embedding__isnull=False).values_list("id", flat=True))
    weights = profile.purchase_weights(customer_ids, reference=profile.reference_time())
    known = set(ids)
    templates = {
        cid: [(pw.product_id, pw.weight) for pw in ws if pw.product_id in known and pw.weight > 0]
        for cid, ws in weights.items()
    }
    customers = fetch_vectors(Customer._meta.db_table)
    _real_data.customer_top1 = (np.stack(list(customers.values())) @ matrix.T).max(axis=1)
    return matrix, ids, {cid: t for cid, t in templates.items() if t}


def _normalize(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def generate(*, n_products: int, n_customers: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    real, real_ids, templates = _real_data()
    n_real = len(real)
    log(f"real data: {n_real} products, {len(templates)} customer templates")
    sims = real @ real.T
    np.fill_diagonal(sims, -1)
    # Each real product's cosine to its nearest other real product (a few descriptions embed identically).
    nn_cos = np.clip(sims.max(axis=1), -1.0, 0.999)
    neighbours = np.argsort(-sims, axis=1)[:, :10]
    # Directions of variation: the real catalogue's covariance (eigen-decomposition, 384 x 384).
    centered = real - real.mean(axis=0)
    eigval, eigvec = np.linalg.eigh(centered.T @ centered / n_real)
    scale = np.sqrt(np.clip(eigval, 0, None))

    # Parents: every real product about equally often.
    parents = np.resize(rng.permutation(n_real), n_products)
    rng.shuffle(parents)
    base = real[parents].copy()
    mixed = rng.random(n_products) < 0.3
    partner = neighbours[parents, rng.integers(0, 10, n_products)]
    a = rng.uniform(0.5, 0.8, n_products)[:, None]
    base[mixed] = a[mixed] * real[parents[mixed]] + (1 - a[mixed]) * real[partner[mixed]]
    base = _normalize(base)
    noise = (rng.standard_normal((n_products, DIM)) * scale) @ eigvec.T
    noise -= np.sum(noise * base, axis=1, keepdims=True) * base  # orthogonal to the base
    noise = _normalize(noise)
    cos = rng.choice(nn_cos, n_products)
    products = _normalize(cos[:, None] * base + np.sqrt(1 - cos[:, None] ** 2) * noise).astype(np.float32)
    log(f"products: {n_products} (mixtures {mixed.mean():.0%})")

    # Customers: real purchase lists mapped onto descendants of the purchased real products.
    index_of = {pid: i for i, pid in enumerate(real_ids)}
    order = np.argsort(parents, kind="stable")
    starts = np.searchsorted(parents[order], np.arange(n_real + 1))
    template_items = [np.array([index_of[p] for p, _ in t], dtype=np.int64) for t in templates.values()]
    template_weights = [np.array([w for _, w in t], dtype=np.float64) for t in templates.values()]
    customers = np.empty((n_customers, DIM), dtype=np.float32)
    items_per_customer = np.empty(n_customers, dtype=np.int32)
    chunk = 50_000
    from scipy import sparse

    for lo in range(0, n_customers, chunk):
        hi = min(lo + chunk, n_customers)
        rows, cols, vals = [], [], []
        picks = rng.integers(0, len(template_items), hi - lo)
        keep_p = rng.uniform(0.5, 1.0, hi - lo)
        for r, (t, p) in enumerate(zip(picks, keep_p, strict=True)):
            items, weights = template_items[t], template_weights[t]
            keep = rng.random(len(items)) < p
            if not keep.any():
                keep[rng.integers(0, len(items))] = True
            items, weights = items[keep], weights[keep] * rng.lognormal(0, 0.3, keep.sum())
            counts = starts[items + 1] - starts[items]
            children = order[starts[items] + (rng.random(len(items)) * counts).astype(np.int64)]
            rows.append(np.full(len(items), r))
            cols.append(children)
            vals.append(weights)
            items_per_customer[lo + r] = len(items)
        w = sparse.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(hi - lo, n_products)
        )
        customers[lo:hi] = _normalize(np.asarray(w @ products, dtype=np.float32))
        if (hi // chunk) % 4 == 0 or hi == n_customers:
            log(f"customers: {hi:,}/{n_customers:,}")
    DATA.mkdir(parents=True, exist_ok=True)
    np.save(DATA / "products.npy", products)
    np.save(DATA / "customers.npy", customers)
    stats = {
        "seed": seed,
        "products": n_products,
        "customers": n_customers,
        "real_products": n_real,
        "real_customer_templates": len(templates),
        "mixture_share": float(mixed.mean()),
        "real_nn_cosine_quantiles": np.quantile(nn_cos, [0.1, 0.5, 0.9]).round(3).tolist(),
        "synthetic_parent_cosine_quantiles": np.quantile(cos, [0.1, 0.5, 0.9]).round(3).tolist(),
        "items_per_customer_quantiles": np.quantile(items_per_customer, [0.1, 0.5, 0.9]).tolist(),
        "real_items_per_customer_quantiles": np.quantile([len(t) for t in template_items], [0.1, 0.5, 0.9]).tolist(),
    }
    # Structure check: synthetic customers' top-1 product cosine vs real customers' over the real catalogue.
    sample = customers[rng.choice(n_customers, 2000, replace=False)]
    top1 = (sample @ products.T).max(axis=1)
    stats["synthetic_customer_top1_cosine_quantiles"] = np.quantile(top1, [0.1, 0.5, 0.9]).round(3).tolist()
    stats["real_customer_top1_cosine_quantiles"] = (
        np.quantile(_real_data.customer_top1, [0.1, 0.5, 0.9]).round(3).tolist()
    )
    return stats


# --------------------------------------------------------------------------- loading


def _copy_binary(ids: np.ndarray, vectors: np.ndarray) -> bytes:
    """Build PostgreSQL binary COPY data for rows (int4 id, vector) without a Python loop per row."""
    n = len(ids)
    row = np.dtype(
        [
            ("nf", ">i2"),
            ("l1", ">i4"),
            ("id", ">i4"),
            ("l2", ">i4"),
            ("dim", ">i2"),
            ("unused", ">i2"),
            ("v", ">f4", DIM),
        ]
    )
    arr = np.empty(n, dtype=row)
    arr["nf"], arr["l1"], arr["id"] = 2, 4, ids
    arr["l2"], arr["dim"], arr["unused"] = 4 + 4 * DIM, DIM, 0
    arr["v"] = vectors
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    return header + arr.tobytes() + (-1).to_bytes(2, "big", signed=True)


def _connect(database: str, *, autocommit: bool = True):
    import psycopg
    from pgvector.psycopg import register_vector

    conn = psycopg.connect(admin_conninfo(database), autocommit=autocommit)
    register_vector(conn)
    return conn


def load(*, database: str) -> dict:
    import psycopg

    setup_django()
    with psycopg.connect(admin_conninfo("postgres"), autocommit=True) as admin:
        if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            admin.execute(f'CREATE DATABASE "{database}"')
    with psycopg.connect(admin_conninfo(database), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    stats = {}
    for table, name in (("scale_product", "products"), ("scale_customer", "customers")):
        vectors = np.load(DATA / f"{name}.npy", mmap_mode="r")
        started = time.perf_counter()
        with psycopg.connect(admin_conninfo(database)) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
            conn.execute(f"CREATE TABLE {table} (id integer PRIMARY KEY, embedding vector({DIM}) NOT NULL)")
            with conn.cursor().copy(f"COPY {table} (id, embedding) FROM STDIN (FORMAT BINARY)") as cp:
                step = 50_000
                for lo in range(0, len(vectors), step):
                    hi = min(lo + step, len(vectors))
                    data = _copy_binary(np.arange(lo + 1, hi + 1, dtype=np.int64), np.asarray(vectors[lo:hi]))
                    # One COPY stream: drop the per-chunk header and trailer except at the ends.
                    if lo > 0:
                        data = data[19:]
                    if hi < len(vectors):
                        data = data[:-2]
                    cp.write(data)
            conn.commit()
        with _connect(database) as conn:
            conn.execute(f"VACUUM ANALYZE {table}")
            size = conn.execute(f"SELECT pg_total_relation_size('{table}')").fetchone()[0]
        stats[table] = {"rows": len(vectors), "copy_s": time.perf_counter() - started, "table_mib": size / 2**20}
        log(f"loaded {table}: {len(vectors):,} rows in {stats[table]['copy_s']:.0f} s, {size / 2**20:.0f} MiB")
    return stats
