"""Tests for SIG word attributions of the recommendation score and for the deletion (faithfulness) metrics.

The SIG tests use the real encoder and real descriptions from the first rows of the Online Retail CSV.
Two independent references live here (the benchmark imports them too):

- ``reference_sig_stepwise``: the paper's algorithm written out with no batching at all, one
  forward/backward per word per step, on the bare HF ``BertModel``.
- ``inseq_sig``: Inseq's own ``SequentialIntegratedGradients`` (a Captum attribution) on a wrapper that
  packs the text's word embeddings as (1, words, max wordpieces, dim), so that Inseq's per-position
  loop over dimension 1 is a loop over words. Inseq's model-level API (``inseq.load_model``) only wraps
  seq2seq/causal LMs and attributes generated tokens, so it cannot explain an encoder similarity.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import spearmanr

from explanations.ml.faithfulness import (
    DeletionScores,
    deletion_scores,
    paired_comparison,
    similarity_log_odds,
    summarize,
    top_k_count,
    top_words,
)

# ---------------------------------------------------------------------------- independent references


def _reference_inputs(text: str, target: np.ndarray):
    """Tokenize ``text`` by words and return (bert, embeds (L, D), mask embedding, word spans, target)."""
    import torch

    from recommendations.ml.encoder import get_encoder

    model = get_encoder()
    bert, tokenizer = model[0].auto_model, model.tokenizer
    words = text.split()
    enc = tokenizer(words, is_split_into_words=True, return_tensors="pt")
    word_ids = enc.word_ids()
    spans = []
    for i in range(len(words)):
        positions = [p for p, w in enumerate(word_ids) if w == i]
        spans.append((positions[0], positions[-1] + 1))
    table = bert.get_input_embeddings().weight.detach()
    embeds = table[enc["input_ids"][0]].clone()
    baseline = table[tokenizer.mask_token_id].clone()
    return bert, embeds, baseline, spans, torch.tensor(np.asarray(target, dtype=np.float32))


def _reference_score(bert, embeds, target):
    import torch

    hidden = bert(inputs_embeds=embeds, attention_mask=torch.ones(embeds.shape[:2], dtype=torch.long))
    return torch.nn.functional.cosine_similarity(hidden.last_hidden_state.mean(dim=1), target.unsqueeze(0), dim=-1)


def reference_sig_stepwise(text: str, target: np.ndarray, *, steps: int, method: str = "gausslegendre") -> np.ndarray:
    """Return SIG word attributions computed one word, one step, one forward/backward at a time."""
    import torch
    from captum.attr._utils.approximation_methods import approximation_parameters

    bert, embeds, baseline, spans, target_t = _reference_inputs(text, target)
    step_sizes_fn, alphas_fn = approximation_parameters(method)
    step_sizes, alphas = step_sizes_fn(steps), alphas_fn(steps)
    out = []
    with torch.enable_grad():
        for start, end in spans:
            total = 0.0
            for alpha, step_size in zip(alphas, step_sizes, strict=True):
                point = embeds.clone()
                point[start:end] = baseline + alpha * (embeds[start:end] - baseline)
                point = point.unsqueeze(0).requires_grad_(True)
                (grad,) = torch.autograd.grad(_reference_score(bert, point, target_t).sum(), point)
                total += step_size * float((grad[0, start:end] * (embeds[start:end] - baseline)).sum())
            out.append(total)
    return np.array(out)


def inseq_sig(text: str, target: np.ndarray, *, steps: int, method: str = "gausslegendre") -> np.ndarray:
    """Return SIG word attributions from Inseq's SequentialIntegratedGradients on a word-packed input."""
    import torch
    from inseq.attr.feat.ops import SequentialIntegratedGradients

    bert, embeds, baseline, spans, target_t = _reference_inputs(text, target)
    n_words, width, dim = len(spans), max(e - s for s, e in spans), embeds.shape[1]
    # Word i's wordpieces sit in packed[0, i, :len]; unused slots hold the baseline so (x - baseline) = 0.
    packed = baseline.expand(1, n_words, width, dim).clone()
    for i, (start, end) in enumerate(spans):
        packed[0, i, : end - start] = embeds[start:end]
    slots = [(i, j) for i, (start, end) in enumerate(spans) for j in range(end - start)]
    word_idx = torch.tensor([i for i, _ in slots])
    piece_idx = torch.tensor([j for _, j in slots])
    cls_row, sep_row = embeds[:1], embeds[-1:]

    def forward(packed_batch):
        batch = packed_batch.shape[0]
        pieces = packed_batch[:, word_idx, piece_idx]
        full = torch.cat([cls_row.expand(batch, 1, dim), pieces, sep_row.expand(batch, 1, dim)], dim=1)
        return _reference_score(bert, full, target_t)

    explainer = SequentialIntegratedGradients(forward)
    with torch.enable_grad():
        attributions = explainer.attribute(
            packed, baselines=baseline.expand(1, n_words, width, dim).clone(), n_steps=steps, method=method
        )
    return attributions.sum(dim=(2, 3))[0].detach().double().numpy()


# ---------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def real_pairs():
    """Return three (description, customer-like vector) pairs from the first rows of the real data."""
    from django.conf import settings

    from tests.explanations.sig_data import customer_like_pairs, read_retail_rows

    rows = read_retail_rows(settings.ELM_DATASET_PATH, limit=200)
    pairs = customer_like_pairs(rows, n_pairs=3)
    assert len(pairs) == 3
    return [(description, vector) for description, vector, _ in pairs]


@pytest.fixture(scope="module")
def christmas_target():
    from recommendations.ml.encoder import encode

    return encode(["christmas decoration"])[0]


# ---------------------------------------------------------------------------- SIG on the real encoder


@pytest.mark.slow
def test_score_is_the_cosine_the_recommender_computes(christmas_target):
    """Compute f(x) equal to encode(product text) . target."""
    from explanations.ml.sig import sig_word_attributions
    from recommendations.ml.encoder import encode
    from recommendations.services.embeddings import product_embedding_text

    # Given a raw description with the dataset's doubled spaces
    text = "RED  CHRISTMAS TREE BAUBLE "

    # When attributing it with few steps
    result = sig_word_attributions(text, christmas_target, steps=4)

    # Then its score is the recommender's cosine, and each word owns its wordpieces
    expected = float(encode([product_embedding_text(text)])[0] @ christmas_target)
    assert result.score == pytest.approx(expected, abs=1e-5)
    assert result.words == ["RED", "CHRISTMAS", "TREE", "BAUBLE"]
    pieces = [result.tokens[s:e] for s, e in result.token_spans]
    assert pieces == [["red"], ["christmas"], ["tree"], ["ba", "##ub", "##le"]]
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("method", "tolerance"),
    # Measured on real descriptions at 50 steps, the largest |error| was ~6e-4 (Gauss-Legendre) and
    # ~2e-4 (trapezoid); multi-wordpiece words have a sharp peak in d f / d alpha that dominates it.
    # 2e-3 is 0.1% of the cosine's [-1, 1] range, well under any share worth showing a user, and an
    # implementation error (a missing (x - baseline) factor, a wrong weight) is off by 1e-2 or more.
    [("gausslegendre", 2e-3), ("riemann_trapezoid", 2e-3)],
)
def test_each_word_path_is_complete(real_pairs, christmas_target, method, tolerance):
    """Make each word's attribution sum to f(x) - f(x with that word masked) at 50 steps."""
    from explanations.ml.sig import sig_word_attributions

    # Given real (description, customer-like vector) pairs and the constructed Christmas example
    cases = [real_pairs[0], ("RED CHRISTMAS TREE BAUBLE", christmas_target)]

    for text, target in cases:
        # When attributing with 50 steps
        result = sig_word_attributions(text, target, steps=50, method=method)

        # Then every word's path integral matches the score difference it explains
        drops = result.score - result.baseline_scores
        np.testing.assert_allclose(result.attributions, drops, atol=tolerance)
        np.testing.assert_allclose(result.completeness_errors, result.attributions - drops)
        assert np.abs(result.normalized).sum() == pytest.approx(1.0)


@pytest.mark.slow
def test_matches_the_stepwise_reference_and_inseq(real_pairs):
    """Rank words as the unbatched reference and Inseq's SIG do on real descriptions."""
    from explanations.ml.sig import sig_word_attributions

    steps = 4  # the three implementations share quadrature nodes, so agreement does not need many
    for text, target in real_pairs:
        # Given a real description and a customer-like target
        # When attributing with the batched implementation and both references
        ours = sig_word_attributions(text, target, steps=steps, method="gausslegendre").attributions
        stepwise = reference_sig_stepwise(text, target, steps=steps)
        inseq = inseq_sig(text, target, steps=steps)

        # Then the ranks agree and the values agree to float32 accuracy
        assert spearmanr(ours, stepwise).statistic >= 0.99, (text, ours, stepwise)
        assert spearmanr(ours, inseq).statistic >= 0.99, (text, ours, inseq)
        np.testing.assert_allclose(ours, stepwise, atol=1e-5)
        np.testing.assert_allclose(ours, inseq, atol=1e-5)


@pytest.mark.slow
def test_chunked_passes_give_the_same_attributions(real_pairs):
    """Give the same result whether path points run in one pass or in small chunks."""
    from explanations.ml.sig import sig_word_attributions

    text, target = real_pairs[1]
    for method in ("gausslegendre", "exact"):
        one_pass = sig_word_attributions(text, target, steps=6, method=method)
        chunked = sig_word_attributions(text, target, steps=6, method=method, batch_size=2)
        np.testing.assert_allclose(chunked.attributions, one_pass.attributions, atol=1e-6)
        np.testing.assert_allclose(chunked.baseline_scores, one_pass.baseline_scores, atol=1e-6)


@pytest.mark.slow
def test_exact_method_is_the_limit_of_the_quadrature_and_agrees_with_inseq(real_pairs, christmas_target):
    """Make the closed form equal the 50-step path integrals (ours and Inseq's) up to quadrature error."""
    from explanations.ml.sig import sig_word_attributions

    for text, target in [*real_pairs, ("RED CHRISTMAS TREE BAUBLE", christmas_target)]:
        # Given a real description and a target
        # When attributing in closed form and by 50-step quadrature, ours and Inseq's
        exact = sig_word_attributions(text, target)
        integrated = sig_word_attributions(text, target, steps=50, method="gausslegendre")
        inseq = inseq_sig(text, target, steps=50)

        # Then the closed form is the integral's value: the words rank alike and the values differ by
        # no more than the quadrature error bound of test_each_word_path_is_complete
        assert exact.method == "exact" and exact.steps == 0
        np.testing.assert_allclose(exact.attributions, integrated.attributions, atol=2e-3)
        np.testing.assert_allclose(exact.attributions, inseq, atol=2e-3)
        assert spearmanr(exact.attributions, inseq).statistic >= 0.99, (text, exact.attributions, inseq)
        np.testing.assert_allclose(exact.completeness_errors, 0.0, atol=1e-12)
        assert exact.score == pytest.approx(integrated.score, abs=1e-6)


@pytest.mark.slow
def test_christmas_gets_the_largest_positive_share(christmas_target):
    """Give CHRISTMAS the largest positive share for a 'christmas decoration' target."""
    from explanations.ml.sig import sig_word_attributions

    # Given a Christmas target and a bauble description
    # When attributing it
    result = sig_word_attributions("RED CHRISTMAS TREE BAUBLE", christmas_target, steps=50)

    # Then CHRISTMAS leads, the colour matters least, and every word pulls towards the target
    shares = dict(zip(result.words, result.normalized, strict=True))
    assert max(shares, key=shares.get) == "CHRISTMAS"
    assert min(shares, key=shares.get) == "RED"
    assert all(v > 0 for v in shares.values())


@pytest.mark.slow
def test_plain_ig_is_complete_over_all_words(real_pairs):
    """Make plain IG's word attributions sum to f(x) - f(all words masked)."""
    from explanations.ml.sig import ig_word_attributions, masked_scores

    text, target = real_pairs[0]
    result = ig_word_attributions(text, target, steps=50)
    all_masked = masked_scores(text, target, [[False] * len(result.words)])[0]
    assert result.baseline_score == pytest.approx(all_masked, abs=1e-6)
    assert result.attributions.sum() == pytest.approx(result.score - all_masked, abs=2e-3)


@pytest.mark.slow
def test_rejects_bad_inputs(christmas_target):
    """Refuse empty texts and targets of the wrong dimension."""
    from explanations.ml.sig import sig_word_attributions

    with pytest.raises(ValueError, match="no words"):
        sig_word_attributions("   ", christmas_target, steps=2)
    with pytest.raises(ValueError, match="dimensions"):
        sig_word_attributions("RED MUG", christmas_target[:10], steps=2)


# ---------------------------------------------------------------------------- deletion metrics (toy case)


def _linear_score(weights):
    """Return a score function that sums the weights of the kept words (masked words count 0)."""
    return lambda keep: np.asarray(keep, dtype=float) @ np.asarray(weights)


def test_top_k_count_rounds_up_and_stays_in_range():
    """Count ceil(fraction * n) words, at least one and at most n."""
    assert top_k_count(5, 0.2) == 1
    assert top_k_count(4, 0.2) == 1
    assert top_k_count(10, 0.25) == 3
    assert top_k_count(3, 1.0) == 3
    with pytest.raises(ValueError):
        top_k_count(3, 0.0)


def test_top_words_breaks_ties_by_word_order():
    """Pick the largest signed attributions, earlier word first on ties."""
    assert top_words(np.array([0.1, 0.3, 0.3, -1.0]), 2).tolist() == [1, 2]
    assert top_words(np.array([-0.5, -0.1]), 1).tolist() == [1]


def test_deletion_scores_on_a_linear_toy_model():
    """Compute comprehensiveness, sufficiency and log-odds by hand for a linear score."""
    # Given three words whose score contributions are 0.5, 0.1 and -0.2 (f(x) = 0.4)
    weights = [0.5, 0.1, -0.2]

    # When the attributions are exactly those contributions
    scores = deletion_scores(np.array(weights), _linear_score(weights), fractions=(0.2, 0.5, 1.0))

    # Then removing / keeping the top 1, 2, 3 words gives the hand-computed values
    expected = [
        # k=1: without {0} -> -0.1, only {0} -> 0.5
        DeletionScores(0.2, 1, 0.5, -0.1, math.log(0.45) - math.log(0.7)),
        # k=2: without {0,1} -> -0.2, only {0,1} -> 0.6
        DeletionScores(0.5, 2, 0.6, -0.2, math.log(0.4) - math.log(0.7)),
        # k=3: everything masked -> 0, everything kept -> 0.4
        DeletionScores(1.0, 3, 0.4, 0.0, math.log(0.5) - math.log(0.7)),
    ]
    for got, want in zip(scores, expected, strict=True):
        assert (got.fraction, got.k) == (want.fraction, want.k)
        assert got.comprehensiveness == pytest.approx(want.comprehensiveness)
        assert got.sufficiency == pytest.approx(want.sufficiency)
        assert got.log_odds == pytest.approx(want.log_odds)


def test_better_ranking_scores_better_on_every_metric():
    """Score the true ranking above the reversed one on all three metrics."""
    weights = [0.5, 0.1, -0.2, 0.3]
    good = deletion_scores(np.array(weights), _linear_score(weights), fractions=(0.5,))[0]
    bad = deletion_scores(-np.array(weights), _linear_score(weights), fractions=(0.5,))[0]
    assert good.comprehensiveness > bad.comprehensiveness
    assert good.sufficiency < bad.sufficiency
    assert good.log_odds < bad.log_odds


def test_summarize_averages_examples_and_fractions():
    """Average each metric over examples per fraction, then over fractions for AOPC."""
    a = [DeletionScores(0.2, 1, 0.4, 0.0, -0.2), DeletionScores(0.5, 2, 0.6, -0.2, -0.4)]
    b = [DeletionScores(0.2, 1, 0.2, 0.2, 0.0), DeletionScores(0.5, 3, 0.4, 0.0, -0.2)]
    summary = summarize([a, b])
    assert summary["by_fraction"]["0.2"]["comprehensiveness"] == pytest.approx(0.3)
    assert summary["by_fraction"]["0.5"]["mean_k"] == pytest.approx(2.5)
    assert summary["aopc"]["comprehensiveness"] == pytest.approx(0.4)
    assert summary["aopc"]["sufficiency"] == pytest.approx(0.0)
    assert summary["aopc"]["log_odds"] == pytest.approx(-0.2)
    assert summary["n_examples"] == 2


def test_paired_comparison_counts_wins_ties_and_losses_per_metric():
    """Count an example as better when its metric moves in the metric's good direction."""
    first = [[DeletionScores(0.2, 1, 0.5, 0.1, -0.3)], [DeletionScores(0.2, 1, 0.2, 0.3, -0.1)]]
    second = [[DeletionScores(0.2, 1, 0.4, 0.1, -0.2)], [DeletionScores(0.2, 1, 0.3, 0.2, -0.1)]]
    counts = paired_comparison(first, second)["0.2"]
    assert counts["comprehensiveness"] == {"better": 1, "tied": 0, "worse": 1, "mean_difference": pytest.approx(0.0)}
    assert counts["sufficiency"] == {"better": 0, "tied": 1, "worse": 1, "mean_difference": pytest.approx(0.05)}
    assert counts["log_odds"] == {"better": 1, "tied": 1, "worse": 0, "mean_difference": pytest.approx(-0.05)}


def test_log_odds_maps_cosine_to_unit_interval():
    """Use p = (1 + cos) / 2, so an unchanged score gives 0 and a lower one a negative value."""
    assert similarity_log_odds(0.3, 0.3) == 0.0
    assert similarity_log_odds(0.0, 0.6) == pytest.approx(math.log(0.5 / 0.8))
    assert similarity_log_odds(-1.0, 0.6) < -20  # floored, not -inf
