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


# Common English words that the scraped name lists also hold. In lower or upper case a name has no
# capital to tell it from a word, so these never make a name there ("will sell", "GRAND CHASE").
COMMON_WORDS = _words(
    """
    about above after again all also and any are back bag bags band bank bar base bat bean bear beard bed
    been before best big bin bird bit blue boat bold bond book boot born both bottle bow bowl box boy
    brand bread brick bridge bright bring buck buy buyer call came can cane cap car card care case chase
    cheap chief child china chip clark clear coat cold come cook corner cost could count cover craft
    cup cut dale dark date deal dean dear deep does doll don door down drew each earl early east easy
    eight even every fair fall far farm fast few fine fish five flat fly ford fore four free fresh
    from full gay gem gene girl given glad good grand gray great hand hard has have head heart held
    her here high him his hold home hot how hull hunter ink iron its jean jeans jet just keen kind king
    knight lamb land lane large last late lead lee less light like line lines link little long look
    lord lot love low made main major man many march mart mason master may mill miller mine more most
    much must name near neat new next nice night north note now oak old only orange other our over
    own page pair pan paper party pass pat pen people per pick pie piece pine pipe place plain plate
    play plum poor pope post pot price print pure rack ray read rich ride right ring road rock roll
    room round row royal rush sale same say sea seal set shaw she shop short should show side sign
    silk simple sing small smart sole some south spice spot square stand start stay steel still
    stock strong such sue sun sweet table tall tan tea than that the their them then there these they
    this those tile time top tower town tree true turner two under union upon use very wall ward warm
    was water way weaver well were west what when where which while who why wide wild win wine
    wing with wolf word work would yard year yellow york you young your
    """
)
_ROMAJI_HONORIFICS = ("san", "sama", "sensei", "kun", "chan", "shi", "dono")


def _style(word: str) -> str | None:
    """Return "title", "upper" or "lower" for a word written in that case, else None."""
    if _is_title_case(word):
        return "title"
    if _is_upper(word):
        return "upper"
    if word.islower():
        return "lower"
    return None


def _plain_name(word: str, names: frozenset[str]) -> bool:
    """A listed name that is neither a product word nor a common English word (for caseless text)."""
    low = word.lower()
    return len(low) > 2 and _in_list(word, names) and low not in AMBIGUOUS_NAMES and low not in COMMON_WORDS


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

    def caseless_pair(i: int, style: str) -> int | None:
        """Rules 2 and 2b without a capital to go by: both words plain listed names in the same case."""
        if not joined(i):
            return None
        word, nxt = tokens[i][2], tokens[i + 1][2]
        if _style(nxt) != style:
            return None
        j = i + 1
        if tokens[j][2].lower() in _PARTICLES and joined(j) and _style(tokens[j + 1][2]) == style:
            # "pieter de vries", "PIETER DE VRIES": after a particle the surname need not be listed.
            j += 1
            nxt = tokens[j][2].lower()
            plain = len(nxt) > 2 and nxt not in COMMON_WORDS and nxt not in AMBIGUOUS_NAMES
            return j if _plain_name(word, first) and plain else None
        if _plain_name(word, first) and _plain_name(nxt, last):
            return j
        # Surname first, as Japanese (and Hungarian) names are written: "YAMAMOTO TAKASHI".
        if j == i + 1 and _plain_name(word, last) and not _in_list(word, first) and _plain_name(nxt, first):
            return j
        return None

    i = 0
    while i < len(tokens):
        start, _, word = tokens[i]
        low = word.lower()
        style = _style(word)
        taken = None
        # Rule 1: a title and a capitalized word ("Mrs Patel", "Dr. Anna Weber", "MR SMITH", "mr smith").
        if low in _TITLES and style and joined(i):
            j = i + 1
            nxt = tokens[j][2]
            # "Mrs Okafor" is a name even if not listed, but "Mr Robot Soft Toy" is a product.
            listed = (_in_list(nxt, last) or _in_list(nxt, first)) and not _ambiguous(nxt)
            more = joined(j) and _is_title_case(tokens[j + 1][2])
            # "Dr Grace Okonkwo": a first name (a product word too) and an unlisted word that ends the run.
            first_and_end = (
                _in_list(nxt, first)
                and joined(j)
                and _is_title_case(tokens[j + 1][2])
                and not (joined(j + 1) and _is_title_case(tokens[j + 2][2]))
            )
            if (
                style != "lower"
                and _is_title_case(nxt)
                and nxt.lower() not in _TITLES
                and (listed or not more or first_and_end)
            ):
                while joined(j) and (
                    (_is_title_case(tokens[j + 1][2]) and _in_list(tokens[j + 1][2], any_name))
                    or tokens[j + 1][2].lower() in _PARTICLES
                    # after a particle any capitalized word: "Dr Pieter de Vries"
                    or (tokens[j][2].lower() in _PARTICLES and _is_title_case(tokens[j + 1][2]))
                    or (first_and_end and j == i + 1)
                ):
                    j += 1
                while tokens[j][2].lower() in _PARTICLES:  # never end on "van"
                    j -= 1
                taken = (start, j)
            elif style == _style(nxt) != "title" and listed and nxt.lower() not in COMMON_WORDS:
                taken = (start, j)
        # Rule 2: a first name and a surname ("Sarah Mitchell"), at most one of them ambiguous.
        if taken is None and style == "title" and _in_list(word, first) and joined(i):
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
        # Rule 2 in lower or upper case ("sarah mitchell", "SARAH MITCHELL") and surname-first names.
        if taken is None and style in ("lower", "upper", "title") and (j := caseless_pair(i, style)) is not None:
            taken = (start, j)
        # Rule 3: a cue and an unambiguous first name ("ask Sarah", "Dear John,", "dear sarah").
        if taken is None and style in ("title", "lower") and _in_list(word, first) and not _ambiguous(word) and i > 0:
            prev = tokens[i - 1][2].lower()
            near = re.fullmatch(r"[ ,:]{1,3}", text[tokens[i - 1][1] : start]) is not None
            two = i > 1 and prev in {"to", "with"} and tokens[i - 2][2].lower() in _CUE_VERBS
            if near and (prev in _CUES or two) and (style == "title" or _plain_name(word, first)):
                taken = (start, i)
        # Rule 4: a romaji name with a Japanese honorific ("Tanaka-san", "suzuki sama").
        if taken is None and style:
            stem, _, suffix = low.rpartition("-")
            with_suffix = stem and suffix in _ROMAJI_HONORIFICS and _in_list(stem, any_name) and not _ambiguous(stem)
            before = joined(i) and tokens[i + 1][2].lower() in _ROMAJI_HONORIFICS and _plain_name(word, any_name)
            if with_suffix or before:
                taken = (start, i)
        if taken is not None:
            s, j = taken
            spans.append((s, tokens[j][0] + len(tokens[j][2])))
            i = j + 1
        else:
            i += 1
    return spans
