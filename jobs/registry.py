"""Registry of job kinds. Each kind plans shards, runs one shard (idempotently) and finalizes.

Kinds are registered by the apps that own the work (``recommendations.job_kinds``,
``explanations.job_kinds``). Registering imports no model code: heavy libraries are imported
inside the shard functions, which only workers call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Payload = dict[str, Any]


@dataclass(frozen=True)
class JobKind:
    name: str
    label: str
    plan: Callable[[Any], list[Payload]]
    run_shard: Callable[[Any, Payload], int]  # returns the number of items processed
    finalize: Callable[[Any], dict] = field(default=lambda job: {})
    # Called once when a shard has failed for good (after its retries), to mark its items failed.
    on_shard_failed: Callable[[Any, Payload, str], None] | None = None
    queue: str = "default"  # "gpu" for model work
    time_limit: int = 1800


_KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    _KINDS[kind.name] = kind
    return kind


def get(name: str) -> JobKind:
    _load()
    try:
        return _KINDS[name]
    except KeyError:
        raise KeyError(f"Unknown job kind {name!r}; known: {', '.join(sorted(_KINDS))}") from None


def all_kinds() -> dict[str, JobKind]:
    _load()
    return dict(_KINDS)


def _load() -> None:
    from django.apps import apps
    from django.utils.module_loading import autodiscover_modules

    if apps.ready:
        autodiscover_modules("job_kinds")


def shard(items: list, size: int) -> list[list]:
    """Split ``items`` into consecutive chunks of at most ``size``."""
    return [items[i : i + size] for i in range(0, len(items), size)]


def reuse(job, **result) -> list[Payload]:
    """Plan no shard: record on ``job`` that an earlier result is reused (``reused`` plus ``result``)."""
    job.result = {**job.result, "reused": True, **result}
    job.save(update_fields=["result"])
    return []


def one_shard(job) -> list[Payload]:
    """Plan the whole job as one shard (a fit or a run that does not split)."""
    return [{"size": 1}]
