"""Measures of whether decoded text is about the vector it came from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def semantic_consistency(texts: Sequence[str], embeddings: np.ndarray) -> np.ndarray:
    """SC_i = cosine(encoder(texts[i]), embeddings[i]) (the ELM paper's semantic consistency)."""
    from recommendations.ml.encoder import encode

    vectors = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    if len(texts) != len(vectors):
        raise ValueError("one text per embedding")
    encoded = encode(list(texts))
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors = vectors / np.where(norms == 0, 1.0, norms)
    return np.sum(encoded * vectors, axis=1).astype(np.float32)
