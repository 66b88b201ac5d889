"""Generalize countries into regions so that every published region holds at least k customers."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

OTHER = "Other / unspecified"

# Wider region for each country name used by the source data (and common spellings of them).
WIDER_REGION = {
    "United Kingdom": "British Isles",
    "EIRE": "British Isles",
    "Ireland": "British Isles",
    "Channel Islands": "British Isles",
    "Germany": "Western Europe",
    "France": "Western Europe",
    "Belgium": "Western Europe",
    "Netherlands": "Western Europe",
    "Switzerland": "Western Europe",
    "Austria": "Western Europe",
    "Luxembourg": "Western Europe",
    "Spain": "Southern Europe",
    "Portugal": "Southern Europe",
    "Italy": "Southern Europe",
    "Greece": "Southern Europe",
    "Cyprus": "Southern Europe",
    "Malta": "Southern Europe",
    "Finland": "Northern Europe",
    "Norway": "Northern Europe",
    "Denmark": "Northern Europe",
    "Sweden": "Northern Europe",
    "Iceland": "Northern Europe",
    "Lithuania": "Central & Eastern Europe",
    "Poland": "Central & Eastern Europe",
    "Czech Republic": "Central & Eastern Europe",
    "European Community": "Western Europe",
    "Israel": "Middle East & Africa",
    "United Arab Emirates": "Middle East & Africa",
    "Bahrain": "Middle East & Africa",
    "Lebanon": "Middle East & Africa",
    "Saudi Arabia": "Middle East & Africa",
    "RSA": "Middle East & Africa",
    "Nigeria": "Middle East & Africa",
    "Australia": "Asia-Pacific",
    "Japan": "Asia-Pacific",
    "Singapore": "Asia-Pacific",
    "Hong Kong": "Asia-Pacific",
    "USA": "Americas",
    "Canada": "Americas",
    "Brazil": "Americas",
    "Unspecified": OTHER,
}


@dataclass(frozen=True)
class Generalization:
    region_of: dict[str, str]
    sizes: dict[str, int]
    k: int  # the smallest group actually published

    @property
    def achieved_k(self) -> int:
        return self.k


def generalize(customers_per_country: dict[str, int], *, k: int) -> Generalization:
    """Map each country to itself, its wider region, or OTHER, so that each group has >= k customers."""
    region_of: dict[str, str] = {}
    for country, n in customers_per_country.items():
        region_of[country] = (
            country
            if n >= k and country in WIDER_REGION and WIDER_REGION[country] != OTHER
            else (WIDER_REGION.get(country, OTHER))
        )
    sizes = _sizes(customers_per_country, region_of)
    # Wider regions that are still too small fall back to OTHER.
    for country, region in region_of.items():
        if region != country and sizes[region] < k:
            region_of[country] = OTHER
    sizes = _sizes(customers_per_country, region_of)
    # If OTHER itself is too small, fold it into the smallest group that is not a single country.
    if 0 < sizes.get(OTHER, 0) < k and len(sizes) > 1:
        candidates = [r for r in sizes if r != OTHER and r not in customers_per_country] or [
            r for r in sizes if r != OTHER
        ]
        target = min(candidates, key=lambda r: sizes[r])
        for country, region in region_of.items():
            if region == OTHER:
                region_of[country] = target
        sizes = _sizes(customers_per_country, region_of)
    return Generalization(region_of=region_of, sizes=sizes, k=min(sizes.values()) if sizes else 0)


def _sizes(counts: dict[str, int], region_of: dict[str, str]) -> dict[str, int]:
    sizes: Counter[str] = Counter()
    for country, n in counts.items():
        sizes[region_of[country]] += n
    return dict(sizes)
