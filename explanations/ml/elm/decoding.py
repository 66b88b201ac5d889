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
) -> list[str]:
    """Generate a text per embedding from its soft tokens (pure decoding), or with evidence facts (grounded).

    ``evidence_prompt``: one facts string for all, or one (or None) per embedding.
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
    return generate_batch(prompts, soft_tokens=list(soft), max_new_tokens=max_new_tokens, batch_size=batch_size, lm=lm)


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
