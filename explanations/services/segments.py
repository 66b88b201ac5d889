"""Customer segments: k-means over the customer vectors, k chosen by silhouette, each centroid put into words.

The words come from the ELM adapter (``explanations.ml.elm``: the centroid's soft tokens, grounded with the
segment's facts) when an adapter met the held-out goals of ``elm_evaluate``; otherwise, and always as
``Segment.facts``, from the segment's most over-represented products and concepts (labelled "grounded").
The semantic consistency cosine(encoder(text), centroid) of each description is stored so the two can be
compared. Runs in a worker (gpu queue): the adapter and the encoder load torch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import numpy as np
from django.db import connection, transaction

from recommendations.models import Customer, Product, Segment, SegmentRun
from recommendations.vectors import fetch_vectors

logger = logging.getLogger(__name__)

SILHOUETTE_SAMPLE = 2500  # customers scored for the silhouette (all of them is O(n^2))
TOP_PRODUCTS = 5
TOP_CONCEPTS = 3
MIN_PRODUCT_SHARE = 0.05  # a top product is bought by at least this share of the segment
INTERPOLATION_POINTS = 5


def choose_k(vectors: np.ndarray, *, k_min: int = 2, k_max: int = 12, seed: int = 0) -> tuple[int, dict, np.ndarray]:
    """Return (k with the best mean cosine silhouette, {k: silhouette}, labels at that k)."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    n = len(vectors)
    rng = np.random.default_rng(seed)
    sample = rng.choice(n, size=min(n, SILHOUETTE_SAMPLE), replace=False)
    scores, labels_by_k = {}, {}
    for k in range(k_min, min(k_max, n - 1) + 1):
        labels = KMeans(n_clusters=k, n_init=4, random_state=seed).fit_predict(vectors)
        if len(set(labels[sample].tolist())) < 2:
            continue
        scores[k] = float(silhouette_score(vectors[sample], labels[sample], metric="cosine"))
        labels_by_k[k] = labels
    if not scores:
        raise ValueError("too few customers to segment")
    best = max(scores, key=lambda k: (scores[k], -k))
    return best, scores, labels_by_k[best]


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm else v


def top_products(members: Sequence[int], everyone: int) -> list[dict]:
    """Return the products bought by the largest share of the segment, with their lift over all customers."""
    with connection.cursor() as cur:
        cur.execute(
            """
            WITH seg AS (
                SELECT product_id, count(DISTINCT customer_id) AS n FROM recommendations_purchase
                WHERE kind = 'sale' AND customer_id = ANY(%s) GROUP BY product_id
            )
            SELECT p.stock_code, p.description, seg.n,
                   (SELECT count(DISTINCT customer_id) FROM recommendations_purchase q
                    WHERE q.kind = 'sale' AND q.product_id = seg.product_id AND q.customer_id IS NOT NULL)
            FROM seg JOIN recommendations_product p ON p.id = seg.product_id
            WHERE p.is_merchandise AND seg.n >= %s
            ORDER BY seg.n DESC LIMIT 200
            """,
            [list(members), max(2, int(MIN_PRODUCT_SHARE * len(members)))],
        )
        rows = cur.fetchall()
    size = max(len(members), 1)
    found = [
        {
            "stock_code": code,
            "description": description,
            "share": n / size,
            "lift": (n / size) / (total / everyone) if total else 0.0,
        }
        for code, description, n, total in rows
    ]
    # Characteristic, not merely popular: the most over-represented of the widely bought ones.
    found.sort(key=lambda r: -(r["share"] * np.log(max(r["lift"], 1e-9))))
    return found[:TOP_PRODUCTS]


def top_concepts(labels: np.ndarray, ids: np.ndarray, segment: int) -> list[dict]:
    """Return the usable concepts whose mean customer score is highest in the segment relative to everyone."""
    from explanations.models import CustomerConcept

    rows = CustomerConcept.objects.filter(concept__usable=True, concept__is_active=True, customer_id__in=ids.tolist())
    by_concept: dict[str, dict[int, float]] = {}
    for name, cid, score in rows.values_list("concept__name", "customer_id", "score"):
        by_concept.setdefault(name, {})[cid] = score
    members = set(ids[labels == segment].tolist())
    out = []
    for name, scores in by_concept.items():
        inside = [s for cid, s in scores.items() if cid in members]
        if not inside:
            continue
        overall = float(np.mean(list(scores.values())))
        mean = float(np.mean(inside))
        out.append(
            {"concept": name, "mean_score": mean, "overall": overall, "lift": mean / overall if overall else 0.0}
        )
    out.sort(key=lambda c: -(c["mean_score"] - c["overall"]))
    return [c for c in out if c["mean_score"] > c["overall"]][:TOP_CONCEPTS]


def grounded_description(products: list[dict], concepts: list[dict], size: int) -> str:
    """Return a plain description of a segment from its facts (no model): what sets it apart."""
    text = f"{size:,} customers"
    if products:
        names = [p["description"].lower() for p in products[:3]]
        text += " who often buy " + (", ".join(names[:-1]) + " and " + names[-1] if len(names) > 1 else names[0])
    if concepts:
        text += "; more often than average: " + ", ".join(c["concept"].lower() for c in concepts)
    return text + "."


def nearest_products(point: np.ndarray, product_vectors: dict[int, np.ndarray], n: int = 3) -> list[int]:
    ids = np.array(list(product_vectors))
    matrix = np.stack([product_vectors[i] for i in ids]).astype(np.float64)
    return ids[np.argsort(-(matrix @ point))[:n]].tolist()


def _elm():
    """Return the ELM adapter when it met the held-out goals (it reads vectors), else None: the segments are
    then described from their purchase facts."""
    from explanations.services.descriptions import reading_adapter

    return reading_adapter()[0]


def segments_compute(*, job=None, k_min: int = 2, k_max: int = 12, seed: int = 0, use_elm: bool = True) -> SegmentRun:
    """Segment every customer with a vector; store the run and its segments (descriptions included)."""
    started = time.perf_counter()
    run = SegmentRun.objects.create(job=job)
    try:
        vectors = fetch_vectors(Customer._meta.db_table)
        ids = np.array(sorted(vectors))
        matrix = np.stack([_unit(vectors[i].astype(np.float64)) for i in ids])
        k, scores, labels = choose_k(matrix, k_min=k_min, k_max=k_max, seed=seed)
        from sklearn.metrics import silhouette_samples

        rng = np.random.default_rng(seed)
        sample = rng.choice(len(ids), size=min(len(ids), SILHOUETTE_SAMPLE), replace=False)
        per_customer = silhouette_samples(matrix[sample], labels[sample], metric="cosine")
        centroids = np.stack([_unit(matrix[labels == s].mean(axis=0)) for s in range(k)])
        versions = set(Customer.objects.filter(pk__in=ids.tolist()).values_list("embedding_version", flat=True))
        segments = []
        for s in range(k):
            members = ids[labels == s]
            products = top_products(members.tolist(), len(ids))
            concepts = top_concepts(labels, ids, s)
            in_sample = labels[sample] == s
            segments.append(
                {
                    "index": s,
                    "size": len(members),
                    "share": len(members) / len(ids),
                    "silhouette": float(per_customer[in_sample].mean()) if in_sample.any() else None,
                    "centroid": centroids[s],
                    "top_products": products,
                    "top_concepts": concepts,
                    "facts": grounded_description(products, concepts, len(members)),
                }
            )
        adapter = _elm() if use_elm else None
        source = "elm" if adapter is not None else "grounded"
        _describe(segments, adapter)
        interpolation = _interpolation(segments, adapter)
        with transaction.atomic():
            Segment.objects.bulk_create(
                Segment(
                    run=run,
                    index=seg["index"],
                    size=seg["size"],
                    share=seg["share"],
                    silhouette=seg["silhouette"],
                    centroid=seg["centroid"].astype(np.float32),
                    description=seg["description"],
                    description_source=source,
                    facts=seg["facts"],
                    consistency=seg.get("consistency"),
                    top_concepts=seg["top_concepts"],
                    top_products=seg["top_products"],
                )
                for seg in segments
            )
            run.k = k
            run.silhouette = scores[k]
            run.silhouette_by_k = {str(key): value for key, value in scores.items()}
            run.customers = len(ids)
            run.embedding_version = ", ".join(sorted(v for v in versions if v))
            run.description_source = source
            run.adapter_version = adapter.version if adapter is not None else ""
            run.interpolation = interpolation
            run.succeed()
            run.wall_seconds = round(time.perf_counter() - started, 1)
            run.save()
    except Exception as exc:
        with transaction.atomic():
            failed = SegmentRun.objects.select_for_update().get(pk=run.pk)
            if failed.status == SegmentRun.Status.RUNNING:
                failed.fail(error=f"{type(exc).__name__}: {exc}")
                failed.save(update_fields=["status", "error", "finished_at"])
        raise
    return run


def _consistency(texts: list[str], vectors: np.ndarray) -> list[float]:
    from explanations.ml.elm import semantic_consistency

    return [float(v) for v in semantic_consistency(texts, vectors)]


def _describe(segments: list[dict], adapter) -> None:
    """Set each segment's description: ELM decoding of its centroid (grounded in its facts), or the facts."""
    centroids = np.stack([seg["centroid"] for seg in segments]).astype(np.float32)
    if adapter is None:
        texts = [seg["facts"] for seg in segments]
    else:
        from explanations.ml.elm import decode

        texts = decode(centroids, evidence_prompt=[seg["facts"] for seg in segments], artifact=adapter)
    for seg, text, sc in zip(segments, texts, _consistency(texts, centroids), strict=True):
        seg["description"] = text.strip()
        seg["consistency"] = sc


def _interpolation(segments: list[dict], adapter) -> dict:
    """Decode points on the line between the two largest segments' centroids (ELM given the nearest products,
    or the nearest products alone)."""
    from explanations.ml.elm import interpolation_points

    if len(segments) < 2:
        return {}
    a, b = sorted(segments, key=lambda seg: -seg["size"])[:2]
    points = interpolation_points(a["centroid"], b["centroid"], INTERPOLATION_POINTS)
    product_vectors = fetch_vectors(Product._meta.db_table, where="is_merchandise")
    names = dict(Product.objects.filter(is_merchandise=True).values_list("id", "description"))
    nearest = [[names[pid].lower() for pid in nearest_products(p, product_vectors)] for p in points]
    if adapter is not None:
        from explanations.ml.elm import decode

        # Grounded like the segments: pure decoding of a point says little unless the adapter is strong.
        facts = ["Products closest to this point: " + ", ".join(n) + "." for n in nearest]
        texts = decode(points, evidence_prompt=facts, artifact=adapter)
    else:
        texts = ["Closest products: " + ", ".join(n) + "." for n in nearest]
    ts = np.linspace(0.0, 1.0, INTERPOLATION_POINTS)
    return {
        "from": a["index"],
        "to": b["index"],
        "source": "elm" if adapter is not None else "grounded",
        "points": [
            {"t": float(t), "text": text.strip(), "nearest_products": n, "consistency": sc}
            for t, text, n, sc in zip(ts, texts, nearest, _consistency(texts, points), strict=True)
        ],
    }
