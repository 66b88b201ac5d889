"""The ELM adapter and its versioned artifact.

A small MLP maps the L2-normalized embedding to ``k`` soft tokens in the LM's input-embedding space, each
scaled to the LM's mean token-embedding norm. Artifacts are versioned directories: ``adapter.safetensors`` +
``config.json`` + ``metrics.json``; a root folder holds one sub-folder per version and a ``CURRENT`` file
naming the one in use. Torch is imported inside functions only (web processes never load it).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _adapter_class():
    import torch
    from torch import nn

    class ElmAdapter(nn.Module):
        """MLP: embedding (in_dim) -> k soft tokens (k x lm_dim), each of norm ``target_norm``."""

        def __init__(self, in_dim: int, lm_dim: int, k: int, hidden: int, target_norm: float):
            super().__init__()
            self.in_dim, self.lm_dim, self.k = in_dim, lm_dim, k
            self.net = nn.Sequential(
                nn.Linear(in_dim, hidden), nn.GELU(), nn.LayerNorm(hidden), nn.Linear(hidden, k * lm_dim)
            )
            self.register_buffer("target_norm", torch.tensor(float(target_norm)))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            # Unit vectors have tiny coordinates (~1/sqrt(384)); rescale so the first layer sees O(1) inputs.
            x = nn.functional.normalize(x, dim=-1) * math.sqrt(self.in_dim)
            out = self.net(x).view(x.shape[0], self.k, self.lm_dim)
            # Same scale as real token embeddings: a soft token an LM layer norm was trained to expect.
            return nn.functional.normalize(out, dim=-1) * self.target_norm

    return ElmAdapter


def new_adapter(*, in_dim: int, lm_dim: int, k: int, hidden: int, target_norm: float, seed: int = 0):
    import torch

    torch.manual_seed(seed)
    return _adapter_class()(in_dim, lm_dim, k, hidden, target_norm)


@dataclass
class AdapterArtifact:
    """A trained adapter with its config (dims, LM id, encoder version, hyper-parameters) and metrics."""

    adapter: Any
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        return self.config.get("version") or self._digest()

    def _digest(self) -> str:
        h = hashlib.sha256()
        for name, tensor in sorted(self.adapter.state_dict().items()):
            h.update(name.encode())
            h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        h.update(json.dumps({k: v for k, v in self.config.items() if k != "version"}, sort_keys=True).encode())
        return "elm-" + h.hexdigest()[:12]

    def soft_tokens(self, embeddings: np.ndarray) -> torch.Tensor:
        """Return (n, k, lm_dim) soft tokens for (n, in_dim) embeddings (no gradient)."""
        import torch

        x = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        if x.ndim == 1:
            x = x[None]
        param = next(self.adapter.parameters())
        with torch.no_grad():
            return self.adapter(x.to(param.device)).detach()

    def save(self, directory: str | Path) -> Path:
        """Write ``adapter.safetensors``, ``config.json`` and ``metrics.json`` into ``directory``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.config["version"] = self._digest()
        state = {k: v.detach().cpu().contiguous() for k, v in self.adapter.state_dict().items()}
        save_file(state, directory / "adapter.safetensors", metadata={"version": self.config["version"]})
        (directory / "config.json").write_text(json.dumps(self.config, indent=2, sort_keys=True))
        (directory / "metrics.json").write_text(json.dumps(self.metrics, indent=2, sort_keys=True))
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, device: str | None = None) -> AdapterArtifact:
        from safetensors.torch import load_file

        directory = Path(directory)
        config = json.loads((directory / "config.json").read_text())
        if config.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"adapter format {config.get('format_version')} is not {FORMAT_VERSION}")
        metrics_path = directory / "metrics.json"
        metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
        adapter = _adapter_class()(
            config["in_dim"], config["lm_dim"], config["k"], config["hidden"], config["target_norm"]
        )
        adapter.load_state_dict(load_file(directory / "adapter.safetensors"))
        adapter.eval()
        if device:
            adapter.to(device)
        return cls(adapter=adapter, config=config, metrics=metrics)


def save_artifact(artifact: AdapterArtifact, root: str | Path) -> Path:
    """Save under ``root/<version>/`` and point ``root/CURRENT`` at it (atomic rename)."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    tmp = root / f".tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    artifact.save(tmp)
    target = root / artifact.version
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    pointer = root / f".CURRENT-{os.getpid()}"
    pointer.write_text(artifact.version + "\n")
    pointer.replace(root / "CURRENT")
    return target


def load_current(root: str | Path, *, device: str | None = None) -> AdapterArtifact:
    root = Path(root)
    current = root / "CURRENT"
    if not current.exists():
        raise FileNotFoundError(f"no trained ELM adapter under {root} (CURRENT is missing)")
    return AdapterArtifact.load(root / current.read_text().strip(), device=device)


def adapter_root() -> Path:
    from django.conf import settings

    configured = getattr(settings, "ELM_ADAPTER_DIR", None)
    return Path(configured) if configured else Path(settings.VAR_DIR) / "models" / "elm-adapter"


@cache
def get_adapter() -> AdapterArtifact:
    """Return the current adapter artifact (``settings.ELM_ADAPTER_DIR``), loaded once per process."""
    from explanations.ml.lm import lm_id
    from recommendations.ml.device import get_device

    artifact = load_current(adapter_root(), device=get_device())
    if artifact.config.get("lm_id") != lm_id():
        logger.warning(
            "ELM adapter %s was trained for LM %s but ELM_LM is %s: its soft tokens may mean nothing",
            artifact.version,
            artifact.config.get("lm_id"),
            lm_id(),
        )
    return artifact


def encoder_version_or_unknown() -> str:
    from recommendations.ml.encoder import encoder_version

    try:
        return encoder_version()
    except Exception:  # no encoder configured (e.g. adapters trained on synthetic vectors)
        logger.warning("encoder version unavailable", exc_info=True)
        return "unknown"
