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


WIDER_REGIONS = frozenset(WIDER_REGION.values()) - {OTHER}


def generalize(customers_per_country: dict[str, int], *, k: int) -> Generalization:
    """Map each known location to a region holding >= k customers that contains it: itself, wider, or OTHER.

    Keys are what is known of a customer's location: a country, or a wider region (or OTHER) for a
    customer whose country was never stored. The published region is always true of the customer: a
    country with >= k customers stays itself; a smaller one goes up to its wider region; a wider region
    with < k goes up to OTHER ("Other / unspecified", true of anyone); if OTHER itself is too small, the
    smallest other groups join it until it is not. A country outside WIDER_REGION always goes to OTHER.
    """
    region_of: dict[str, str] = {}
    for label, n in customers_per_country.items():
        a_group = label in WIDER_REGIONS or label == OTHER
        a_large_country = WIDER_REGION.get(label, OTHER) != OTHER and n >= k
        region_of[label] = label if a_group or a_large_country else WIDER_REGION.get(label, OTHER)
    sizes = _sizes(customers_per_country, region_of)
    for label, region in region_of.items():
        if region in WIDER_REGIONS and sizes[region] < k:
            region_of[label] = OTHER
    sizes = _sizes(customers_per_country, region_of)
    # OTHER too small: the smallest other groups (countries or wider regions) join it, never the reverse,
    # because naming a group for customers outside it would publish a wrong location.
    while 0 < sizes.get(OTHER, 0) < k and len(sizes) > 1:
        smallest = min((r for r in sizes if r != OTHER), key=lambda r: (sizes[r], r))
        for label, region in region_of.items():
            if region == smallest:
                region_of[label] = OTHER
        sizes = _sizes(customers_per_country, region_of)
    return Generalization(region_of=region_of, sizes=sizes, k=min(sizes.values()) if sizes else 0)


def _sizes(counts: dict[str, int], region_of: dict[str, str]) -> dict[str, int]:
    sizes: Counter[str] = Counter()
    for country, n in counts.items():
        sizes[region_of[country]] += n
    return dict(sizes)
