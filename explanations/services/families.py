"""Concise evidence: a recommendation's per-purchase shares grouped into at most five lines a person reads.

A heavy buyer's score is spread over hundreds of purchases, each a fraction of a percent. Grouped into
product families it says something: the same design line (stock codes sharing their digits, "85123A" and
"85123B"), near-identical descriptions (equal once colours and sizes are left out), and then families of
close description vectors (average-linkage clusters within ``FAMILY_DISTANCE`` cosine distance), so the
"retrospot" range or "lanterns" become one line. The recommended product itself, when bought before, is
a line of its own ("bought it before"). Shown: the ``SHOWN`` largest groups, the rest in one line, and the
non-personal popularity term; the shares still sum to the score exactly.

Each group line also carries a co-purchase fact for its largest purchase X: the share of the customers
who bought X that also bought the recommended item ("bought by 62% of the customers who bought X").

Families and co-purchase counts are customer-independent: computed once per batch model (numpy/scipy).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from explanations.services.evidence_batch import EvidenceArrays

SHOWN = 3  # group lines; with the rest and the popularity term at most five lines
FAMILY_DISTANCE = 0.35  # cosine distance within which average-linkage clusters of descriptions merge
MIN_CO_BUYERS = 5  # a co-purchase rate over fewer buyers of X is not stated
# Words that make near-identical descriptions differ without changing what the product is.
VARIANT_WORDS = frozenset(
    [
        "red",
        "blue",
        "green",
        "pink",
        "white",
        "black",
        "ivory",
        "cream",
        "yellow",
        "purple",
        "orange",
        "gold",
        "silver",
        "grey",
        "gray",
        "brown",
        "natural",
        "pastel",
        "assorted",
        "colour",
        "colours",
        "colour",
        "small",
        "large",
        "medium",
        "mini",
        "jumbo",
        "big",
        "set",
        "of",
        "and",
        "the",
        "with",
        "in",
    ]
)
_STOP = VARIANT_WORDS | frozenset(["a", "an", "for", "to", "on"])


@dataclass
class Families:
    """Per model column: its family id and the family's name (its most common description word)."""

    family: np.ndarray  # n ints
    names: list[str]


def _variant_key(description: str) -> str:
    words = re.findall(r"[a-z]+", description.lower())
    return " ".join(w for w in words if w not in VARIANT_WORDS)


def product_families(codes: list[str], descriptions: list[str], vectors: np.ndarray) -> Families:
    """Return the family of every product: design line or variant first, then close description vectors."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.sparse.csgraph import connected_components

    n = len(codes)
    keys = [re.match(r"\d*", str(c)).group() or f"code:{c}" for c in codes]
    edges = []
    for labels in (keys, [_variant_key(d) or f"desc:{i}" for i, d in enumerate(descriptions)]):
        _, inverse = np.unique(np.array(labels, dtype=object).astype(str), return_inverse=True)
        first = {}
        for col, label in enumerate(inverse.tolist()):
            edges.append((first.setdefault(label, col), col))
    a, b = np.array(edges).T if edges else (np.zeros(0, int), np.zeros(0, int))
    graph = sp.csr_matrix((np.ones(len(a)), (a, b)), shape=(n, n))
    _, base = connected_components(graph, directed=False)
    n_base = int(base.max()) + 1 if n else 0
    centroids = np.zeros((n_base, vectors.shape[1]))
    np.add.at(centroids, base, vectors)
    norms = np.linalg.norm(centroids, axis=1)
    family = base.copy()
    usable = np.flatnonzero(norms > 0)
    if len(usable) > 1:
        clusters = fcluster(linkage(centroids[usable], method="average", metric="cosine"), FAMILY_DISTANCE, "distance")
        merged = np.arange(n_base)
        merged[usable] = n_base + clusters  # clustered families get new ids after the base ones
        family = np.unique(merged[base], return_inverse=True)[1]
    names = []
    for f in range(int(family.max()) + 1 if n else 0):
        counts = Counter(
            w for col in np.flatnonzero(family == f) for w in set(re.findall(r"[a-z]+", descriptions[col].lower()))
        )
        common = [w for w, _ in counts.most_common() if w not in _STOP and len(w) > 2]
        names.append(common[0] if common else "")
    return Families(family, names)


def co_buyer_counts(buyers: sp.csr_matrix) -> sp.csr_matrix:
    """Return items x items counts of customers who bought both (the diagonal: buyers of each item)."""
    binary = (buyers > 0).astype(np.int32)
    return (binary.T @ binary).tocsr()


@dataclass
class Groups:
    """One row per shown group line, plus the per-recommendation rest and coverage."""

    rec: np.ndarray  # line -> recommendation index
    kind: np.ndarray  # "self" (bought the item before), "family" or "purchase" (a family of one)
    family: np.ndarray  # line -> family id (-1 for "self")
    top_col: np.ndarray  # line -> the group's largest purchase (column)
    count: np.ndarray  # purchases in the group
    share: np.ndarray
    co_rate: np.ndarray  # share of the buyers of top_col who bought the item (nan: not stated)
    co_buyers: np.ndarray  # buyers of top_col
    rest_share: np.ndarray  # R
    rest_count: np.ndarray  # R
    personal: np.ndarray  # R: score - base
    coverage: np.ndarray  # R: top-SHOWN lines / personal (nan where the personal part is not positive)


def group_evidence(
    evidence: EvidenceArrays, target: np.ndarray, families: Families, co_counts: sp.csr_matrix, *, shown: int = SHOWN
) -> Groups:
    """Group every recommendation's purchase shares by family and keep the ``shown`` largest (numpy only)."""
    n_recs = len(target)
    n_fam = len(families.names) + 1
    fam = np.where(evidence.col == target[evidence.rec], n_fam - 1, families.family[evidence.col])
    key = evidence.rec.astype(np.int64) * n_fam + fam
    uniq, first, inverse, count = np.unique(key, return_index=True, return_inverse=True, return_counts=True)
    share = np.bincount(inverse, weights=evidence.share, minlength=len(uniq))
    grec, gfam = uniq // n_fam, uniq % n_fam
    order = np.lexsort((gfam, -share, grec))
    grec, gfam, share, count, top = grec[order], gfam[order], share[order], count[order], evidence.col[first[order]]
    starts = np.searchsorted(grec, np.arange(n_recs + 1))
    keep = np.arange(len(grec)) - starts[grec] < shown
    grec, gfam, share, count, top = grec[keep], gfam[keep], share[keep], count[keep], top[keep]
    items = target[grec]
    both = np.asarray(co_counts[top, items]).ravel().astype(np.float64) if len(top) else np.zeros(0)
    buyers = np.asarray(co_counts[top, top]).ravel().astype(np.float64) if len(top) else np.zeros(0)
    stated = (buyers >= MIN_CO_BUYERS) & (top != items)
    co_rate = np.where(stated, both / np.maximum(buyers, 1), np.nan)
    personal = evidence.score - evidence.base
    shown_share = np.bincount(grec, weights=share, minlength=n_recs)
    shown_count = np.bincount(grec, weights=count, minlength=n_recs).astype(np.int64)
    kind = np.where(gfam == n_fam - 1, "self", np.where(count > 1, "family", "purchase"))
    coverage = np.divide(shown_share, personal, out=np.full(n_recs, np.nan), where=personal > 0)
    return Groups(
        rec=grec,
        kind=kind,
        family=np.where(gfam == n_fam - 1, -1, gfam),
        top_col=top,
        count=count,
        share=share,
        co_rate=co_rate,
        co_buyers=buyers,
        rest_share=personal - shown_share,
        rest_count=np.diff(evidence.start) - shown_count,
        personal=personal,
        coverage=coverage,
    )
