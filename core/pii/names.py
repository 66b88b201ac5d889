"""Person names in name-like context, from a name list exported from the ``names-dataset`` package.

``scripts/export_names.py`` wrote ``data/first_names.txt`` and ``data/surnames.txt`` once; a name is
reported only in a name-like context ("First Last", a title, or a cue before a first name), never for a
lone capitalized word, because this catalogue is full of words that are also names.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "data"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Names that are also product words in this catalogue ("ROSE", "HOLLY", "IVY" ...), colours,
# or common English words ("May", "Will", "Grant", "Frost"). They stay names, but only count
# next to an unambiguous one: "Rose Smith" and "John White" are people, "Holly Rose" and
# "White Heart" are not. JACK is here because of the many UNION JACK products: "Jack Smith"
# is still found, "Union Jack" never was (Union is no first name).
AMBIGUOUS_NAMES = _words(
    """
    amber angel angels ant apple april art august autumn baby baker ball bay bee bell belle berry
    bill bird black bloom blossom bone bonnie brook brown bull bunny butter candy carol carry carton
    cash cat charity cherry childs clay coco cook coral corona cotton cross crystal czech daisy dawn day
    deco diamond dot dove dusty easter edge ember england english ever faith fan fawn fee fern field
    fields flora flower flowers forest fox france french frost garland gift ginger glass gold golden
    grace grant green grey hall happy hare harmony hazel heart heather hill holder holly honey hood
    hook hope hopper house hunt iris ivory ivy jack jade jasmine jewel jolly joy june july key king
    kit kitchen kitty kraft lace lavender lily london lucky mark mat may meadow merry mint misty moon
    nova olive paris park peach pearl pebble peg penny pepper petal petit pink ping plant poppy
    precious pretty prince princess queen rain rainbow raven red robin roman rose rosemary ruby rusty
    sage salt sand scarlet shell shine silver sky snow song sow spring stack star steel stone storm
    strand street summer sunny sunshine swords tin tiny tone urban valentine velvet villa violet wall
    white will willow winter wise wood wren
    """
)
# Words before a lone first name that say a person follows ("ask Sarah", "Dear John").
_CUES = _words(
    """
    dear hi hello hey thanks thank attn cc contact ask asked call called ring rang email emailed
    e-mail tell told buyer buyers manager owner director colleague assistant customer client
    contact: attn: signed regards cheers
    """
)
# A cue of two words: "speak to Sarah", "spoke with Tom".
_CUE_VERBS = _words("speak spoke talk talked chat chatted meet met reach write wrote send sent forward")
_TITLES = _words(
    "mr mrs ms miss mx dr prof sir dame lady lord mister madam madame mme mlle herr frau sr sra señor señora "
    "signor signora sig"
)
_PARTICLES = _words("van von der den de del della la le du da di dos das ter ten al el bin")
_TOKEN_RE = re.compile(r"[^\W\d_]+(?:['’\-][^\W\d_]+)*\.?")


@cache
def name_lists() -> tuple[frozenset[str], frozenset[str]]:
    """Return the (first names, surnames) exported by scripts/export_names.py, lower-cased."""

    def read(name: str) -> frozenset[str]:
        lines = (DATA_DIR / name).read_text(encoding="utf-8").splitlines()
        return frozenset(line for line in lines if line and not line.startswith("#"))

    return read("first_names.txt"), read("surnames.txt")


@cache
def _any_name() -> frozenset[str]:
    first, last = name_lists()
    return first | last


def _is_title_case(word: str) -> bool:
    # "Smith", "McDonald", "O'Brien", "Jean-Luc": upper first letter and some lower-case letters.
    return word[:1].isupper() and any(ch.islower() for ch in word)


def _is_upper(word: str) -> bool:
    return len(word) > 1 and word.isupper()


def _parts(word: str) -> list[str]:
    return [p for p in re.split(r"[-’']", word.lower()) if p]


def _in_list(word: str, names: frozenset[str]) -> bool:
    """Return True if the word (or each part of a hyphenated word, or O'/Mc stems) is a listed name."""
    low = word.lower().replace("’", "'")
    if low in names:
        return True
    parts = _parts(word)
    if len(parts) > 1 and parts[0] in {"o", "d"}:  # O'Brien, D'Angelo
        return parts[1] in names or len(parts[1]) > 2
    return len(parts) > 1 and all(p in names for p in parts)


def _ambiguous(word: str) -> bool:
    return word.lower() in AMBIGUOUS_NAMES


def find_person_names(text: str) -> list[tuple[int, int]]:
    """Return (start, end) spans of person names in name-like context."""
    first, last = name_lists()
    any_name = _any_name()
    tokens = [(m.start(), m.end(), m.group().rstrip(".")) for m in _TOKEN_RE.finditer(text)]
    spans: list[tuple[int, int]] = []

    def gap(i: int) -> str:
        return text[tokens[i][1] : tokens[i + 1][0]]

    def joined(i: int) -> bool:
        # Two tokens belong to one name only if separated by plain spaces (or an initial's dot).
        return i + 1 < len(tokens) and re.fullmatch(r"\.? {1,2}", gap(i)) is not None

    def extend_surnames(j: int) -> int:
        # Take more surname parts: "Smith Jones", "van der Berg", "de la Cruz".
        while joined(j):
            nxt = tokens[j + 1][2]
            if nxt.lower() in _PARTICLES and joined(j + 1) and _is_title_case(tokens[j + 2][2]):
                j += 2
            elif _is_title_case(nxt) and _in_list(nxt, last) and not _ambiguous(nxt):
                j += 1
            else:
                break
        return j

    i = 0
    while i < len(tokens):
        start, _, word = tokens[i]
        low = word.lower()
        taken = None
        # Rule 1: a title and a capitalized word ("Mrs Patel", "Dr. Anna Weber", "MR SMITH").
        if low in _TITLES and (_is_title_case(word) or _is_upper(word)) and joined(i):
            j = i + 1
            nxt = tokens[j][2]
            # "Mrs Okafor" is a name even if not listed, but "Mr Robot Soft Toy" is a product.
            listed = (_in_list(nxt, last) or _in_list(nxt, first)) and not _ambiguous(nxt)
            more = joined(j) and _is_title_case(tokens[j + 1][2])
            if _is_title_case(nxt) and nxt.lower() not in _TITLES and (listed or not more):
                while joined(j) and (
                    (_is_title_case(tokens[j + 1][2]) and _in_list(tokens[j + 1][2], any_name))
                    or tokens[j + 1][2].lower() in _PARTICLES
                ):
                    j += 1
                while tokens[j][2].lower() in _PARTICLES:  # never end on "van"
                    j -= 1
                taken = (start, j)
            elif _is_upper(nxt) and (_in_list(nxt, last) or _in_list(nxt, first)) and not _ambiguous(nxt):
                taken = (start, j)
        # Rule 2: a first name and a surname ("Sarah Mitchell"), at most one of them ambiguous.
        if taken is None and _is_title_case(word) and _in_list(word, first) and joined(i):
            j = i + 1
            middle_initial = re.fullmatch(r"[A-Z]", tokens[j][2]) is not None
            if middle_initial and joined(j):
                j += 1
            if tokens[j][2].lower() in _PARTICLES:
                k = j
                while k < len(tokens) and tokens[k][2].lower() in _PARTICLES and joined(k):
                    k += 1
                if k < len(tokens) and _is_title_case(tokens[k][2]) and not _ambiguous(word):
                    taken = (start, extend_surnames(k))
            else:
                nxt = tokens[j][2]
                # The second word must be a surname ("Charlie Lola" is two first names, a product);
                # after an ambiguous first word ("Princess", "Rose") not a first name as well.
                if (
                    _is_title_case(nxt)
                    and _in_list(nxt, last)
                    and not (_ambiguous(word) and (_ambiguous(nxt) or _in_list(nxt, first)))
                    and nxt.lower() not in _TITLES
                    # "Bertie Glass Bead Charm": a product word as surname must end the name.
                    and not (_ambiguous(nxt) and joined(j) and _is_title_case(tokens[j + 1][2]))
                ):
                    taken = (start, extend_surnames(j))
        # Rule 3: a cue and an unambiguous first name ("ask Sarah", "Dear John,").
        if taken is None and _is_title_case(word) and _in_list(word, first) and not _ambiguous(word) and i > 0:
            prev = tokens[i - 1][2].lower()
            near = re.fullmatch(r"[ ,:]{1,3}", text[tokens[i - 1][1] : start]) is not None
            two = i > 1 and prev in {"to", "with"} and tokens[i - 2][2].lower() in _CUE_VERBS
            if near and (prev in _CUES or two):
                taken = (start, i)
        if taken is not None:
            s, j = taken
            spans.append((s, tokens[j][0] + len(tokens[j][2])))
            i = j + 1
        else:
            i += 1
    return spans
