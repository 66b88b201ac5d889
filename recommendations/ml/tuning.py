"""Domain-tune the sentence encoder on co-purchase pairs (contrastive learning, in-batch negatives).

all-MiniLM-L6-v2 knows English, not this shop: "jumbo bag red retrospot" and "lunch bag red retrospot"
are bought together far more than their wording says. Pairs of products bought in the same basket
(same customer, same invoice time) before the evaluation cutoff are positives; the other pairs of a batch
are negatives (MultipleNegativesRankingLoss). A plain training loop (no ``datasets``/Trainer) keeps the
CPU settings predictable: a fixed step budget and a wall-clock budget, 1-2 threads.

Torch and sentence-transformers are imported inside functions only (web processes never load them).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TuneSettings:
    max_pairs: int = 16_000  # training pairs (each seen once per epoch)
    min_baskets: int = 3  # a pair must be bought together in at least this many baskets
    per_item: int = 12  # at most this many pairs per product (hub products would dominate)
    batch_size: int = 32  # in-batch negatives: batch_size - 1 per pair
    epochs: int = 1
    max_steps: int | None = 350
    learning_rate: float = 3e-5
    warmup_ratio: float = 0.1
    time_budget_s: float = 540.0  # training stops after this much wall time (CPU: ~15 min all in)
    threads: int = 1  # torch threads (0 = torch's default); 1 is fastest on 2 shared cores
    device: str = "cpu"
    seed: int = 0


PRESETS = {
    # Measured on the 2-core reference machine: see docs/evaluation.md.
    "cpu": TuneSettings(),
    # A GPU worker: every pair, larger batches (more in-batch negatives), 3 epochs.
    "gpu": TuneSettings(
        max_pairs=60_000,
        batch_size=128,
        epochs=3,
        max_steps=None,
        learning_rate=5e-5,
        time_budget_s=3600.0,
        threads=0,
        device="cuda",
    ),
    # CI: proves the loop runs and saves a loadable model.
    "smoke": TuneSettings(max_pairs=48, min_baskets=1, batch_size=8, max_steps=2, time_budget_s=120.0, threads=1),
}


def with_settings(preset: str = "cpu", **overrides) -> TuneSettings:
    return replace(PRESETS[preset], **overrides)


# --------------------------------------------------------------------------- training pairs


def copurchase_pairs(
    interactions: pd.DataFrame,
    texts: Mapping[str, str],
    *,
    before: str | pd.Timestamp,
    settings: TuneSettings,
) -> list[tuple[str, str]]:
    """Return (text, text) pairs of products bought in the same basket before ``before``, strongest first.

    A basket is one customer's lines at one invoice time. Strength = cosine of the two products' basket
    vectors; pairs with the same text, or fewer than ``min_baskets`` shared baskets, are skipped, and no
    product takes part in more than ``per_item`` pairs.
    """
    train = interactions.loc[interactions["occurred_at"] < pd.Timestamp(before)]
    train = train.loc[train["item"].isin(set(texts))]
    if train.empty:
        return []
    baskets = train.groupby(["customer", "occurred_at"], sort=False).ngroup().to_numpy()
    items, columns = np.unique(train["item"].to_numpy(dtype=str), return_inverse=True)
    matrix = sp.csr_matrix(
        (np.ones(len(baskets), dtype=np.float32), (baskets, columns)), shape=(baskets.max() + 1, len(items))
    )
    matrix.sum_duplicates()
    matrix.data[:] = 1.0  # several lines of one product in a basket count once
    together = sp.triu(matrix.T @ matrix, k=1).tocoo()
    counts = np.asarray(matrix.sum(axis=0)).ravel()
    keep = together.data >= settings.min_baskets
    rows, cols, shared = together.row[keep], together.col[keep], together.data[keep]
    strength = shared / np.sqrt(counts[rows] * counts[cols])
    used: dict[int, int] = {}
    pairs: list[tuple[str, str]] = []
    for k in np.lexsort((cols, rows, -strength)):  # strongest first, ties by index: deterministic
        a, b = int(rows[k]), int(cols[k])
        text_a, text_b = texts[items[a]], texts[items[b]]
        if text_a == text_b or used.get(a, 0) >= settings.per_item or used.get(b, 0) >= settings.per_item:
            continue
        pairs.append((text_a, text_b))
        used[a] = used.get(a, 0) + 1
        used[b] = used.get(b, 0) + 1
        if len(pairs) >= settings.max_pairs:
            break
    return pairs


def pair_batches(pairs: Sequence[tuple[str, str]], batch_size: int, rng: random.Random) -> list[list[tuple[str, str]]]:
    """Shuffle pairs into batches in which no text appears twice (a repeat would be a false negative)."""
    pending = list(pairs)
    rng.shuffle(pending)
    batches = []
    while pending:
        batch, seen, rest = [], set(), []
        for pair in pending:
            if len(batch) < batch_size and pair[0] not in seen and pair[1] not in seen:
                batch.append(pair)
                seen.update(pair)
            else:
                rest.append(pair)
        if len(batch) < 2:
            break  # a lone pair has no in-batch negative
        batches.append(batch)
        pending = rest
    return batches


# --------------------------------------------------------------------------- training


def tuned_version(base_version: str, pairs: Sequence[tuple[str, str]], settings: TuneSettings) -> str:
    """Return the directory name of a tuning result: base encoder, pairs and settings decide it."""
    digest = hashlib.sha256(base_version.encode())
    digest.update(json.dumps(asdict(settings), sort_keys=True).encode())
    for a, b in pairs:
        digest.update(f"{a}\x1f{b}\x1e".encode())
    return f"minilm-copurchase-{digest.hexdigest()[:12]}"


def fine_tune(
    base_path: str | Path,
    pairs: Sequence[tuple[str, str]],
    output: str | Path,
    *,
    settings: TuneSettings,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Fine-tune the encoder at ``base_path`` on ``pairs`` with MultipleNegativesRankingLoss; save to ``output``.

    Returns the training report (steps, pairs, losses, wall time).
    """
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from transformers import get_linear_schedule_with_warmup

    started = time.perf_counter()
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    rng = random.Random(settings.seed)
    model = SentenceTransformer(str(base_path), device=settings.device, local_files_only=True)
    loss_fn = MultipleNegativesRankingLoss(model)
    batches = [b for _ in range(settings.epochs) for b in pair_batches(pairs, settings.batch_size, rng)]
    if settings.max_steps is not None:
        batches = batches[: settings.max_steps]
    if not batches:
        raise ValueError("no training batches: too few co-purchase pairs")
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.learning_rate)
    schedule = get_linear_schedule_with_warmup(optimizer, int(settings.warmup_ratio * len(batches)), len(batches))
    model.train()
    losses = []
    for step, batch in enumerate(batches, start=1):
        features = [model.preprocess([pair[column] for pair in batch]) for column in (0, 1)]
        features = [{k: v.to(model.device) if hasattr(v, "to") else v for k, v in f.items()} for f in features]
        loss = loss_fn(features, labels=None)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
        elapsed = time.perf_counter() - started
        if progress and (step % 10 == 0 or step == len(batches)):
            progress({"step": step, "steps": len(batches), "loss": float(np.mean(losses[-10:])), "seconds": elapsed})
        if elapsed > settings.time_budget_s:
            logger.info("tuning stopped at step %d of %d: time budget reached", step, len(batches))
            break
    model.eval()
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    model.save(str(output))
    return {
        "pairs": len(pairs),
        "steps": len(losses),
        "steps_planned": len(batches),
        "loss_first_10": float(np.mean(losses[:10])),
        "loss_last_10": float(np.mean(losses[-10:])),
        "train_seconds": round(time.perf_counter() - started, 1),
        "settings": asdict(settings),
    }


def encode_with(path: str | Path, texts: Sequence[str], *, device: str = "cpu", batch_size: int = 64) -> np.ndarray:
    """Return L2-normalized embeddings of ``texts`` from the sentence-transformers model at ``path``."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(path), device=device, local_files_only=True)
    model.eval()
    vectors = model.encode(
        list(texts), batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False
    )
    return np.asarray(vectors, dtype=np.float32)
