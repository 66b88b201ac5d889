"""Staged training of the ELM: an LM-free warm start, then products, then customers through the LM."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import numpy as np

from explanations.ml.elm.adapter import AdapterArtifact, new_adapter
from explanations.ml.elm.presets import PRESETS, TrainSettings
from explanations.ml.elm.training import Progress, train_adapter

if TYPE_CHECKING:
    import torch


def warm_start_targets(tokenizer, table, texts: Sequence[str], k: int, norm: float) -> torch.Tensor:
    """(n, k, d) targets: the input embeddings of each text's first k tokens (cycled when shorter), at ``norm``."""
    import torch

    rows = []
    for text in texts:
        ids = tokenizer(" " + " ".join(text.split()).lower(), add_special_tokens=False)["input_ids"] or [0]
        rows.append([ids[i % len(ids)] for i in range(k)])
    with torch.no_grad():
        targets = table(torch.tensor(rows, device=table.weight.device))
        return torch.nn.functional.normalize(targets, dim=-1) * norm


def warm_start(
    adapter,
    vectors: np.ndarray,
    texts: Sequence[str],
    *,
    lm: tuple[Any, Any],
    epochs: int = 30,
    lr: float = 2e-3,
    batch_size: int = 256,
    time_budget_s: float | None = 60.0,
    seed: int = 0,
) -> dict[str, Any]:
    """Stage 0: fit the adapter so that a product's soft tokens are its description's first k token embeddings.

    No LM pass is needed (milliseconds per step), which makes it the only stage that sees every product many
    times on a CPU. It gives the soft tokens a reading the frozen LM already understands (words); the
    cross-entropy stages then adapt them to the task. Loss: mean (1 - cosine) between soft and target tokens.
    """
    import torch

    model, tokenizer = lm
    table = model.get_input_embeddings()
    device = table.weight.device
    targets = warm_start_targets(tokenizer, table, texts, adapter.k, float(adapter.target_norm))
    x_all = torch.as_tensor(np.asarray(vectors, dtype=np.float32), device=device)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    adapter.train()
    started = time.perf_counter()
    losses: list[float] = []
    for _epoch in range(epochs):
        if time_budget_s is not None and time.perf_counter() - started >= time_budget_s:
            break
        order = torch.randperm(len(x_all), generator=generator).to(device)
        total = 0.0
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            soft = adapter(x_all[idx])
            loss = (1 - torch.nn.functional.cosine_similarity(soft, targets[idx], dim=-1)).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(order))
    adapter.eval()
    return {
        "task": "warm_start",
        "pairs": len(texts),
        "epochs_completed": len(losses),
        "train_seconds": round(time.perf_counter() - started, 2),
        "loss_first_epoch": losses[0] if losses else None,
        "loss_last_epoch": losses[-1] if losses else None,
    }


def _description_of(product_text: str) -> str:
    """The description in a product sentence ("A jumbo bag red, from the bags range." -> "jumbo bag red")."""
    text = product_text.strip().rstrip(".")
    for article in ("A ", "An "):
        if text.startswith(article):
            text = text[len(article) :]
            break
    return text.split(", ")[0] if ", " in text else text


def train_elm(
    customer_pairs: Sequence[tuple[np.ndarray, str]],
    *,
    product_pairs: Sequence[tuple[np.ndarray, str]] = (),
    val_pairs: Sequence[tuple[np.ndarray, str]] = (),
    preset: str | TrainSettings = "cpu",
    progress: Progress | None = None,
    lm: tuple[Any, Any] | None = None,
) -> AdapterArtifact:
    """Staged training: products (vector -> description sentence) first, then customers (vector -> profile).

    ``customer_pairs`` texts are full profiles; they are cut to the preset's ``target_sentences``.
    """
    from explanations.ml.profiles import first_sentences, profile_content

    s = PRESETS[preset] if isinstance(preset, str) else preset

    def cut(items):
        if s.target_sentences is None:
            return list(items)
        return [(v, first_sentences(t, s.target_sentences)) for v, t in items]

    common = {
        "batch_size": s.batch_size,
        "soft_tokens": s.soft_tokens,
        "hidden": s.hidden,
        "lr": s.lr,
        "weight_decay": s.weight_decay,
        "max_target_tokens": s.max_target_tokens,
        "seed": s.seed,
        "progress": progress,
        "lm": lm,
    }
    started = time.perf_counter()
    artifact = None
    warm_metrics = None
    if s.warm_start_epochs > 0:
        from explanations.ml.lm import get_lm, mean_token_norm

        model, tokenizer = lm or get_lm()
        in_dim = int(np.asarray(customer_pairs[0][0]).shape[-1])
        adapter = new_adapter(
            in_dim=in_dim,
            lm_dim=int(model.get_input_embeddings().weight.shape[1]),
            k=s.soft_tokens,
            hidden=s.hidden,
            target_norm=mean_token_norm(model),
            seed=s.seed,
        ).to(model.get_input_embeddings().weight.device)
        # Products spell their description; customers the content words of their profile (categories, top
        # products), i.e. exactly what a mean of product-description vectors encodes.
        warm = [(v, _description_of(t)) for v, t in product_pairs]
        warm += [(v, profile_content(t)) for v, t in customer_pairs]
        warm_metrics = warm_start(
            adapter,
            np.stack([np.asarray(v, dtype=np.float32) for v, _ in warm]),
            [t for _, t in warm],
            lm=(model, tokenizer),
            epochs=s.warm_start_epochs,
            seed=s.seed,
            time_budget_s=s.warm_start_share * s.time_budget_s,
        )
        artifact = AdapterArtifact(
            adapter=adapter,
            config={"hidden": s.hidden, "stages": ["warm_start"]},
            metrics={"stages": [warm_metrics]},
        )
    if product_pairs and s.product_share > 0:
        products = list(product_pairs)
        if s.max_products is not None and len(products) > s.max_products:
            products = random.Random(s.seed).sample(products, s.max_products)
        artifact = train_adapter(
            products,
            task="product",
            epochs=s.product_epochs,
            time_budget_s=s.time_budget_s * s.product_share,
            init=artifact,
            **common,
        )
    spent = time.perf_counter() - started
    artifact = train_adapter(
        cut(customer_pairs),
        val_pairs=cut(val_pairs),
        task="customer",
        epochs=s.epochs,
        time_budget_s=max(s.time_budget_s - spent, 1.0),
        init=artifact,
        **common,
    )
    artifact.config["preset"] = asdict(s)
    artifact.config["preset_name"] = preset if isinstance(preset, str) else "custom"
    artifact.metrics["wall_seconds"] = round(time.perf_counter() - started, 2)
    return artifact
