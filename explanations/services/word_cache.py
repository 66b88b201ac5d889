"""Word attributions as dot products: each text's masked encodings are computed once and cached by hash.

The exact SIG value of word i (explanations.ml.sig) is ``cos(x, t) - cos(x with word i masked, t)``.
The encodings of ``x`` and its masked variants do not depend on the target ``t`` (the customer's or the
product's vector), so they are encoded once per text and encoder version, stored, and every
recommendation's attribution is ``M @ t / |t|`` over those unit rows.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import numpy as np
from django.db import connection, transaction

from explanations.ml.sig import MaskedVectors
from explanations.models import MaskedText


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# Missing texts are encoded bucket by bucket (by text hash), each bucket under an advisory lock, so shards
# running side by side split a cold cache's encoding instead of repeating it.
BUCKETS = 16


def _cached(texts: Iterable[str], version: str) -> dict[str, MaskedVectors]:
    out: dict[str, MaskedVectors] = {}
    hashes = [text_hash(t) for t in texts]
    for row in MaskedText.objects.filter(encoder_version=version, text_hash__in=hashes):
        vectors = np.frombuffer(bytes(row.vectors), dtype=np.float32).reshape(len(row.words) + 1, -1)
        spans = [tuple(s) for s in row.token_spans]
        out[row.text] = MaskedVectors(row.text, list(row.words), spans, list(row.tokens), vectors)
    return out


def _encode_and_store(texts: list[str], version: str) -> dict[str, MaskedVectors]:
    from explanations.ml.sig import masked_text_vectors

    encoded = masked_text_vectors(texts)
    with transaction.atomic():
        MaskedText.objects.bulk_create(
            [
                MaskedText(
                    text_hash=text_hash(m.text),
                    encoder_version=version,
                    text=m.text,
                    words=m.words,
                    token_spans=[list(s) for s in m.token_spans],
                    tokens=m.tokens,
                    vectors=m.vectors.tobytes(),
                )
                for m in encoded
            ],
            ignore_conflicts=True,  # another shard cached the same text meanwhile
            batch_size=1000,
        )
    return {m.text: m for m in encoded}


def _bucket_lock(bucket: int, version: str, *, wait: bool) -> bool:
    """Take the session advisory lock of one bucket of texts (``wait``: block until it is free)."""
    key = int(text_hash(f"masked-text-bucket\n{version}\n{bucket}")[:15], 16)  # 60 bits fit a bigint
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_lock(%s), true" if wait else "SELECT pg_try_advisory_lock(%s)", [key])
        return bool(cur.fetchone()[-1])


def _bucket_unlock(bucket: int, version: str) -> None:
    key = int(text_hash(f"masked-text-bucket\n{version}\n{bucket}")[:15], 16)
    with connection.cursor() as cur:
        cur.execute("SELECT pg_advisory_unlock(%s)", [key])


def masked_vectors_for(texts: Iterable[str]) -> dict[str, MaskedVectors]:
    """Return each text's masked encodings, encoding (and storing) only the ones not cached yet.

    Missing texts are encoded bucket by bucket, each under an advisory lock: a shard skips a bucket another
    shard is encoding, does the free ones, then waits for the skipped ones and reads them from the cache.
    """
    from recommendations.ml.encoder import encoder_version

    wanted = {t for t in texts if t and t.split()}
    version = encoder_version()
    out = _cached(wanted, version)
    buckets: dict[int, list[str]] = {}
    for text in sorted(wanted - set(out)):
        buckets.setdefault(int(text_hash(text)[:8], 16) % BUCKETS, []).append(text)
    skipped: list[int] = []
    for wait, todo in ((False, sorted(buckets)), (True, skipped)):
        for bucket in todo:
            if not _bucket_lock(bucket, version, wait=wait):
                skipped.append(bucket)  # another shard is encoding it: come back when it is done
                continue
            try:
                found = _cached(buckets[bucket], version)
                out.update(found)
                rest = [t for t in buckets[bucket] if t not in found]
                if rest:
                    out.update(_encode_and_store(rest, version))
            finally:
                _bucket_unlock(bucket, version)
    return out


def attributions(masked: MaskedVectors, targets: np.ndarray, *, model_version: str) -> list[dict]:
    """Return the exact SIG attribution of ``masked.text`` for each row of ``targets``, as stored dicts.

    The same fields as :meth:`explanations.ml.sig.WordAttribution.as_dict` (``method="exact"``).
    """
    targets = np.asarray(targets, dtype=np.float64)
    norms = np.linalg.norm(targets, axis=1, keepdims=True)
    scores = (targets / np.where(norms > 0, norms, 1.0)) @ masked.vectors.astype(np.float64).T
    drops = scores[:, :1] - scores[:, 1:]
    totals = np.abs(drops).sum(axis=1, keepdims=True)
    shares = np.divide(drops, totals, out=np.zeros_like(drops), where=totals > 0)
    common = {
        "kind": "sig",
        "text": masked.text,
        "words": list(masked.words),
        "token_spans": [list(s) for s in masked.token_spans],
        "tokens": list(masked.tokens),
        "completeness_errors": [0.0] * len(masked.words),
        "steps": 0,
        "method": "exact",
        "elapsed_s": 0.0,
        "model_version": model_version,
    }
    return [
        {
            **common,
            "attributions": d.tolist(),
            "normalized": s.tolist(),
            "score": float(row[0]),
            "baseline_scores": row[1:].tolist(),
        }
        for d, s, row in zip(drops, shares, scores, strict=True)
    ]
