"""Hallucinated entities: product words and numbers in a reason that the evidence does not support.

A reason may only name products, materials and categories that occur in its evidence (the
recommended product's description, the evidence products' descriptions, the shared concept names
and the highlighted words). The catalogue's product vocabulary (``build_vocabulary``: words such
as LANTERN, BAUBLE, MUG) says which words of a reason are product-like; any of them that is not
in the evidence is flagged ``hallucinated_entity``, and so is any number, price or percentage that
the evidence does not contain (``hallucinated_entity:number``).

Words are compared after a light lemmatization: lower case, possessive "'s" dropped, and plural
endings -s / -es / -ies tried, so BOXES matches BOX, DOILIES matches DOILY and CANDLES matches CANDLE.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache
from itertools import pairwise

from explanations.checks.base import WARNING, Evidence, Flag

_WORD_RE = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)?")
_NUMBER_RE = re.compile(r"(?<![\w.,])[£$€]?\s?\d+(?:[.,]\d+)*(?:\s?%|\s?p\b|\s?(?:pence|percent|per\s?cent)\b)?")

# Words of the product descriptions that are not product-like claims: function words, sizes and
# quantities, and words a reason uses about buying patterns. They never count as entities.
GENERIC_WORDS = frozenset(
    """
    a about after all also an and any are as at be been best big both but by can classic collection colour
    colours color colors design designs different each easy even every for from fun good great happy have
    her his home hot how if in into is it item items its just large less like little lot lots love lovely
    make many medium mini more most much my new next nice no not of off old on one only or other our out
    over own pack packs pair per piece pieces plus popular product products range same set sets size sizes
    small so some style styles sweet than that the their them then these they this those time to too top
    two three four five six ten twelve up us very way we well what when which who with you your
    account address adult aged asst asstd assorted back bad beautiful bright busy calm can't check cheerful
    choice class classical clean clear come country cute dark day days double down dream elegant family
    fashion fine finish first friends full funky funny giant heat hold holiday i'm jumbo keep kid kids
    lets life line list local long looking lost made making match matches memories memory mix mixed
    mixture modern money multi natural nature number open order pale pattern patterns perfect perfectly
    person personal please point possible present presents pretty print printed rest round run save
    season secret served setting shape shaped shapes shop shopper shopping show single start station
    stop stuff support take tall thank tiny touch town traditional travel treasure wake weekend welcome
    wish wishes word work world you're
    """.split()  # noqa: SIM905  (a word list reads better than a list literal)
)

_PRODUCT_ONLY = re.compile(r"[A-Z0-9\s\W]+")


def forms(word: str) -> frozenset[str]:
    """Return the comparison forms of a word: lower case, without possessive, with plural endings tried."""
    w = word.lower().replace("’", "'")
    if w.endswith("'s"):
        w = w[:-2]
    w = w.strip("'")
    out = {w}
    if len(w) > 3 and w.endswith("s") and not w.endswith("ss"):
        out.add(w[:-1])
        if w.endswith("es"):
            out.add(w[:-2])
        if w.endswith("ies"):
            out.add(w[:-3] + "y")
    return frozenset(out)


def build_vocabulary(descriptions: Iterable[str], *, uppercase_only: bool = True) -> frozenset[str]:
    """Return the product vocabulary of the catalogue: the words of its product descriptions.

    Product descriptions in this catalogue are upper case; with ``uppercase_only`` the free-text
    notes of stock adjustments ("Found by jackie", "wrongly marked", "?lost") are skipped. Words of
    fewer than 3 letters and ``GENERIC_WORDS`` are left out. Build it once (it is a few thousand
    words) and pass it in ``Evidence.vocabulary``.
    """
    vocab: set[str] = set()
    for description in descriptions:
        if not description:
            continue
        if uppercase_only and not _PRODUCT_ONLY.fullmatch(description):
            continue
        for word in _WORD_RE.findall(description):
            if len(word) >= 3:
                vocab.add(word.lower().replace("’", "'"))
    return frozenset(w for w in vocab if not (forms(w) & GENERIC_WORDS))


@lru_cache(maxsize=8)
def _vocabulary_forms(vocabulary: frozenset[str]) -> frozenset[str]:
    return frozenset(f for word in vocabulary for f in forms(word))


def _evidence_words(evidence: Evidence) -> frozenset[str]:
    words: set[str] = set()
    for text in evidence.texts():
        tokens = _WORD_RE.findall(text or "")
        for tok in tokens:
            words |= forms(tok)
        # "CAKESTAND" in the evidence supports "cake stand" in the reason, and the other way round.
        for a, b in pairwise(tokens):
            words |= forms(a + b)
    return frozenset(words)


def _number_key(raw: str) -> str | None:
    digits = re.sub(r"[£$€%\s]|pence|percent|per\s?cent|p$", "", raw.strip(), flags=re.IGNORECASE)
    if re.fullmatch(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?", digits):
        digits = digits.replace(",", "")
    digits = digits.replace(",", ".")
    try:
        value = float(digits)
    except ValueError:
        return None
    return f"{value:.6f}".rstrip("0").rstrip(".")


def _evidence_numbers(evidence: Evidence) -> frozenset[str]:
    keys = set()
    for text in evidence.texts():
        for m in _NUMBER_RE.finditer(text or ""):
            key = _number_key(m.group())
            if key is not None:
                keys.add(key)
    return frozenset(keys)


def find_hallucinated_entities(text: str, evidence: Evidence) -> list[Flag]:
    """Return flags for product words and numbers in ``text`` that ``evidence`` does not support."""
    flags: list[Flag] = []
    supported = _evidence_words(evidence)
    vocab = _vocabulary_forms(evidence.vocabulary) if evidence.vocabulary else frozenset()

    unsupported: list[tuple[int, int]] = []
    matches = list(_WORD_RE.finditer(text))
    for i, m in enumerate(matches):
        f = forms(m.group())
        if not (f & vocab) or (f & GENERIC_WORDS) or (f & supported):
            continue
        # "cake stand" is supported by "CAKESTAND": try the word joined with its neighbours.
        joined = [matches[j].group() for j in (i - 1, i + 1) if 0 <= j < len(matches)]
        if any(forms(m.group() + o) & supported or forms(o + m.group()) & supported for o in joined):
            continue
        unsupported.append((m.start(), m.end()))

    # One flag per run of adjacent unsupported words ("tea light holder"), for a readable highlight.
    runs: list[list[int]] = []
    for start, end in unsupported:
        if runs and re.fullmatch(r"[\s\-]+", text[runs[-1][1] : start]):
            runs[-1][1] = end
        else:
            runs.append([start, end])
    for start, end in runs:
        span = text[start:end]
        flags.append(
            Flag(
                "hallucinated_entity",
                f"“{span}” is not in the evidence for this recommendation.",
                start,
                end,
                span,
                WARNING,
            )
        )

    evidence_numbers = _evidence_numbers(evidence)
    for m in _NUMBER_RE.finditer(text):
        key = _number_key(m.group())
        if key is None or key in evidence_numbers:
            continue
        start = m.start() + (len(m.group()) - len(m.group().lstrip()))
        flags.append(
            Flag(
                "hallucinated_entity:number",
                f"The number “{m.group().strip()}” is not in the evidence.",
                start,
                m.end(),
                text[start : m.end()],
                WARNING,
            )
        )
    flags.sort(key=lambda fl: (fl.start, fl.end))
    return flags
