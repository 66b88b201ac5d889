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
from django.db import transaction

from explanations.ml.sig import MaskedVectors
from explanations.models import MaskedText


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def masked_vectors_for(texts: Iterable[str]) -> dict[str, MaskedVectors]:
    """Return each text's masked encodings, encoding (and storing) only the ones not cached yet."""
    from explanations.ml.sig import masked_text_vectors
    from recommendations.ml.encoder import encoder_version

    wanted = {t for t in texts if t and t.split()}
    version = encoder_version()
    hashes = {text_hash(t): t for t in wanted}
    out: dict[str, MaskedVectors] = {}
    for row in MaskedText.objects.filter(encoder_version=version, text_hash__in=list(hashes)):
        vectors = np.frombuffer(bytes(row.vectors), dtype=np.float32).reshape(len(row.words) + 1, -1)
        spans = [tuple(s) for s in row.token_spans]
        out[row.text] = MaskedVectors(row.text, list(row.words), spans, list(row.tokens), vectors)
    missing = sorted(wanted - set(out))
    if missing:
        encoded = masked_text_vectors(missing)
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
        out.update({m.text: m for m in encoded})
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
