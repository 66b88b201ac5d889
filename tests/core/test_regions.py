"""core.regions.generalize: every published region holds >= k customers and is true of each of them."""

from __future__ import annotations

import pytest

from core.regions import OTHER, WIDER_REGION, generalize


def _true_of(label: str, region: str) -> bool:
    return region in (label, OTHER, WIDER_REGION.get(label))


@pytest.mark.parametrize(
    "counts",
    [
        # the incremental import: new Danish, Spanish and Channel Islands customers, only countries stored
        {"United Kingdom": 50, "France": 6, "Denmark": 1, "Spain": 1, "Channel Islands": 1},
        # customers known only by the wider region stored earlier, next to new countries
        {"United Kingdom": 50, "France": 8, "Western Europe": 3, "Northern Europe": 5, "Denmark": 1, "Brazil": 2},
        # too few customers for any group: everyone is OTHER
        {"Denmark": 1, "Spain": 2},
        {"Atlantis": 7, "Germany": 9},  # a country outside the list is never published
    ],
)
def test_regions_are_k_anonymous_and_never_wrong(counts):
    """Map each known location to itself, its wider region or OTHER; OTHER grows, never a named group."""
    g = generalize(counts, k=5)
    assert all(_true_of(label, g.region_of[label]) for label in counts)
    total = sum(counts.values())
    assert g.k == (min(g.sizes.values()) if total >= 5 else total)
    assert total < 5 or g.k >= 5
    assert "Atlantis" not in g.sizes
