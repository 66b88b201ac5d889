"""Policy checks: sensitive attributes used as a reason, and risky (guarantee or causal) claims.

Terms come from a ``TermList``: the defaults below plus extra terms an admin edits (stored in a
Django model by the integrating app and passed in). Matching is case-insensitive and on word
boundaries; a plain term's spaces and hyphens match any run of spaces or hyphens, so
"risk free" also finds "risk-free" and "risk  free".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, cached_property

from explanations.checks.base import ERROR, WARNING, Flag

SENSITIVE_CATEGORIES = ("age", "gender", "ethnicity", "religion", "health", "nationality")
RISKY_CATEGORIES = ("guarantee", "causal")
CATEGORIES = SENSITIVE_CATEGORIES + RISKY_CATEGORIES

_MESSAGES = {
    "age": "Uses the customer's age as a reason.",
    "gender": "Uses the customer's gender as a reason.",
    "ethnicity": "Uses ethnicity or race as a reason.",
    "religion": "Uses religion as a reason.",
    "health": "Uses health or disability as a reason.",
    "nationality": "Uses nationality as a reason.",
    "guarantee": "Makes a guarantee or absolute claim.",
    "causal": "Claims an unsupported effect (e.g. on sales).",
}

_NATIONALITIES = (
    r"british|english|scottish|welsh|irish|french|german|spanish|italian|portuguese|dutch|belgian|swiss|austrian"
    r"|swedish|norwegian|danish|finnish|icelandic|polish|czech|lithuanian|greek|cypriot|maltese|israeli"
    r"|japanese|chinese|american|canadian|australian|brazilian|lebanese|saudi|emirati|bahraini|european"
    r"|asian|african|arab|arabic|indian|pakistani|turkish|russian|nigerian|mexican|scandinavian"
)
_PEOPLE = (
    r"customers?|clients?|buyers?|shoppers?|people|persons?|folks?|families|family|men|women|consumers?|households?"
    r"|owners?|retailers?|nationals?|citizens?"
)
_IS = r"(?:\s+(?:is|are)|['’](?:s|re))"  # "she is", "he's", "they're"
_NOUNS = r"(?:man|woman|lady|gentleman|mother|father|mum|dad|wife|husband|girl|boy|widow|grandmother|grandfather)"

# (category, pattern, is_regex). Chosen against this catalogue: GIRL, BOY, BABY, CHILDRENS, MUM,
# FRENCH, ENGLISH, SWISS, DANISH, MOROCCAN and CHINESE are product words ("DOLLY GIRL",
# "FRENCH STYLE BASKET"), so they only count in a phrase about people ("French customers",
# "as a mother", "because she is a girl"); and a sensitive term that also occurs in the evidence
# (the product descriptions) is not flagged by check_text.
DEFAULT_TERMS: tuple[tuple[str, str, bool], ...] = (
    # age
    ("age", "elderly", False),
    ("age", "pensioner", False),
    ("age", "pensioners", False),
    ("age", "senior citizen", False),
    ("age", "senior citizens", False),
    ("age", "retiree", False),
    ("age", "retirees", False),
    ("age", "old people", False),
    ("age", "older customers", False),
    ("age", "older customer", False),
    ("age", "young people", False),
    ("age", "youngsters", False),
    ("age", "teenager", False),
    ("age", "teenagers", False),
    ("age", "millennial", False),
    ("age", "millennials", False),
    ("age", "boomer", False),
    ("age", "boomers", False),
    ("age", "gen z", False),
    ("age", "middle-aged", False),
    ("age", r"\d{1,3}[\s-]+years?[\s-]+old", True),
    ("age", r"aged\s+(?:\d{1,3}|over|under)", True),
    (
        "age",
        r"in\s+(?:his|her|their)\s+(?:teens|twenties|thirties|forties|fifties|sixties|seventies|eighties|\d0s)",
        True,
    ),
    ("age", r"(?:his|her|their|the\s+customer'?s)\s+age", True),
    ("age", r"age\s+group", True),
    # gender
    ("gender", "woman", False),
    ("gender", "women", False),
    ("gender", "female", False),
    ("gender", "females", False),
    ("gender", "male", False),
    ("gender", "males", False),
    ("gender", "ladies", False),
    ("gender", "gender", False),
    ("gender", "feminine", False),
    ("gender", "masculine", False),
    ("gender", "housewife", False),
    ("gender", "housewives", False),
    ("gender", rf"(?:because|as|since)\s+(?:she|he|they){_IS}\s+(?:a\s+|an\s+)?{_NOUNS}s?", True),
    ("gender", rf"as\s+(?:a|an)\s+{_NOUNS}", True),
    ("gender", r"(?:being|is)\s+(?:a\s+)?(?:man|woman|lady)", True),
    # ethnicity / race
    ("ethnicity", "race", False),
    ("ethnicity", "racial", False),
    ("ethnicity", "ethnic", False),
    ("ethnicity", "ethnicity", False),
    ("ethnicity", "ethnic minority", False),
    ("ethnicity", "skin colour", False),
    ("ethnicity", "skin color", False),
    ("ethnicity", "caucasian", False),
    ("ethnicity", "hispanic", False),
    ("ethnicity", "latino", False),
    ("ethnicity", "latina", False),
    ("ethnicity", "bame", False),
    ("ethnicity", "gypsy", False),
    ("ethnicity", r"(?:black|white|brown|asian|african|arab)\s+(?:" + _PEOPLE + ")", True),
    # religion
    ("religion", "religion", False),
    ("religion", "religious", False),
    ("religion", "muslim", False),
    ("religion", "muslims", False),
    ("religion", "islam", False),
    ("religion", "islamic", False),
    ("religion", "jewish", False),
    ("religion", "jew", False),
    ("religion", "jews", False),
    ("religion", "judaism", False),
    ("religion", "christian", False),
    ("religion", "christians", False),
    ("religion", "catholic", False),
    ("religion", "catholics", False),
    ("religion", "protestant", False),
    ("religion", "hindu", False),
    ("religion", "hindus", False),
    ("religion", "sikh", False),
    ("religion", "sikhs", False),
    ("religion", "buddhist", False),
    ("religion", "buddhists", False),
    ("religion", "atheist", False),
    ("religion", "atheists", False),
    ("religion", "halal", False),
    ("religion", "kosher", False),
    ("religion", "churchgoer", False),
    ("religion", "churchgoers", False),
    ("religion", r"(?:his|her|their)\s+faith", True),
    # health / disability
    ("health", "disabled", False),
    ("health", "disability", False),
    ("health", "disabilities", False),
    ("health", "handicapped", False),
    ("health", "wheelchair", False),
    ("health", "blind", False),
    ("health", "deaf", False),
    ("health", "diabetic", False),
    ("health", "diabetes", False),
    ("health", "pregnant", False),
    ("health", "pregnancy", False),
    ("health", "illness", False),
    ("health", "ill health", False),
    ("health", "chronically ill", False),
    ("health", "mental health", False),
    ("health", "depression", False),
    ("health", "dementia", False),
    ("health", "alzheimer's", False),
    ("health", "autism", False),
    ("health", "autistic", False),
    ("health", "cancer", False),
    ("health", "medical condition", False),
    ("health", "health condition", False),
    ("health", r"(?:his|her|their)\s+health", True),
    # nationality: product words like FRENCH only when about people
    ("nationality", "nationality", False),
    ("nationality", "nationalities", False),
    ("nationality", "foreigner", False),
    ("nationality", "foreigners", False),
    ("nationality", "immigrant", False),
    ("nationality", "immigrants", False),
    ("nationality", "expat", False),
    ("nationality", "expats", False),
    ("nationality", rf"(?:{_NATIONALITIES})\s+(?:{_PEOPLE})", True),
    ("nationality", rf"(?:because|as|since)\s+(?:she|he|they|the\s+customer){_IS}\s+(?:{_NATIONALITIES})", True),
    ("nationality", rf"as\s+(?:a|an)\s+(?:{_NATIONALITIES})", True),
    ("nationality", rf"the\s+(?:{_NATIONALITIES})\s+(?:like|love|prefer|enjoy|buy|want)s?", True),
    # guarantees and absolute claims
    ("guarantee", "guaranteed", False),
    ("guarantee", "guarantee", False),
    ("guarantee", "guarantees", False),
    ("guarantee", "always", False),
    ("guarantee", "never fails", False),
    ("guarantee", "never fail", False),
    ("guarantee", "can't fail", False),
    ("guarantee", "cannot fail", False),
    ("guarantee", "can't go wrong", False),
    ("guarantee", "risk-free", False),
    ("guarantee", "no risk", False),
    ("guarantee", "zero risk", False),
    ("guarantee", "certain to", False),
    ("guarantee", "sure to", False),
    ("guarantee", "sure-fire", False),
    ("guarantee", "definitely", False),
    ("guarantee", "certainly", False),
    ("guarantee", "without fail", False),
    ("guarantee", "foolproof", False),
    ("guarantee", "promise", False),
    ("guarantee", r"100\s?%|one hundred per\s?cent", True),
    ("guarantee", r"(?:sell|sells|selling)\s+out\s+(?:fast|quickly|immediately|instantly)", True),
    # unsupported causal claims
    (
        "causal",
        r"will\s+(?:\w+\s+)?(?:increase|boost|grow|double|triple|drive|improve|raise|lift|maximi[sz]e|skyrocket)"
        r"\s+(?:your\s+|their\s+|the\s+|its\s+)?(?:\w+\s+)?(?:sales|revenue|revenues|profits?|margins?|turnover|footfall"
        r"|conversions?|orders|basket|income|takings)",
        True,
    ),
    ("causal", r"because\s+of\s+[^.;!?]{1,80}?\b(?:they|customers|you|it|sales)\s+will\b", True),
    (
        "causal",
        r"(?:leads?|lead|led)\s+to\s+(?:more|higher|increased|bigger)\s+(?:sales|revenue|profits?|orders)",
        True,
    ),
    ("causal", r"results?\s+in\s+(?:more|higher|increased|bigger)\s+(?:sales|revenue|profits?|orders)", True),
    ("causal", r"(?:proven|shown)\s+to\s+(?:sell|increase|boost|work)", True),
    ("causal", r"(?:will|is\s+going\s+to)\s+(?:sell|fly)\s+(?:out|off\s+the\s+shelves)", True),
    ("causal", r"(?:customers|they|you)\s+will\s+(?:definitely|certainly|surely)\s+\w+", True),
)


@dataclass(frozen=True)
class Term:
    """One policy term: a phrase (or, with ``is_regex``, a regex) of one of the ``CATEGORIES``."""

    category: str
    pattern: str
    is_regex: bool = False

    def __post_init__(self) -> None:
        validate_term(self.category, self.pattern, self.is_regex)

    def regex(self) -> str:
        """Return the pattern as a regex body (without the word-boundary guards)."""
        if self.is_regex:
            return f"(?:{self.pattern})"
        words = [re.escape(w) for w in re.split(r"[\s\-]+", self.pattern.strip()) if w]
        return r"[\s\-]+".join(words)


def validate_term(category: str, pattern: str, is_regex: bool = False) -> None:
    """Raise ValueError if the term cannot be used (unknown category, empty pattern, bad regex).

    Meant for the admin form/model ``clean()`` of the integrating app.
    """
    if category not in CATEGORIES:
        raise ValueError(f"Unknown category {category!r}; expected one of {', '.join(CATEGORIES)}.")
    if not pattern or not pattern.strip():
        raise ValueError("The pattern is empty.")
    if is_regex:
        try:
            compiled = re.compile(pattern, re.IGNORECASE)
        except re.error as exc:
            raise ValueError(f"Invalid regular expression: {exc}") from exc
        if compiled.match(""):
            raise ValueError("The regular expression matches the empty string.")


def flag_code(category: str) -> str:
    """Return the flag code of a category: ``sensitive_attribute:<c>`` or ``risky_claim:<c>``."""
    prefix = "sensitive_attribute" if category in SENSITIVE_CATEGORIES else "risky_claim"
    return f"{prefix}:{category}"


@dataclass(frozen=True)
class TermList:
    """The policy terms to check, compiled once per list into one regex per category."""

    terms: tuple[Term, ...] = field(default_factory=tuple)

    @classmethod
    def build(
        cls,
        extra: Iterable[Term | tuple[str, str, bool]] = (),
        *,
        include_defaults: bool = True,
        disabled: Iterable[str] = (),
    ) -> TermList:
        """Return the default terms (unless ``include_defaults=False``) plus ``extra``.

        ``extra`` holds ``Term``s or ``(category, pattern, is_regex)`` tuples (e.g. from an admin
        model's ``values_list``). ``disabled`` lists default patterns to drop (exact pattern text).
        """
        off = set(disabled)
        terms = [Term(*t) for t in DEFAULT_TERMS if t[1] not in off] if include_defaults else []
        terms += [t if isinstance(t, Term) else Term(*t) for t in extra]
        return cls(tuple(dict.fromkeys(terms)))

    @cached_property
    def compiled(self) -> dict[str, re.Pattern]:
        """Return {category: compiled alternation} for the categories that have terms."""
        bodies: dict[str, list[str]] = {}
        for term in self.terms:
            bodies.setdefault(term.category, []).append(term.regex())
        # Longest alternatives first, so "senior citizens" wins over "senior citizen".
        return {
            cat: re.compile(r"(?<!\w)(?:" + "|".join(sorted(parts, key=len, reverse=True)) + r")(?!\w)", re.IGNORECASE)
            for cat, parts in bodies.items()
        }


@cache
def default_terms() -> TermList:
    """Return the default TermList (compiled once per process)."""
    return TermList.build()


def find_policy_issues(text: str, *, terms: TermList | None = None) -> list[Flag]:
    """Return sensitive-attribute and risky-claim flags in ``text``, in text order."""
    terms = terms or default_terms()
    flags = []
    for category, pattern in terms.compiled.items():
        severity = ERROR if category in SENSITIVE_CATEGORIES else WARNING
        for m in pattern.finditer(text):
            if m.end() > m.start():
                flags.append(Flag(flag_code(category), _MESSAGES[category], m.start(), m.end(), m.group(), severity))
    flags.sort(key=lambda f: (f.start, f.end))
    return flags
