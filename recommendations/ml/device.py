"""Pick the torch device inside the worker: CUDA when present, else CPU."""

from __future__ import annotations

from functools import cache


def configure_threads() -> None:
    """Apply ``settings.ELM_TORCH_THREADS`` (0/unset = torch's default) to this worker process.

    On a small shared CPU, 1 thread is much faster than 2 when other processes compete for the cores:
    OpenMP threads spin-wait on each other and small matmuls become several times slower.
    """
    import torch
    from django.conf import settings

    threads = int(getattr(settings, "ELM_TORCH_THREADS", 0) or 0)
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


@cache
def get_device() -> str:
    from django.conf import settings

    configure_threads()
    choice = getattr(settings, "ELM_DEVICE", "auto")
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
