"""PII detection for reason texts: the detectors live in ``core.pii`` (the importer, lower down, uses them too)."""

from core.pii import (
    AMBIGUOUS_NAMES,
    ENTITY_TYPES,
    PII_CODES,
    find_person_names,
    find_pii,
    find_source_ids,
    find_street_addresses,
    get_analyzer,
    name_lists,
    scrub,
)

__all__ = [
    "AMBIGUOUS_NAMES",
    "ENTITY_TYPES",
    "PII_CODES",
    "find_person_names",
    "find_pii",
    "find_source_ids",
    "find_street_addresses",
    "get_analyzer",
    "name_lists",
    "scrub",
]
