"""Pick the torch device inside the worker: CUDA when present, else CPU."""

from __future__ import annotations

from functools import cache


@cache
def get_device() -> str:
    from django.conf import settings

    choice = getattr(settings, "ELM_DEVICE", "auto")
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
