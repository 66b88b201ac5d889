"""The pipeline, named once: the job kinds of the data path and the order they run in.

Names only: the apps above register the kinds (``*/job_kinds.py``), and the jobs app must not import
them. Every chain the site starts (the demo, beat's nightly refresh, the jobs page, the commands) is a
selection from ``STEPS`` made with :func:`steps`, which puts the names back in ``STEPS`` order. So the order
lives here only: to split or add a step, change ``STEPS`` (and the selections that should include it).
"""

from __future__ import annotations

# Every job step of the data path, in the order a chain runs them (import → embed → recommend → explain;
# review, showing and outcomes are people's work on the site, not jobs).
STEPS: tuple[str, ...] = (
    "import",
    "embed_products",
    "embed_customers",
    "recommend",
    "train_concepts",
    "calibrate",
    "explain_numbers",
    "train_elm",
    "explain",
    "describe_customers",
    "replay",
    "segments",
)


def steps(*kinds: str) -> tuple[str, ...]:
    """Return ``kinds`` in pipeline order; a name that is not a step raises ValueError naming it."""
    unknown = [k for k in kinds if k not in STEPS]
    if unknown:
        raise ValueError(f"Not a pipeline step: {', '.join(unknown)}; the steps are {', '.join(STEPS)}")
    return tuple(k for k in STEPS if k in kinds)


# Vectors: products first (the customer vectors are weighted means of them).
EMBED = steps("embed_products", "embed_customers")
# What ``explain`` needs fitted before it runs (each step reuses its last result while vectors are unchanged).
EXPLAIN = steps("train_concepts", "calibrate", "explain_numbers", "explain")
# Beat's nightly refresh (jobs.tasks.nightly_refresh): new vectors, a new batch, the numbers of every line,
# then reasons for new lines.
NIGHTLY = steps(*EMBED, "recommend", "explain_numbers", "explain")
# The demo before it serves: everything from vectors to every recommendation's numbers and the first reasons.
DEMO = steps(*EMBED, "recommend", "train_concepts", "calibrate", "explain_numbers", "train_elm", "explain")
# The demo in the background while the site serves: the fuller adapter, then the rest explained and described.
DEMO_BACKGROUND = steps("train_elm", "explain", "describe_customers")
# The manager dashboard's replay of a past cutoff, then the customer segments.
ANALYSIS = steps("replay", "segments")
