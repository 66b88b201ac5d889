"""Decoding: a vector's soft tokens (optionally with evidence facts) into text; points between vectors."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from explanations.ml.elm.adapter import AdapterArtifact, get_adapter
from explanations.ml.elm.prompts import task_messages


def decode(
    embeddings: np.ndarray,
    *,
    evidence_prompt: str | Sequence[str | None] | None = None,
    max_new_tokens: int = 60,
    task: str = "customer",
    artifact: AdapterArtifact | None = None,
    batch_size: int = 16,
    lm: tuple[Any, Any] | None = None,
    temperature: float = 0.0,
    seed: int = 0,
) -> list[str]:
    """Generate a text per embedding from its soft tokens (pure decoding), or with evidence facts (grounded).

    ``evidence_prompt``: one facts string for all, or one (or None) per embedding. ``temperature`` 0 is
    greedy; above 0 it samples, reproducibly for the same ``seed`` and batch size.
    """
    from explanations.ml.lm import generate_batch

    artifact = artifact or get_adapter()
    vectors = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    if evidence_prompt is None or isinstance(evidence_prompt, str):
        evidence = [evidence_prompt] * len(vectors)
    else:
        evidence = list(evidence_prompt)
        if len(evidence) != len(vectors):
            raise ValueError("evidence_prompt needs one entry per embedding")
    soft = artifact.soft_tokens(vectors)
    prompts = [task_messages(task, e) for e in evidence]
    return generate_batch(
        prompts,
        soft_tokens=list(soft),
        max_new_tokens=max_new_tokens,
        batch_size=batch_size,
        temperature=temperature,
        seed=seed,
        lm=lm,
    )


def guided_choice(candidates: Sequence[Sequence[str]], embeddings: np.ndarray, *, contrast: float = 0.0) -> list[str]:
    """For each embedding, the candidate text whose MiniLM embedding is closest to it.

    ``candidates[j][i]`` is candidate j of embedding i. With ``contrast`` > 0 the score is
    cos(text, v) - contrast * cos(text, mean of the embeddings): a text that fits everyone (the mean) loses
    to one that says what is specific to this vector.
    """
    from recommendations.ml.encoder import encode

    vectors = np.atleast_2d(np.asarray(embeddings, dtype=np.float32))
    vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    mean = vectors.mean(axis=0)
    mean = mean / np.linalg.norm(mean)
    n = len(vectors)
    if any(len(c) != n for c in candidates):
        raise ValueError("every candidate list needs one text per embedding")
    encoded = encode([t for c in candidates for t in c]).reshape(len(candidates), n, -1)
    scores = np.einsum("jid,id->ji", encoded, vectors) - contrast * (encoded @ mean)
    best = scores.argmax(axis=0)
    return [candidates[best[i]][i] for i in range(n)]


def guided_candidates(
    embeddings: np.ndarray, *, candidates: int = 8, temperature: float = 0.8, **decode_kwargs
) -> list[list[str]]:
    """The greedy text and ``candidates - 1`` sampled ones per embedding (``[j][i]``: candidate j of row i)."""
    texts = [decode(embeddings, **decode_kwargs)]
    for j in range(1, candidates):
        texts.append(decode(embeddings, temperature=temperature, seed=1000 * j, **decode_kwargs))
    return texts


def decode_guided(
    embeddings: np.ndarray, *, candidates: int = 8, contrast: float = 0.0, temperature: float = 0.8, **decode_kwargs
) -> list[str]:
    """Encoder-guided decoding: keep the candidate closest to the vector (see :func:`guided_choice`). Costs
    ``candidates`` decodings."""
    texts = guided_candidates(embeddings, candidates=candidates, temperature=temperature, **decode_kwargs)
    return guided_choice(texts, embeddings, contrast=contrast)


def decode_by(method: str, embeddings: np.ndarray, *, cache: dict | None = None, **decode_kwargs) -> list[str]:
    """Decode with a named method: ``greedy``, ``guided-N`` or ``guided-N-contrast-C`` (as evaluated).

    ``cache`` (a dict the caller keeps for the same embeddings and arguments) lets methods that differ only in
    how they choose share their candidates: guided-8 and guided-8-contrast-1 cost one set of 8 decodings.
    """
    if method == "greedy":
        return decode(embeddings, **decode_kwargs)
    parts = method.split("-")
    if parts[0] != "guided" or len(parts) not in (2, 4):
        raise ValueError(f"unknown decoding method {method!r}")
    n, contrast = int(parts[1]), float(parts[3]) if len(parts) == 4 else 0.0
    cache = {} if cache is None else cache
    if n not in cache:
        cache[n] = guided_candidates(embeddings, candidates=n, **decode_kwargs)
    return guided_choice(cache[n], embeddings, contrast=contrast)


def interpolation_points(a: np.ndarray, b: np.ndarray, n: int) -> np.ndarray:
    """n unit vectors on the straight line a -> b (re-normalized), a and b included."""
    a, b = np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32)
    ts = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
    points = (1 - ts) * a + ts * b
    return points / np.linalg.norm(points, axis=1, keepdims=True)


def interpolate(a: np.ndarray, b: np.ndarray, n: int = 5, **decode_kwargs) -> list[str]:
    """Decode n points between two customer vectors (point i at t = i / (n - 1))."""
    return decode(interpolation_points(a, b, n), **decode_kwargs)


def centroid(embeddings: np.ndarray) -> np.ndarray:
    mean = np.asarray(embeddings, dtype=np.float32).mean(axis=0)
    return mean / np.linalg.norm(mean)


def decode_centroid(embeddings: np.ndarray, **decode_kwargs) -> str:
    """Decode the (re-normalized) mean of a group of customer vectors: a description of the segment."""
    return decode(centroid(embeddings)[None], **decode_kwargs)[0]
