"""The finding every text check returns (PII, policy, hallucination): one definition for all of them."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# A flag's severity tells the reviewer page how to treat it.
ERROR = "error"  # must be fixed before the text is shown to a sales user (PII, sensitive attributes, empty)
WARNING = "warning"  # a reviewer should look (risky claims, unsupported entities, too long)
SEVERITIES = (ERROR, WARNING)


@dataclass(frozen=True, slots=True)
class Flag:
    """One finding in a checked text; ``start``/``end`` are offsets into that text (``text[start:end]``)."""

    code: str
    message: str
    start: int
    end: int
    text: str
    severity: str

    def as_dict(self) -> dict:
        """Return a JSON-serializable dict (for a JSONField or an API response)."""
        return asdict(self)
