"""Measures of whether decoded text is about the vector it came from, and not a guess that fits everyone.

Semantic consistency alone cannot tell reading from guessing: customer vectors crowd together (mean pairwise
cosine ~0.6), so one generic text scores well against all of them. Retrieval (does the text pick its own
vector out of 10 or 100?), identical outputs across inputs and product words outside the customer's history
can tell. The goals (issue 18) are in :data:`GOALS`.
"""

from __future__ import annotations

import re
from collections import Counter
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


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.atleast_2d(np.asarray(x, dtype=np.float32))
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norms == 0, 1.0, norms)


def retrieval_hits(
    text_vectors: np.ndarray, pool: np.ndarray, truth: Sequence[int], *, among: int = 10, seed: int = 0
) -> np.ndarray:
    """Whether each text picks out its own vector: ranked by cosine among ``among`` candidates, is it first?

    Row i of ``text_vectors`` (an encoded text) is compared with ``pool[truth[i]]`` and ``among - 1``
    distractors drawn at random (seeded) from the other rows of ``pool``. Ties count against the text, so a
    text that says the same thing to everyone scores chance or below, never above. Chance is ``1 / among``.
    """
    texts, pool = _unit(text_vectors), _unit(pool)
    if among > len(pool):
        raise ValueError(f"retrieval among {among} needs at least {among} vectors in the pool, not {len(pool)}")
    rng = np.random.default_rng(seed)
    hits = np.zeros(len(texts), dtype=bool)
    for i, own in enumerate(truth):
        others = rng.choice(np.delete(np.arange(len(pool)), own), size=among - 1, replace=False)
        scores = pool[others] @ texts[i]
        hits[i] = bool(float(pool[own] @ texts[i]) > scores.max())
    return hits


def best_generic_text(candidates: Sequence[str], vectors: np.ndarray) -> tuple[str, float]:
    """The one text with the highest mean semantic consistency over ``vectors``, and that mean.

    Chosen on training customers, it is what a model that ignores the vector could say to everyone.
    """
    from recommendations.ml.encoder import encode

    encoded = _unit(encode(list(candidates)))
    means = (encoded @ _unit(vectors).T).mean(axis=1)
    best = int(np.argmax(means))
    return candidates[best], float(means[best])


def _normalized(text: str) -> str:
    return " ".join(text.lower().split())


def shared_output_share(texts: Sequence[str]) -> float:
    """Share of texts that are word for word (case and spacing aside) another input's text."""
    if not texts:
        return 0.0
    counts = Counter(_normalized(t) for t in texts)
    return sum(counts[_normalized(t)] > 1 for t in texts) / len(texts)


def identical_share(texts: Sequence[str], others: Sequence[str]) -> float:
    """Share of pairs (texts[i], others[i]) that are the same text (case and spacing aside)."""
    if len(texts) != len(others):
        raise ValueError("one other text per text")
    if not texts:
        return 0.0
    return sum(_normalized(a) == _normalized(b) for a, b in zip(texts, others, strict=True)) / len(texts)


_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")


def product_words_outside(text: str, history: Sequence[str], vocabulary: frozenset[str]) -> tuple[int, int]:
    """(product words in ``text``, those that no text of ``history`` holds).

    A product word is a word of the catalogue's product vocabulary (``explanations.checks.build_vocabulary``:
    generic words left out), compared in the forms the reason checks use (plurals, possessives). ``history``
    holds the descriptions of the products the customer bought (and may hold its category names): a word
    outside it names, or invents, something the customer never bought.
    """
    from explanations.checks.entities import GENERIC_WORDS, forms

    vocab = {f for word in vocabulary for f in forms(word)}
    known = {f for line in history for token in _WORD.findall(line or "") for f in forms(token)}
    named = outside = 0
    for token in _WORD.findall(text):
        token_forms = forms(token)
        if not (token_forms & vocab) or (token_forms & GENERIC_WORDS):
            continue
        named += 1
        outside += not (token_forms & known)
    return named, outside


# Issue 18's goals for decoding from the vector alone: (direction, threshold) per summary metric.
GOALS: dict[str, tuple[str, float]] = {
    "customer_top1_among_10": (">=", 0.50),
    "beats_shuffled_share": (">=", 0.95),
    "shared_output_share": ("<=", 0.05),
    "product_words_outside_share": ("<=", 0.10),
    "product_top1_among_10": (">=", 0.70),
}


def goals_met(summary: dict) -> dict[str, bool]:
    """Each goal of :data:`GOALS` against a summary of ``elm_evaluate``; a missing metric is not met."""
    met = {}
    for name, (direction, threshold) in GOALS.items():
        value = summary.get(name)
        met[name] = value is not None and (value >= threshold if direction == ">=" else value <= threshold)
    return met


def decoding_that_reads(metrics: dict) -> str | None:
    """The decoding method whose held-out evaluation met every goal (from an adapter's ``metrics.json``).

    None when the adapter was never evaluated or no method met them all: then its vector is not read well
    enough to be trusted with words on its own, and descriptions are written from purchase facts.
    """
    methods = (metrics.get("evaluation") or {}).get("methods") or {}
    passing = [name for name, summary in sorted(methods.items()) if all(goals_met(summary).values())]
    # The cheapest passing method: greedy before guided, fewer candidates before more.
    return min(passing, key=lambda name: (name != "greedy", len(name), name)) if passing else None
