"""Word attributions of a cosine score with Sequential Integrated Gradients (Enguehard, ACL Findings 2023).

The explained function is ``f(x) = cos(mean_pool(encoder(x)), target)``: the score of a recommendation
when ``x`` is a product description and ``target`` the customer vector. Words are the
whitespace-separated words of the text; each owns the wordpiece tokens it was split into.

SIG runs one Integrated Gradients path per word: only that word's word-embedding rows move from the
encoder's ``[MASK]`` embedding to their real values, every other word stays real. Interpolation happens
on the output of the word-embedding layer (``inputs_embeds``), so position and token-type embeddings
and the embedding LayerNorm are applied exactly as for a real input. By completeness each word's
attribution approximates ``f(x) - f(x with that word masked)``.

That approximation is only the quadrature's: word i's path is a straight line that moves word i alone,
so by the gradient theorem its integral of ``<grad f, x_i - baseline>`` is exactly
``f(x) - f(x with word i masked)``. ``method="exact"`` (the default, what the product serves) computes
that value directly: one forward batch of n_words + 1 sequences, no gradients, no quadrature error.
The quadrature methods stay, because the tests check that they converge to it (which is how we know
the closed form is SIG's value and not a different attribution) and the benchmark compares them with
Inseq's implementation.

For the quadrature methods, all words x steps points are evaluated together: the path points are
stacked along the batch dimension and pushed through the encoder in as few forward/backward passes as
``batch_size`` allows, with gradients taken with respect to the inputs only.

Plain Integrated Gradients over the same words (all words move together from the all-``[MASK]``
input) is here as well, because the faithfulness comparison needs both from the same code.

Torch and the encoder are imported inside functions: only workers call this module.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

if TYPE_CHECKING:
    import torch

Method = Literal["exact", "gausslegendre", "riemann_trapezoid"]
QuadratureMethod = Literal["gausslegendre", "riemann_trapezoid"]

# Token rows (sequences x tokens) per forward/backward pass when no batch size is given. A ~12-word
# description at 50 steps is 600 sequences of ~16 tokens (9,600 rows, about 2 GiB of activations
# on CPU), so it runs in one pass; longer texts are split into chunks of this size.
DEFAULT_TOKEN_BUDGET = 12_288


@dataclass(frozen=True)
class WordAttribution:
    """SIG attributions of ``score`` to the words of ``text``.

    ``token_spans[i]`` is the half-open range of positions of word i in the tokenized sequence
    (position 0 is ``[CLS]``); a word that produced no token (dropped by the tokenizer or cut by
    truncation) has an empty span and attribution 0.
    """

    text: str
    words: list[str]
    token_spans: list[tuple[int, int]]
    tokens: list[str]
    attributions: np.ndarray  # raw SIG value per word, in units of the score
    normalized: np.ndarray  # attributions / sum(|attributions|), so the shares' absolute values sum to 1
    score: float  # f(x)
    baseline_scores: np.ndarray  # f(x with word i's tokens replaced by [MASK])
    completeness_errors: np.ndarray  # attributions - (score - baseline_scores); zeros for method "exact"
    steps: int  # quadrature nodes per word path; 0 for method "exact" (no quadrature)
    method: str
    elapsed_s: float
    model_version: str
    kind: str = field(default="sig")

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "text": self.text,
            "words": list(self.words),
            "token_spans": [list(s) for s in self.token_spans],
            "tokens": list(self.tokens),
            "attributions": self.attributions.tolist(),
            "normalized": self.normalized.tolist(),
            "score": self.score,
            "baseline_scores": self.baseline_scores.tolist(),
            "completeness_errors": self.completeness_errors.tolist(),
            "steps": self.steps,
            "method": self.method,
            "elapsed_s": self.elapsed_s,
            "model_version": self.model_version,
        }


@dataclass(frozen=True)
class IntegratedGradientsAttribution:
    """Plain IG attributions of ``score`` to the words of ``text`` (one path from the all-[MASK] input)."""

    text: str
    words: list[str]
    token_spans: list[tuple[int, int]]
    attributions: np.ndarray
    normalized: np.ndarray
    score: float
    baseline_score: float  # f(all words masked)
    completeness_error: float  # sum(attributions) - (score - baseline_score)
    steps: int
    method: str
    elapsed_s: float
    model_version: str
    kind: str = field(default="ig")


@dataclass
class _Prepared:
    """A tokenized text with its word-embedding rows, ready for path evaluations."""

    words: list[str]
    spans: list[tuple[int, int]]
    tokens: list[str]
    embeds: torch.Tensor  # (L, D) output of the word-embedding layer
    baseline: torch.Tensor  # (D,) word embedding of [MASK]
    word_masks: torch.Tensor  # (W, L) 1.0 at the positions of word i
    target: torch.Tensor  # (D,)


def split_words(text: str) -> list[str]:
    """Return the words of ``text``: its whitespace-separated pieces."""
    return text.split()


def quadrature(steps: int, method: QuadratureMethod) -> tuple[np.ndarray, np.ndarray]:
    """Return (alphas, weights) on [0, 1] for the path integral; same nodes as Captum's IG."""
    if steps < 2:
        raise ValueError("steps must be at least 2")
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(steps)
        return (nodes + 1) / 2, weights / 2
    if method == "riemann_trapezoid":
        alphas = np.linspace(0.0, 1.0, steps)
        weights = np.full(steps, 1.0 / (steps - 1))
        weights[[0, -1]] /= 2
        return alphas, weights
    raise ValueError(f"unknown integration method {method!r}")


def normalize_shares(values: np.ndarray) -> np.ndarray:
    """Return ``values / sum(|values|)`` (all zeros when every value is 0)."""
    total = float(np.abs(values).sum())
    return values / total if total > 0 else np.zeros_like(values)


@contextmanager
def _inputs_only_grad(model) -> Iterator[None]:
    """Turn off parameter gradients for the duration (restoring them after), but keep autograd on."""
    import torch

    params = list(model.parameters())
    before = [p.requires_grad for p in params]
    try:
        for p in params:
            p.requires_grad_(False)
        with torch.enable_grad():
            yield
    finally:
        for p, flag in zip(params, before, strict=True):
            p.requires_grad_(flag)


def _encoder():
    """Return the SentenceTransformer after checking it computes mean pooling (what f assumes)."""
    from recommendations.ml.encoder import get_encoder

    model = get_encoder()
    mode = getattr(model[1], "pooling_mode", "mean")
    modes = (mode,) if isinstance(mode, str) else tuple(mode)
    if modes != ("mean",):
        raise ValueError(f"SIG assumes mean pooling, the encoder uses {modes}")
    return model


def _prepare(model, text: str, target: np.ndarray) -> _Prepared:
    import torch

    words = split_words(text)
    if not words:
        raise ValueError("text has no words")
    target_vec = np.asarray(target, dtype=np.float32).reshape(-1)
    bert = model[0].auto_model
    if target_vec.shape[0] != bert.config.hidden_size:
        raise ValueError(f"target has {target_vec.shape[0]} dimensions, the encoder {bert.config.hidden_size}")
    tokenizer = model.tokenizer
    # Pre-split words tokenize exactly like the joined text: BERT splits on whitespace first.
    enc = tokenizer(words, is_split_into_words=True, truncation=True, max_length=model.max_seq_length)
    word_ids = enc.word_ids()
    input_ids = torch.tensor(enc["input_ids"], device=bert.device)
    spans: list[tuple[int, int]] = []
    for i in range(len(words)):
        positions = [p for p, w in enumerate(word_ids) if w == i]
        spans.append((positions[0], positions[-1] + 1) if positions else (1, 1))
    word_masks = torch.zeros(len(words), len(word_ids), device=bert.device)
    for i, (start, end) in enumerate(spans):
        word_masks[i, start:end] = 1.0
    embedding = bert.get_input_embeddings()
    with torch.no_grad():
        embeds = embedding(input_ids).detach()
        baseline = embedding.weight[tokenizer.mask_token_id].detach().clone()
    return _Prepared(
        words=words,
        spans=spans,
        tokens=tokenizer.convert_ids_to_tokens(enc["input_ids"]),
        embeds=embeds,
        baseline=baseline,
        word_masks=word_masks,
        target=torch.from_numpy(target_vec).to(bert.device),
    )


def _scores(bert, embeds: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Return f for a batch of input embeddings (B, L, D) of one unpadded text: cos(mean token, target)."""
    import torch

    mask = torch.ones(embeds.shape[:2], dtype=torch.long, device=embeds.device)
    hidden = bert(inputs_embeds=embeds, attention_mask=mask).last_hidden_state
    # No padding inside one text, so the masked mean of sentence-transformers is the plain mean.
    return torch.nn.functional.cosine_similarity(hidden.mean(dim=1), target.unsqueeze(0), dim=-1)


def _rows_per_pass(n_tokens: int, batch_size: int | None) -> int:
    if batch_size is not None:
        if batch_size < 1:
            raise ValueError("batch_size must be positive")
        return batch_size
    return max(1, DEFAULT_TOKEN_BUDGET // n_tokens)


def _masked_embeds(prep: _Prepared, masks: torch.Tensor) -> torch.Tensor:
    """Return inputs (M, L, D) where positions with mask 1 hold the [MASK] embedding."""
    delta = prep.embeds - prep.baseline
    return prep.embeds.unsqueeze(0) - masks.unsqueeze(-1) * delta.unsqueeze(0)


def _forward_scores(bert, prep: _Prepared, masks: torch.Tensor, rows_per_pass: int) -> np.ndarray:
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, masks.shape[0], rows_per_pass):
            out.append(_scores(bert, _masked_embeds(prep, masks[start : start + rows_per_pass]), prep.target))
    return torch.cat(out).double().cpu().numpy()


def _path_integrals(
    bert, prep: _Prepared, path_masks: torch.Tensor, alphas: np.ndarray, weights: np.ndarray, rows_per_pass: int
) -> torch.Tensor:
    """Return (P, L): per path p and position l, sum_k w_k * <grad f(x_pk), x_l - baseline> on the path's positions.

    Path p moves the positions where ``path_masks[p]`` is 1 from [MASK] to their real embedding; point k
    of path p is row ``p * steps + k`` of one long virtual batch, evaluated in chunks of ``rows_per_pass``.
    """
    import torch

    n_paths, steps = path_masks.shape[0], len(alphas)
    alpha_t = torch.tensor(alphas, dtype=prep.embeds.dtype, device=prep.embeds.device)
    weight_t = torch.tensor(weights, dtype=torch.float64, device=prep.embeds.device)
    delta = prep.embeds - prep.baseline
    per_position = torch.zeros(n_paths * steps, path_masks.shape[1], dtype=torch.float64, device=delta.device)
    for start in range(0, n_paths * steps, rows_per_pass):
        rows = torch.arange(start, min(start + rows_per_pass, n_paths * steps), device=delta.device)
        masks = path_masks[rows // steps]
        # Masked positions sit at alpha of the way from [MASK] to the real row: x - (1 - alpha) * delta.
        points = _masked_embeds(prep, masks * (1 - alpha_t[rows % steps]).unsqueeze(-1)).requires_grad_(True)
        (grad,) = torch.autograd.grad(_scores(bert, points, prep.target).sum(), points)
        per_position[rows] = ((grad * delta.unsqueeze(0)).sum(-1) * masks).double()
    weighted = per_position.view(n_paths, steps, -1) * weight_t.view(1, steps, 1)
    return weighted.sum(dim=1)


def _with_unmasked_row(word_masks: torch.Tensor) -> torch.Tensor:
    """Return the masks for [x, x with word 0 masked, x with word 1 masked, ...]."""
    import torch

    return torch.cat([torch.zeros_like(word_masks[:1]), word_masks])


def sig_word_attributions(
    text: str,
    target: np.ndarray,
    *,
    steps: int = 50,
    method: Method = "exact",
    batch_size: int | None = None,
) -> WordAttribution:
    """Attribute ``cos(encode(text), target)`` to the words of ``text`` with Sequential Integrated Gradients.

    ``method="exact"`` evaluates each word path's integral in closed form and ignores ``steps``; the
    quadrature methods integrate numerically with ``steps`` nodes. ``batch_size`` is the number of
    sequences per forward (and backward) pass; by default as many as fit ``DEFAULT_TOKEN_BUDGET`` token
    rows, which is one pass for a product description.
    """
    from recommendations.ml.encoder import encoder_version

    started = time.perf_counter()
    model = _encoder()
    bert = model[0].auto_model
    prep = _prepare(model, text, target)
    rows_per_pass = _rows_per_pass(prep.embeds.shape[0], batch_size)
    scores = _forward_scores(bert, prep, _with_unmasked_row(prep.word_masks), rows_per_pass)
    score, baseline_scores = float(scores[0]), scores[1:]
    if method == "exact":
        attributions = score - baseline_scores
        steps = 0
    else:
        alphas, weights = quadrature(steps, method)
        with _inputs_only_grad(bert):
            per_position = _path_integrals(bert, prep, prep.word_masks, alphas, weights, rows_per_pass)
        attributions = per_position.sum(dim=1).cpu().numpy()
    return WordAttribution(
        text=text,
        words=prep.words,
        token_spans=prep.spans,
        tokens=prep.tokens,
        attributions=attributions,
        normalized=normalize_shares(attributions),
        score=score,
        baseline_scores=baseline_scores,
        completeness_errors=attributions - (score - baseline_scores),
        steps=steps,
        method=method,
        elapsed_s=time.perf_counter() - started,
        model_version=encoder_version(),
    )


def ig_word_attributions(
    text: str,
    target: np.ndarray,
    *,
    steps: int = 50,
    method: QuadratureMethod = "gausslegendre",
    batch_size: int | None = None,
) -> IntegratedGradientsAttribution:
    """Attribute ``cos(encode(text), target)`` to words with plain IG from the all-[MASK] input."""
    from recommendations.ml.encoder import encoder_version

    started = time.perf_counter()
    model = _encoder()
    bert = model[0].auto_model
    prep = _prepare(model, text, target)
    alphas, weights = quadrature(steps, method)
    rows_per_pass = _rows_per_pass(prep.embeds.shape[0], batch_size)
    all_words = prep.word_masks.sum(dim=0, keepdim=True).clamp(max=1.0)
    with _inputs_only_grad(bert):
        per_position = _path_integrals(bert, prep, all_words, alphas, weights, rows_per_pass)[0]
    attributions = np.array([float(per_position[s:e].sum()) for s, e in prep.spans])
    score, baseline_score = _forward_scores(bert, prep, _with_unmasked_row(all_words), rows_per_pass)
    return IntegratedGradientsAttribution(
        text=text,
        words=prep.words,
        token_spans=prep.spans,
        attributions=attributions,
        normalized=normalize_shares(attributions),
        score=float(score),
        baseline_score=float(baseline_score),
        completeness_error=float(attributions.sum() - (score - baseline_score)),
        steps=steps,
        method=method,
        elapsed_s=time.perf_counter() - started,
        model_version=encoder_version(),
    )


def masked_scores(
    text: str, target: np.ndarray, keep: Sequence[Sequence[bool]] | np.ndarray, *, batch_size: int | None = None
) -> np.ndarray:
    """Return f for each row of ``keep`` (one bool per word): dropped words have all their tokens set to [MASK].

    This is the same masking as the SIG/IG baselines, so deletion tests and attributions agree on what
    "removing a word" means.
    """
    import torch

    model = _encoder()
    bert = model[0].auto_model
    prep = _prepare(model, text, target)
    keep_arr = np.asarray(keep, dtype=bool)
    if keep_arr.ndim != 2 or keep_arr.shape[1] != len(prep.words):
        raise ValueError(f"keep must be (n, {len(prep.words)}), got {keep_arr.shape}")
    drop = torch.tensor(~keep_arr, dtype=prep.word_masks.dtype, device=prep.word_masks.device)
    masks = (drop @ prep.word_masks).clamp(max=1.0)
    return _forward_scores(bert, prep, masks, _rows_per_pass(prep.embeds.shape[0], batch_size))


@dataclass(frozen=True)
class MaskedVectors:
    """A text's words and the unit vectors of ``[x, x with word 1 masked, ...]`` (the exact method's inputs).

    Customer-independent: for any target t, ``vectors @ t / |t|`` gives the closed form's score and
    baseline scores, so each customer's word attribution is one small dot product.
    """

    text: str
    words: list[str]
    token_spans: list[tuple[int, int]]
    tokens: list[str]
    vectors: np.ndarray  # (n_words + 1, d) float32, unit rows


def masked_text_vectors(texts: Sequence[str]) -> list[MaskedVectors]:
    """Encode each text and each one-word-masked variant, batching sequences of equal length across texts.

    The inputs are those of :func:`sig_word_attributions` with ``method="exact"`` (no padding: every
    sequence in a pass has the same length), so the dot products equal its closed form.
    """
    import torch

    model = _encoder()
    bert = model[0].auto_model
    preps = [_prepare(model, text, np.zeros(bert.config.hidden_size, dtype=np.float32)) for text in texts]
    pooled: list[torch.Tensor | None] = [None] * len(preps)
    by_length: dict[int, list[int]] = {}
    for i, prep in enumerate(preps):
        by_length.setdefault(prep.embeds.shape[0], []).append(i)
    with torch.no_grad():
        for length, members in by_length.items():
            inputs = torch.cat([_masked_embeds(preps[i], _with_unmasked_row(preps[i].word_masks)) for i in members])
            rows = _rows_per_pass(length, None)
            mask = torch.ones(inputs.shape[:2], dtype=torch.long, device=inputs.device)
            out = torch.cat(
                [
                    bert(inputs_embeds=inputs[s : s + rows], attention_mask=mask[s : s + rows]).last_hidden_state.mean(
                        1
                    )
                    for s in range(0, inputs.shape[0], rows)
                ]
            )
            out = torch.nn.functional.normalize(out, dim=-1)
            start = 0
            for i in members:
                n = preps[i].word_masks.shape[0] + 1
                pooled[i] = out[start : start + n]
                start += n
    return [
        MaskedVectors(text, prep.words, prep.spans, prep.tokens, vec.cpu().numpy().astype(np.float32))
        for text, prep, vec in zip(texts, preps, pooled, strict=True)
    ]
