"""ELM adapter: turn a 384-d embedding (customer or product vector) into words with a frozen LM.

Method (after Tennenholtz et al., "Demystifying Embedding Spaces using Large Language Models", ICLR 2024):
a small MLP maps the embedding to soft tokens that replace :data:`~explanations.ml.lm.SOFT_PLACEHOLDER` in a
chat prompt; the LM stays frozen and only the adapter is trained. The package's modules, in the order of use:

* :mod:`.prompts` the chat prompts of each task; :mod:`.presets` how much training a machine affords;
* :mod:`.adapter` the MLP and its versioned artifact (``get_adapter`` loads the current one);
* :mod:`.training` the teacher-forced loss through the LM; :mod:`.staged` warm start, products, customers;
* :mod:`.decoding` vector -> text (greedy, grounded, or encoder-guided among sampled candidates);
* :mod:`.metrics` whether a text is about its vector (semantic consistency, retrieval, swap test).

Torch and transformers are imported inside functions only (web processes never load them).
"""

from explanations.ml.elm.adapter import (
    FORMAT_VERSION,
    AdapterArtifact,
    adapter_root,
    get_adapter,
    load_current,
    new_adapter,
    save_artifact,
)
from explanations.ml.elm.decoding import centroid, decode, decode_centroid, interpolate, interpolation_points
from explanations.ml.elm.metrics import semantic_consistency
from explanations.ml.elm.presets import PRESETS, TrainSettings, with_settings
from explanations.ml.elm.prompts import GROUNDED_INSTRUCTIONS, SYSTEM_PROMPT, TASKS, task_messages
from explanations.ml.elm.staged import train_elm, warm_start, warm_start_targets
from explanations.ml.elm.training import Trainer, train_adapter

__all__ = [
    "FORMAT_VERSION",
    "GROUNDED_INSTRUCTIONS",
    "PRESETS",
    "SYSTEM_PROMPT",
    "TASKS",
    "AdapterArtifact",
    "TrainSettings",
    "Trainer",
    "adapter_root",
    "centroid",
    "decode",
    "decode_centroid",
    "get_adapter",
    "interpolate",
    "interpolation_points",
    "load_current",
    "new_adapter",
    "save_artifact",
    "semantic_consistency",
    "task_messages",
    "train_adapter",
    "train_elm",
    "warm_start",
    "warm_start_targets",
    "with_settings",
]
