"""Training the adapter through the frozen LM: teacher-forced cross-entropy on the reference text's tokens.

The prompt's tokens carry no loss; the fixed prompt prefix is run once per training run and its attention
cache expanded over each batch.
"""

from __future__ import annotations

import copy
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from explanations.ml.elm.adapter import FORMAT_VERSION, AdapterArtifact, encoder_version_or_unknown, new_adapter
from explanations.ml.elm.prompts import GROUNDED_INSTRUCTIONS, SYSTEM_PROMPT, TASKS, task_messages

if TYPE_CHECKING:
    import torch

Progress = Callable[[dict[str, Any]], None]


@dataclass
class _Prepared:
    vectors: np.ndarray  # (n, in_dim)
    targets: list[list[int]]  # target token ids (text + end-of-turn)


class Trainer:
    """Teacher-forced loss of the adapter through the frozen LM, with the fixed prompt prefix cached."""

    def __init__(self, model, tokenizer, task: str):
        import torch

        from explanations.ml.lm import split_prompt

        self.model, self.tokenizer = model, tokenizer
        self.table = model.get_input_embeddings()
        self.device = self.table.weight.device
        prefix, suffix = split_prompt(tokenizer, task_messages(task))
        self.prefix_len = len(prefix)
        self.suffix = torch.tensor(suffix, device=self.device)
        with torch.no_grad():
            out = model(input_ids=torch.tensor([prefix], device=self.device), use_cache=True)
        # Per layer (keys, values) of the prefix: identical for every example, computed once.
        self.prefix_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        self.end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        self.pad_id = tokenizer.pad_token_id

    def encode_targets(self, texts: Sequence[str], max_tokens: int) -> list[list[int]]:
        out = []
        for text in texts:
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            # A target cut short gets no end-of-turn: the LM should not learn to stop mid-sentence.
            out.append(ids[:max_tokens] if len(ids) >= max_tokens else [*ids, self.end_id])
        return out

    def loss(self, soft: torch.Tensor, targets: Sequence[Sequence[int]]) -> tuple[torch.Tensor, int, int]:
        """Return (mean token cross-entropy, target tokens, positions computed) for one batch."""
        import torch
        from transformers import DynamicCache

        batch, k = soft.shape[0], soft.shape[1]
        width = max(len(t) for t in targets)
        ids = torch.full((batch, width), self.pad_id, dtype=torch.long, device=self.device)
        mask = torch.zeros(batch, width, dtype=torch.long, device=self.device)
        for row, t in enumerate(targets):
            ids[row, : len(t)] = torch.tensor(t, device=self.device)
            mask[row, : len(t)] = 1
        suffix = self.table(self.suffix).expand(batch, -1, -1)
        embeds = torch.cat([soft, suffix, self.table(ids)], dim=1)
        new = embeds.shape[1]
        attention = torch.cat(
            [torch.ones(batch, self.prefix_len + k + suffix.shape[1], dtype=torch.long, device=self.device), mask],
            dim=1,
        )
        positions = torch.arange(self.prefix_len, self.prefix_len + new, device=self.device).expand(batch, -1)
        cache = DynamicCache(
            ddp_cache_data=[(kk.expand(batch, -1, -1, -1), vv.expand(batch, -1, -1, -1)) for kk, vv in self.prefix_kv],
            config=self.model.config,
        )
        hidden = self.model.model(
            inputs_embeds=embeds,
            attention_mask=attention,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        ).last_hidden_state
        # Position j predicts token j+1: the last suffix position predicts the first target token.
        start = k + suffix.shape[1] - 1
        predicting = hidden[:, start : start + width][mask.bool()]
        # The LM head only where there is a target: most positions need no 49k-way logits.
        logits = self.model.lm_head(predicting)
        loss = torch.nn.functional.cross_entropy(logits.float(), ids[mask.bool()])
        return loss, int(mask.sum()), batch * new


def _batches(n: int, batch_size: int, rng: random.Random) -> list[list[int]]:
    order = list(range(n))
    rng.shuffle(order)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


def _evaluate(trainer: Trainer, adapter, data: _Prepared, batch_size: int) -> float | None:
    import torch

    if not len(data.targets):
        return None
    total, tokens = 0.0, 0
    adapter.eval()
    with torch.no_grad():
        for start in range(0, len(data.targets), batch_size):
            x = torch.as_tensor(data.vectors[start : start + batch_size], device=trainer.device)
            loss, n_tok, _ = trainer.loss(adapter(x), data.targets[start : start + batch_size])
            total += float(loss) * n_tok
            tokens += n_tok
    return total / tokens


def train_adapter(
    pairs: Sequence[tuple[np.ndarray, str]],
    *,
    val_pairs: Sequence[tuple[np.ndarray, str]] = (),
    epochs: int = 2,
    lr: float = 3e-3,
    batch_size: int = 8,
    soft_tokens: int = 4,
    time_budget_s: float | None = 240.0,
    progress: Progress | None = None,
    task: str = "customer",
    hidden: int = 512,
    weight_decay: float = 0.0,
    max_target_tokens: int = 48,
    max_steps: int | None = None,
    seed: int = 0,
    init: AdapterArtifact | None = None,
    lm: tuple[Any, Any] | None = None,
) -> AdapterArtifact:
    """Train (or continue training ``init``) the adapter on (embedding, reference text) pairs.

    Stops after ``epochs``, ``max_steps`` or ``time_budget_s`` seconds of training, whichever comes first;
    the learning rate follows a cosine from ``lr`` to lr/10 over whichever of steps and time runs out first.
    ``progress`` is called after every step with a dict (task, step, steps_planned, epoch, loss, elapsed_s).
    """
    import torch

    from explanations.ml.lm import get_lm, lm_id, mean_token_norm

    if not pairs:
        raise ValueError("no training pairs")
    model, tokenizer = lm or get_lm()
    trainer = Trainer(model, tokenizer, task)
    in_dim = int(np.asarray(pairs[0][0]).shape[-1])
    lm_dim = int(trainer.table.weight.shape[1])
    if init is not None:
        adapter = copy.deepcopy(init.adapter)
        if (adapter.in_dim, adapter.lm_dim, adapter.k) != (in_dim, lm_dim, soft_tokens):
            raise ValueError("init adapter dimensions do not match")
        hidden = init.config["hidden"]
    else:
        adapter = new_adapter(
            in_dim=in_dim, lm_dim=lm_dim, k=soft_tokens, hidden=hidden, target_norm=mean_token_norm(model), seed=seed
        )
    adapter.to(trainer.device)

    def prepare(items: Sequence[tuple[np.ndarray, str]]) -> _Prepared:
        vectors = np.stack([np.asarray(v, dtype=np.float32) for v, _ in items]) if items else np.zeros((0, in_dim))
        return _Prepared(vectors.astype(np.float32), trainer.encode_targets([t for _, t in items], max_target_tokens))

    train, val = prepare(pairs), prepare(val_pairs)
    rng = random.Random(seed)
    torch.manual_seed(seed)
    optimizer = torch.optim.AdamW(adapter.parameters(), lr=lr, weight_decay=weight_decay)
    steps_per_epoch = math.ceil(len(train.targets) / batch_size)
    planned = epochs * steps_per_epoch if max_steps is None else min(max_steps, epochs * steps_per_epoch)

    val_before = _evaluate(trainer, adapter, val, batch_size)
    losses: list[float] = []
    epoch_losses: list[float] = []
    target_tokens = positions = step = 0
    started = time.perf_counter()
    stopped_by = "epochs"
    for epoch in range(epochs):
        adapter.train()
        epoch_total, epoch_n = 0.0, 0
        for idx in _batches(len(train.targets), batch_size, rng):
            elapsed = time.perf_counter() - started
            if time_budget_s is not None and elapsed >= time_budget_s:
                stopped_by = "time budget"
                break
            if max_steps is not None and step >= max_steps:
                stopped_by = "max steps"
                break
            done = max(step / max(planned, 1), elapsed / time_budget_s if time_budget_s else 0.0)
            for group in optimizer.param_groups:
                group["lr"] = lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(done, 1.0))))
            x = torch.as_tensor(train.vectors[idx], device=trainer.device)
            loss, n_tok, n_pos = trainer.loss(adapter(x), [train.targets[i] for i in idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(adapter.parameters(), 1.0)
            optimizer.step()
            step += 1
            target_tokens += n_tok
            positions += n_pos
            value = float(loss.detach())
            losses.append(value)
            epoch_total += value * len(idx)
            epoch_n += len(idx)
            if progress:
                progress(
                    {
                        "task": task,
                        "step": step,
                        "steps_planned": planned,
                        "epoch": epoch,
                        "loss": value,
                        "elapsed_s": time.perf_counter() - started,
                    }
                )
        if epoch_n:
            epoch_losses.append(epoch_total / epoch_n)
        if stopped_by != "epochs":
            break
    train_seconds = time.perf_counter() - started
    adapter.eval()
    val_after = _evaluate(trainer, adapter, val, batch_size)
    window = max(1, min(10, len(losses) // 4))
    stage_metrics = {
        "task": task,
        "pairs": len(train.targets),
        "val_pairs": len(val.targets),
        "steps": step,
        "steps_planned": planned,
        "stopped_by": stopped_by,
        "epochs_completed": len(epoch_losses),
        "train_seconds": round(train_seconds, 2),
        "train_loss_first": float(np.mean(losses[:window])) if losses else None,
        "train_loss_last": float(np.mean(losses[-window:])) if losses else None,
        "epoch_losses": epoch_losses,
        "val_loss_before": val_before,
        "val_loss_after": val_after,
        "target_tokens": target_tokens,
        "positions": positions,
        "target_tokens_per_s": round(target_tokens / train_seconds, 2) if train_seconds else None,
        "positions_per_s": round(positions / train_seconds, 2) if train_seconds else None,
    }
    config = {
        "format_version": FORMAT_VERSION,
        "in_dim": in_dim,
        "lm_dim": lm_dim,
        "k": soft_tokens,
        "hidden": hidden,
        "target_norm": float(adapter.target_norm),
        "lm_id": lm_id(),
        "encoder_version": encoder_version_or_unknown(),
        "seed": seed,
        "system_prompt": SYSTEM_PROMPT,
        "tasks": TASKS,
        "grounded_instructions": GROUNDED_INSTRUCTIONS,
        "hyper_parameters": {
            "epochs": epochs,
            "lr": lr,
            "batch_size": batch_size,
            "weight_decay": weight_decay,
            "max_target_tokens": max_target_tokens,
            "time_budget_s": time_budget_s,
            "max_steps": max_steps,
        },
        "stages": [*(init.config.get("stages", []) if init else []), task],
    }
    metrics = {"stages": [*(init.metrics.get("stages", []) if init else []), stage_metrics]}
    return AdapterArtifact(adapter=adapter, config=config, metrics=metrics)
