"""Deletion tests of word attributions (the faithfulness metrics of the SIG and DIG papers), for a cosine score.

For a text x with score f(x) = cos(encode(x), target) and an attribution per word, the top-k words are
the k = ceil(fraction * n_words) words with the largest signed attribution (ties: earlier word first).
"Removing" a word sets all its tokens to [MASK], the same baseline SIG and IG integrate from.

- comprehensiveness = f(x) - f(x without the top-k words): higher is better (the words it names matter).
- sufficiency = f(x) - f(only the top-k words): lower is better (those words alone keep the score).
- log-odds = log p(x without the top-k) - log p(x) with p = (1 + f) / 2: lower is better. The papers
  use the predicted class probability; a cosine score has no probability, so it is mapped affinely onto
  [0, 1]. This keeps the metric's shape (log ratio after deletion), not its scale.

The paper figures are averages over examples at one fraction (20%); ``aopc`` also averages over the
fractions given. ``faithfulness_report`` runs SIG, IG and a seeded random ranking on the same pairs.

The CSV helpers read a few hundred raw rows of the UCI Online Retail file so evaluations use real
descriptions and customer-like target vectors without a database.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

# keep masks (m x n_words, True = word kept) -> scores (m,)
ScoreFn = Callable[[np.ndarray], np.ndarray]

DEFAULT_FRACTIONS = (0.1, 0.2, 0.3, 0.5)
_PROB_FLOOR = 1e-12


@dataclass(frozen=True)
class DeletionScores:
    fraction: float
    k: int
    comprehensiveness: float
    sufficiency: float
    log_odds: float


def top_k_count(n_words: int, fraction: float) -> int:
    """Return how many words the top ``fraction`` is: ceil(fraction * n), at least 1 and at most n."""
    if not 0 < fraction <= 1:
        raise ValueError("fraction must be in (0, 1]")
    # The epsilon keeps 0.2 * 5 at 1 despite binary floating point.
    return min(n_words, max(1, math.ceil(fraction * n_words - 1e-9)))


def top_words(attributions: np.ndarray, k: int) -> np.ndarray:
    """Return the indices of the k largest attributions, ties broken by word order."""
    order = np.argsort(-np.asarray(attributions, dtype=float), kind="stable")
    return order[:k]


def similarity_log_odds(masked_score: float, full_score: float) -> float:
    """Return log p(masked) - log p(full) with p = (1 + cosine) / 2."""
    p_masked = max((1.0 + masked_score) / 2.0, _PROB_FLOOR)
    p_full = max((1.0 + full_score) / 2.0, _PROB_FLOOR)
    return math.log(p_masked) - math.log(p_full)


def deletion_scores(
    attributions: np.ndarray, score_fn: ScoreFn, *, fractions: Sequence[float] = DEFAULT_FRACTIONS
) -> list[DeletionScores]:
    """Return comprehensiveness, sufficiency and log-odds of one example at each fraction.

    ``score_fn`` gets every keep mask at once (the full text first), so a model scores them in one batch.
    """
    attributions = np.asarray(attributions, dtype=float)
    n = attributions.shape[0]
    ks = [top_k_count(n, fr) for fr in fractions]
    masks = [np.ones(n, dtype=bool)]
    for k in ks:
        top = np.zeros(n, dtype=bool)
        top[top_words(attributions, k)] = True
        masks.extend([~top, top])
    scores = np.asarray(score_fn(np.stack(masks)), dtype=float)
    full = float(scores[0])
    out = []
    for i, (fraction, k) in enumerate(zip(fractions, ks, strict=True)):
        without_top, only_top = float(scores[1 + 2 * i]), float(scores[2 + 2 * i])
        out.append(
            DeletionScores(
                fraction=fraction,
                k=k,
                comprehensiveness=full - without_top,
                sufficiency=full - only_top,
                log_odds=similarity_log_odds(without_top, full),
            )
        )
    return out


def summarize(per_example: Sequence[Sequence[DeletionScores]]) -> dict:
    """Return mean metrics per fraction and their average over fractions (AOPC) for a list of examples."""
    if not per_example:
        raise ValueError("no examples")
    fractions = [d.fraction for d in per_example[0]]
    by_fraction = {}
    for i, fraction in enumerate(fractions):
        rows = [example[i] for example in per_example]
        by_fraction[f"{fraction:g}"] = {
            "comprehensiveness": float(np.mean([r.comprehensiveness for r in rows])),
            "sufficiency": float(np.mean([r.sufficiency for r in rows])),
            "log_odds": float(np.mean([r.log_odds for r in rows])),
            "mean_k": float(np.mean([r.k for r in rows])),
        }
    aopc = {
        metric: float(np.mean([v[metric] for v in by_fraction.values()]))
        for metric in ("comprehensiveness", "sufficiency", "log_odds")
    }
    return {"by_fraction": by_fraction, "aopc": aopc, "n_examples": len(per_example)}


# Direction in which each metric is better.
_HIGHER_IS_BETTER = {"comprehensiveness": True, "sufficiency": False, "log_odds": False}


def paired_comparison(
    first: Sequence[Sequence[DeletionScores]], second: Sequence[Sequence[DeletionScores]], *, tie: float = 1e-9
) -> dict:
    """Count, per fraction and metric, the examples where ``first`` is better, tied or worse than ``second``.

    Equal top-k sets give identical masked scores, so ties are common on short texts; they are counted
    apart rather than folded into the means.
    """
    out: dict[str, dict] = {}
    for i, fraction in enumerate(d.fraction for d in first[0]):
        per_metric = {}
        for metric, higher in _HIGHER_IS_BETTER.items():
            diffs = np.array(
                [getattr(a[i], metric) - getattr(b[i], metric) for a, b in zip(first, second, strict=True)]
            )
            better = diffs > tie if higher else diffs < -tie
            worse = diffs < -tie if higher else diffs > tie
            per_metric[metric] = {
                "better": int(better.sum()),
                "tied": int((~better & ~worse).sum()),
                "worse": int(worse.sum()),
                "mean_difference": float(diffs.mean()),
            }
        out[f"{fraction:g}"] = per_metric
    return out


def faithfulness_report(
    pairs: Sequence[tuple[str, np.ndarray]],
    *,
    steps: int = 50,
    method: str = "gausslegendre",
    fractions: Sequence[float] = DEFAULT_FRACTIONS,
    seed: int = 0,
) -> dict:
    """Run SIG, plain IG and a random ranking on (text, target) pairs; return the deletion metrics of each.

    All three are scored with the same masked forward passes of the real encoder, in the same run.
    """
    from explanations.ml.sig import ig_word_attributions, masked_scores, sig_word_attributions

    rng = np.random.default_rng(seed)
    results: dict[str, list[list[DeletionScores]]] = {"sig": [], "ig": [], "random": []}
    per_pair = []
    completeness = {"sig": [], "ig": []}
    seconds = {"sig": 0.0, "ig": 0.0}
    started = time.perf_counter()
    for text, target in pairs:

        def score_fn(keep: np.ndarray, text: str = text, target: np.ndarray = target) -> np.ndarray:
            return masked_scores(text, target, keep)

        sig = sig_word_attributions(text, target, steps=steps, method=method)
        ig = ig_word_attributions(text, target, steps=steps, method=method)
        completeness["sig"].append(float(np.max(np.abs(sig.completeness_errors))))
        completeness["ig"].append(abs(ig.completeness_error))
        seconds["sig"] += sig.elapsed_s
        seconds["ig"] += ig.elapsed_s
        results["sig"].append(deletion_scores(sig.attributions, score_fn, fractions=fractions))
        results["ig"].append(deletion_scores(ig.attributions, score_fn, fractions=fractions))
        random_attr = rng.permutation(len(sig.words)).astype(float)
        results["random"].append(deletion_scores(random_attr, score_fn, fractions=fractions))
        per_pair.append(
            {
                "text": text,
                "score": sig.score,
                "words": sig.words,
                "sig": sig.attributions.tolist(),
                "ig": ig.attributions.tolist(),
                "spearman_sig_ig": _spearman(sig.attributions, ig.attributions),
            }
        )
    return {
        "steps": steps,
        "method": method,
        "fractions": list(fractions),
        "n_pairs": len(pairs),
        "n_distinct_texts": len({text for text, _ in pairs}),
        "metrics": {name: summarize(rows) for name, rows in results.items()},
        "sig_vs_ig": paired_comparison(results["sig"], results["ig"]),
        "median_spearman_sig_ig": float(np.nanmedian([p["spearman_sig_ig"] for p in per_pair])),
        "max_abs_completeness_error": {name: float(np.max(v)) for name, v in completeness.items()},
        "median_abs_completeness_error": {name: float(np.median(v)) for name, v in completeness.items()},
        "attribution_seconds": seconds,
        "elapsed_s": time.perf_counter() - started,
        "pairs": per_pair,
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)
