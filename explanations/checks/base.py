"""Types shared by the text checks: the Flag every check returns (``core.flags``) and the Evidence a reason rests on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from core.flags import ERROR, SEVERITIES, WARNING, Flag

__all__ = ["ERROR", "SEVERITIES", "WARNING", "Evidence", "Flag"]


def _as_tuple(values: Iterable[str] | str | None) -> tuple[str, ...]:
    if values is None:
        return ()
    if isinstance(values, str):
        return (values,)
    return tuple(v for v in values if v)


@dataclass(frozen=True)
class Evidence:
    """What a reason may talk about: the recommended product and the evidence behind it.

    ``vocabulary`` is the catalogue's product vocabulary (see ``entities.build_vocabulary``): the
    words that name products, materials and categories. A vocabulary word in a reason that does
    not occur in any of the other fields is an unsupported (hallucinated) entity. ``extra`` holds
    any other supporting text (for example quantities or prices the reason may quote).
    """

    recommended: str = ""
    evidence_products: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    highlighted_words: tuple[str, ...] = ()
    extra: tuple[str, ...] = ()
    vocabulary: frozenset[str] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        # Accept lists (or a lone string) from callers while keeping the object hashable.
        for name in ("evidence_products", "concepts", "highlighted_words", "extra"):
            object.__setattr__(self, name, _as_tuple(getattr(self, name)))
        if not isinstance(self.vocabulary, frozenset):
            object.__setattr__(self, "vocabulary", frozenset(self.vocabulary))

    def texts(self) -> tuple[str, ...]:
        """Return every supporting text, the recommended product first."""
        return (self.recommended, *self.evidence_products, *self.concepts, *self.highlighted_words, *self.extra)
