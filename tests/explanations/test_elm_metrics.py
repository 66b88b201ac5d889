"""Metrics that tell an adapter that reads the vector from one that guesses (explanations.ml.elm.metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from explanations.ml.elm import decoding, metrics


def _unit_rows(n: int, d: int = 16, seed: int = 0) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_retrieval_finds_every_vector_from_its_own_text_and_none_from_a_generic_one():
    # Given 30 vectors, "texts" that encode exactly their own vector, and one text that is the mean of all
    pool = _unit_rows(30)
    own = pool.copy()
    generic = np.repeat(pool.mean(axis=0, keepdims=True), 30, axis=0)
    # When each text ranks its vector among 10
    own_hits = metrics.retrieval_hits(own, pool, list(range(30)), among=10)
    generic_hits = metrics.retrieval_hits(generic, pool, list(range(30)), among=10)
    # Then the own texts always come first and the generic text only where its vector happens to be nearest
    assert own_hits.all()
    assert generic_hits.mean() < 0.5


def test_retrieval_counts_a_tie_against_the_text():
    # Given a pool in which every vector is the same: a text cannot tell its own from the others
    pool = np.ones((12, 4), dtype=np.float32)
    # When retrieved among 10, Then no text counts as a hit
    assert not metrics.retrieval_hits(pool[:3], pool, [0, 1, 2], among=10).any()


def test_retrieval_needs_enough_distractors():
    with pytest.raises(ValueError, match="among 100"):
        metrics.retrieval_hits(_unit_rows(2), _unit_rows(50), [0, 1], among=100)


def test_shared_and_identical_shares_ignore_case_and_spacing():
    texts = ["Buys  candles.", "buys candles.", "Buys bags.", "Buys toys."]
    # Two of four texts are word for word another customer's
    assert metrics.shared_output_share(texts) == 0.5
    # Compared pairwise with a shifted list: one pair of four is the same text
    assert metrics.identical_share(texts, texts[1:] + texts[:1]) == 0.25
    with pytest.raises(ValueError):
        metrics.identical_share(texts, texts[:2])


def test_product_words_outside_the_history_are_counted_and_generic_words_are_not():
    vocabulary = frozenset({"candle", "holder", "retrospot", "bag", "doily", "lunch"})
    history = ["WHITE HANGING HEART T-LIGHT HOLDER", "JUMBO BAG RED RETROSPOT"]
    # "bags" and "holders" are in the history (plural forms), "doily" and "lunch" are not; "lovely" is generic
    named, outside = metrics.product_words_outside("Lovely bags, holders and a lunch doily.", history, vocabulary)
    assert (named, outside) == (4, 2)


def test_goals_need_every_threshold_and_missing_metrics_fail():
    passing = {
        "customer_top1_among_10": 0.5,
        "beats_shuffled_share": 0.96,
        "shared_output_share": 0.05,
        "product_words_outside_share": 0.1,
        "product_top1_among_10": 0.7,
    }
    assert all(metrics.goals_met(passing).values())
    assert not metrics.goals_met({**passing, "shared_output_share": 0.06})["shared_output_share"]
    assert not metrics.goals_met({k: v for k, v in passing.items() if k != "beats_shuffled_share"})[
        "beats_shuffled_share"
    ]


def test_the_product_trusts_only_a_decoding_that_met_every_goal_and_prefers_the_cheapest():
    good = {name: (threshold + 0.01 if d == ">=" else 0.0) for name, (d, threshold) in metrics.GOALS.items()}
    bad = {**good, "customer_top1_among_10": 0.2}
    # Never evaluated, or evaluated and failed: descriptions stay with the purchase facts
    assert metrics.decoding_that_reads({}) is None
    assert metrics.decoding_that_reads({"evaluation": {"methods": {"greedy": bad}}}) is None
    # Passing methods: the cheapest one is used
    methods = {"greedy": bad, "guided-8": good, "guided-4": good}
    assert metrics.decoding_that_reads({"evaluation": {"methods": methods}}) == "guided-4"


def test_guided_choice_keeps_the_candidate_closest_to_the_vector_and_contrast_penalizes_the_mean(monkeypatch):
    # Given two customers and an encoder that maps each known text to a fixed vector
    a, b = np.eye(3, dtype=np.float32)[0], np.eye(3, dtype=np.float32)[1]
    mean_like = (a + b) / np.linalg.norm(a + b)
    table = {"about a": a, "about b": b, "about everyone": mean_like, "nothing": np.eye(3, dtype=np.float32)[2]}
    monkeypatch.setattr("recommendations.ml.encoder.encode", lambda texts: np.stack([table[t] for t in texts]))
    vectors = np.stack([0.6 * a + 0.4 * b, b])
    candidates = [["about everyone", "nothing"], ["about a", "about b"]]
    # When the closest candidate is kept: the first customer gets the generic text, the second its own
    assert decoding.guided_choice(candidates, vectors) == ["about everyone", "about b"]
    # When closeness to the mean of all vectors is penalized, the first customer gets what sets it apart
    assert decoding.guided_choice(candidates, vectors, contrast=1.0) == ["about a", "about b"]


def test_decode_by_rejects_an_unknown_method():
    with pytest.raises(ValueError, match="unknown decoding"):
        decoding.decode_by("beam-4", np.zeros((1, 3), dtype=np.float32))


def test_guided_methods_with_the_same_candidates_decode_them_once(monkeypatch):
    # Given a decoder that counts its calls (one greedy and N - 1 sampled decodings per candidate set)
    calls = []

    def fake_decode(embeddings, *, temperature=0.0, seed=0, **kwargs):
        calls.append(temperature)
        return [f"text {seed}" for _ in range(len(embeddings))]

    monkeypatch.setattr(decoding, "decode", fake_decode)
    monkeypatch.setattr("recommendations.ml.encoder.encode", lambda texts: np.ones((len(texts), 3), dtype=np.float32))
    vectors, cache = np.ones((2, 3), dtype=np.float32), {}
    # When guided-4 and guided-4 with contrast decode the same vectors with one cache
    decoding.decode_by("guided-4", vectors, cache=cache)
    decoding.decode_by("guided-4-contrast-1", vectors, cache=cache)
    # Then the candidates were decoded once: greedy first, then three samples
    assert calls == [0.0, 0.8, 0.8, 0.8]
