"""The ELM's chat prompts: a system message, one instruction per task, the soft-token placeholder.

The instruction precedes the soft tokens so that the whole text before them is a fixed prefix, whose attention
cache training computes once per run.
"""

from __future__ import annotations

from explanations.ml.lm import SOFT_PLACEHOLDER

SYSTEM_PROMPT = "You describe customers of a gift wholesaler."
TASKS = {
    # task -> (instruction, label of the vector). The instruction precedes the soft tokens so that the
    # whole text before them is a fixed prefix (its attention cache is computed once per training run).
    "customer": ("Describe this customer's buying behaviour in one or two sentences.", "Customer profile vector"),
    "product": ("Describe this product in one short sentence.", "Product vector"),
}
# With evidence, the instruction asks for the facts to be used: measured on 16 held-out customers, SC of
# grounded texts rose from 0.33 (plain instruction) to 0.41 with it.
GROUNDED_INSTRUCTIONS = {
    "customer": "Using only these facts, describe this customer's buying behaviour in one or two sentences, "
    "naming the products they buy.",
    "product": "Using only these facts, describe this product in one short sentence.",
}


def task_messages(task: str = "customer", evidence: str | None = None) -> list[dict[str, str]]:
    """The chat prompt of a task, with the soft-token placeholder (and optional evidence facts before it)."""
    instruction, label = TASKS[task]
    user = f"{instruction} {label}: {SOFT_PLACEHOLDER}."
    if evidence:
        # The facts go first so that the text right around the soft tokens is as in training.
        user = f"Known facts: {evidence}\n{GROUNDED_INSTRUCTIONS[task]} {label}: {SOFT_PLACEHOLDER}."
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]
