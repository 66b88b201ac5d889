"""Training presets of the ELM adapter: how much of what a machine can afford (``quick``, ``cpu``, ``gpu``)."""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class TrainSettings:
    """Hyper-parameters of one staged training run (``PRESETS`` holds the named ones)."""

    soft_tokens: int = 4
    hidden: int = 512
    batch_size: int = 8
    lr: float = 5e-3
    weight_decay: float = 0.0
    warm_start_epochs: int = 12  # stage 0: soft tokens regressed onto content-token embeddings (no LM pass)
    product_epochs: int = 1
    epochs: int = 2
    time_budget_s: float = 270.0  # wall-clock for all stages together (validation not counted)
    warm_start_share: float = 0.15  # at most this part of the budget for stage 0
    product_share: float = 0.0  # part of the budget for stage 1 (products through the LM)
    max_products: int | None = 1200  # product pairs used in stage 1 (None = all)
    target_sentences: int | None = 1  # train on the profile's first n sentences (None = all of it)
    max_target_tokens: int = 24
    seed: int = 0


PRESETS: dict[str, TrainSettings] = {
    # Finishes in ~5 min on a 2-core CPU. A step through the LM costs 0.3-1 s per example there, so the
    # LM-free warm start stands in for the product stage, and customer targets are cut to the start of the
    # profile's first sentence: its product content, which is all a mean of product vectors can encode.
    "cpu": TrainSettings(),
    # The demo's first adapter, trained before the site serves (~1.5 min here): the LM-free warm start
    # plus a short customer stage. The background job then trains the "cpu" preset to replace it.
    "quick": TrainSettings(time_budget_s=75.0, warm_start_share=0.4, epochs=1),
    # A GPU worker: the product stage through the LM, whole paragraphs, more soft tokens, many epochs.
    "gpu": TrainSettings(
        soft_tokens=8,
        hidden=2048,
        batch_size=32,
        lr=1e-3,
        weight_decay=0.01,
        warm_start_epochs=20,
        product_epochs=4,
        epochs=30,
        time_budget_s=3600.0,
        warm_start_share=0.05,
        product_share=0.25,
        max_products=None,
        target_sentences=None,
        max_target_tokens=128,
    ),
}


def with_settings(preset: str | TrainSettings = "cpu", **overrides) -> TrainSettings:
    """A preset with some fields replaced (e.g. ``with_settings("cpu", time_budget_s=60)``)."""
    return replace(PRESETS[preset] if isinstance(preset, str) else preset, **overrides)
