"""Claim checks: every sentence of a reason against the facts it was written from (English and Japanese).

The entity check (``entities``) asks whether a product word occurs in the evidence at all; it cannot tell
"the customer is a frequent buyer of the red lantern" (bought once) from a true sentence naming the same
lantern. Here each sentence's claims are tied to the product it is about (the nearest product named in the
sentence, else the recommended one, else the customer) and checked against that product's own figures:

* ``unsupported_claim:frequency``: "frequent", "regularly", "often", "again", "re-order", "first time",
  "never", "N times" (よく, 定期的, 再び, 初めて, 一度も, N回) against the product's order count;
* ``unsupported_claim:purchase``: "they bought/ordered X" when X was never bought by this customer, and
  "customers who bought X also bought Y" without that co-purchase figure in the facts;
* ``unsupported_claim:time``: intervals ("3 weeks", "about 2 months", "3週間"), "recently", months and
  years against the facts' intervals and dates;
* ``unsupported_claim:concept``: a behaviour concept (bulk, seasonal, price-sensitive, lapsed, frequent
  customer) stated as a fact when the customer's own figures do not show it (a similarity to a profile,
  "resembles the lapsed profile", is allowed when the concept is shared by the vectors);
* ``unsupported_claim:attribute``: a material, use, occasion or quality ("wooden", "garden", "durable",
  "praised", 木製, 丈夫) that neither the product texts nor the facts contain.

Pure Python: a reason's :class:`ClaimFacts` is a plain record (built from the database by
``explanations.services.reasons``), so the audit and the tests use the same checker as generation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import pairwise

from explanations.checks.base import ERROR, Flag
from explanations.checks.claim_words import (
    AMOUNTS,
    ATTRIBUTES,
    CONCEPT_KEYS,
    EN_AGAIN,
    EN_BOUGHT,
    EN_CONCEPTS,
    EN_COUNT,
    EN_FREQUENT,
    EN_INTERVAL,
    EN_MONTH,
    EN_NEW,
    EN_OTHERS,
    EN_RECENT,
    EN_RELATIVE,
    EN_SIMILARITY,
    EN_UNIT_DAYS,
    EN_WORD,
    HAS_JA,
    JA_AGAIN,
    JA_ATTRIBUTES,
    JA_BOUGHT,
    JA_CONCEPTS,
    JA_COUNT,
    JA_FREQUENT,
    JA_INTERVAL,
    JA_MONTH,
    JA_NEW,
    JA_OTHERS,
    JA_PARTICLE,
    JA_RECENT,
    JA_RELATIVE,
    JA_SENTENCE,
    JA_SIMILARITY,
    JA_UNIT_DAYS,
    JOINER,
    MONTHS,
    NUMBER_WORDS,
    RELATIVE_DAYS,
    YEAR,
)
from explanations.checks.entities import GENERIC_WORDS, forms

# How many orders of a product (or of anything, for the customer) each kind of frequency word needs.
AGAIN_ORDERS = 2  # "again", "re-order", "repeat"
FREQUENT_ORDERS = 3  # "frequent", "regularly", "often", "usually", "favourite"
FREQUENT_CUSTOMER_ORDERS = 10  # "a frequent / regular / loyal customer" without a product
RECENT_DAYS = 60  # "recently", "lately"
# A stated interval matches a fact's when within this share of it (stated "about 3 weeks" for 19 days).
INTERVAL_TOLERANCE = 0.35


@dataclass(frozen=True)
class ProductFact:
    """One product a reason may talk about, with this customer's own figures for it."""

    name: str
    role: str  # "recommended" or "evidence"
    orders: int = 0  # distinct orders of it by this customer; 0 = never bought
    last_days: float | None = None  # days from its last order to the reference time
    reorder_days: float | None = None  # median days between its orders (2+ orders)


@dataclass(frozen=True)
class CoPurchase:
    """Of the ``buyers`` customers who bought ``evidence``, ``both`` also bought ``recommended``."""

    evidence: str
    recommended: str
    buyers: int
    both: int


@dataclass(frozen=True)
class ClaimFacts:
    """The facts a reason was written from: products, the customer's figures, concepts and co-purchases."""

    products: tuple[ProductFact, ...] = ()
    reference: date | None = None
    customer_orders: int = 0
    days_since_last_order: float | None = None
    order_interval_days: float | None = None
    concepts_held: tuple[str, ...] = ()  # concepts whose rule the customer's own figures meet
    concepts_similar: tuple[str, ...] = ()  # concepts shared by the vectors only (a similarity to a profile)
    co_purchases: tuple[CoPurchase, ...] = ()
    popular: bool = False  # the recommender's popularity term is part of the evidence
    extra_text: tuple[str, ...] = field(default_factory=tuple)  # any other supporting text

    def intervals(self) -> list[float]:
        """Every interval (days) the facts state."""
        values = [self.days_since_last_order, self.order_interval_days]
        for p in self.products:
            values += [p.last_days, p.reorder_days]
        return [v for v in values if v is not None]

    def dates(self) -> list[date]:
        """Every date the facts imply (last orders)."""
        if self.reference is None:
            return []
        return [self.reference - timedelta(days=d) for d in (self.days_since_last_order, *(p.last_days for p in
                self.products)) if d is not None]  # fmt: skip

    def support_text(self) -> str:
        names = [p.name for p in self.products] + [c.evidence for c in self.co_purchases]
        names += [c.recommended for c in self.co_purchases]
        return " ".join([*names, *self.concepts_held, *self.concepts_similar, *self.extra_text]).lower()


def _flag(kind: str, message: str, start: int, end: int, text: str) -> Flag:
    return Flag(f"unsupported_claim:{kind}", message, start, end, text[start:end], ERROR)


# --------------------------------------------------------------------------- products named in a sentence


def _content_forms(name: str) -> list[frozenset[str]]:
    return [forms(w) for w in EN_WORD.findall(name) if len(w) >= 3 and not (forms(w) & GENERIC_WORDS)]


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    count: int  # distinct words of the name matched
    coverage: float  # the share of the name's words matched
    product: ProductFact


def _mentions(sentence: str, offset: int, products: tuple[ProductFact, ...]) -> list[_Mention]:
    """Return a mention for each product the sentence names.

    Named: at least two of its content words (its only one for a one-word name) in one run of the name's
    words, so "lantern" alone names no lantern, two products sharing "red retrospot" are told apart by
    their other words, and words of two neighbouring names do not make a third.
    """
    spans = list(EN_WORD.finditer(sentence))
    words = [(m.start() + offset, m.end() + offset, forms(m.group())) for m in spans]
    # Two words are neighbours only across spaces, digits and joiners: Japanese text between two names
    # ("…retrospotの6回の注文がRed…") separates them.
    joined = [bool(JOINER.fullmatch(sentence[a.end() : b.start()])) for a, b in pairwise(spans)] + [False]
    found = []
    for product in products:
        wanted = _content_forms(product.name)
        if not wanted:
            continue
        need = min(2, len(wanted))
        matched = [next((j for j, w in enumerate(wanted) if f & w), None) for _, _, f in words]
        best: _Mention | None = None
        i = 0
        while i < len(words):
            if matched[i] is None:
                i += 1
                continue
            # A run of the name's words, at most one other word ("of", "72", "the") between two of them.
            end = i
            while (
                end + 1 < len(words)
                and joined[end]
                and (
                    matched[end + 1] is not None
                    or (end + 2 < len(words) and joined[end + 1] and matched[end + 2] is not None)
                )
            ):
                end += 1 if matched[end + 1] is not None else 2
            count = len({j for j in matched[i : end + 1] if j is not None})
            if count >= need and (best is None or count > best.count):
                best = _Mention(words[i][0], words[end][1], count, count / len(wanted), product)
            i = end + 1
        # The whole name written out wins over any partial run (names of one family differ in generic words:
        # "Hot water bottle keep calm" and "Hot water bottle i am so poorly").
        at = sentence.lower().find(" ".join(product.name.split()).lower())
        if at >= 0:
            best = _Mention(at + offset, at + offset + len(product.name), len(wanted) + 100, 2.0, product)
        if best is not None:
            found.append(best)
    # A name inside a fuller one is not named ("red retrospot" inside "Red retrospot cake cases").
    return [
        m
        for m in found
        if not any(
            o is not m and o.start <= m.start and m.end <= o.end and (o.count, o.coverage) > (m.count, m.coverage)
            for o in found
        )
    ]


def _subject(position: int, mentions: list[_Mention]) -> ProductFact | None:
    """The product a claim at ``position`` is about: the nearest one named in its sentence, else None.

    Distance is to either end of the name; at equal distance the fuller match wins (in "the Pack of 72
    retrospot cake cases they ordered twice" the pack, whose whole name is there, not "Red retrospot cake
    cases", three of whose four words are).
    """
    if not mentions:
        return None
    best = min(mentions, key=lambda m: (min(abs(m.start - position), abs(m.end - position)), -m.count, -m.coverage))
    return best.product


def _recommended(facts: ClaimFacts) -> ProductFact | None:
    return next((p for p in facts.products if p.role == "recommended"), None)


# --------------------------------------------------------------------------- the checks


def _sentences(text: str) -> list[tuple[int, int]]:
    from explanations.checks import sentence_spans

    if HAS_JA.search(text):
        return [(m.start(), m.end()) for m in JA_SENTENCE.finditer(text) if m.group().strip()]
    return sentence_spans(text)


def _interval_days(amount: str, unit: str, units: dict) -> float | None:
    """Days in "3 weeks", "a fortnight", "2か月"; None for a vague amount ("several months")."""
    value = AMOUNTS.get(amount.lower())
    if value is None:
        try:
            value = float(amount)
        except ValueError:
            return None
    return value * units[unit.lower()]


def _interval_supported(days: float, intervals: list[float]) -> bool:
    return any(abs(days - v) <= max(INTERVAL_TOLERANCE * v, 3.5) for v in intervals)


def _concept_supported(key: str, sentence: str, facts: ClaimFacts, similarity: re.Pattern) -> bool:
    names = CONCEPT_KEYS[key]
    if any(n in c.lower() for c in facts.concepts_held for n in names):
        return True
    if key == "frequent" and facts.customer_orders >= FREQUENT_CUSTOMER_ORDERS:
        return True
    if key == "lapsed" and facts.days_since_last_order is not None and facts.days_since_last_order >= 90:
        return True
    return bool(similarity.search(sentence)) and any(n in c.lower() for c in facts.concepts_similar for n in names)


def _attribute_supported(supports: tuple[str, ...], facts: ClaimFacts, support_forms: frozenset[str]) -> bool:
    if "__popular__" in supports:
        return facts.popular or bool(facts.co_purchases)
    return any(forms(s) & support_forms for s in supports)


def _attribute_supports(word: str) -> tuple[str, ...] | None:
    """The supporting forms of an attribute word ("weddings", "high-quality", "eco-friendly"), None if none."""
    for candidate in (word, *word.split("-")) if "-" in word else (word,):
        for form in sorted(forms(candidate)):
            if form in ATTRIBUTES:
                return ATTRIBUTES[form]
    return None


def _check_sentence(text: str, start: int, end: int, facts: ClaimFacts, support_forms: frozenset[str]) -> list[Flag]:
    sentence = text[start:end]
    ja = bool(HAS_JA.search(sentence))
    mentions = _mentions(sentence, start, facts.products)
    recommended = _recommended(facts)
    flags: list[Flag] = []
    others = (JA_OTHERS if ja else EN_OTHERS).search(sentence)

    def about(pos: int) -> ProductFact | None:
        if ja:
            # A Japanese claim modifies the noun after it ("7か月前に1回注文されたWooden heart…") unless a
            # particle ends its phrase first ("Jumbo bag…の6回の注文が…").
            after = [m for m in mentions if m.start >= pos and not JA_PARTICLE.search(text[pos : m.start])]
            if after:
                return min(after, key=lambda m: m.start).product
        return _subject(pos, mentions)

    def intervals(pos: int) -> list[float]:
        product = about(pos)
        if product is None:
            return [v for v in (facts.days_since_last_order, facts.order_interval_days) if v is not None]
        return [v for v in (product.last_days, product.reorder_days) if v is not None]

    # First time / never: about the named product, else the recommended one; it must never have been bought.
    for m in (JA_NEW if ja else EN_NEW).finditer(sentence):
        product = about(start + m.start()) or recommended
        if product is not None and product.orders > 0:
            flags.append(_flag("frequency", f"“{product.name}” was ordered {product.orders} time(s), not never.",
                               start + m.start(), start + m.end(), text))  # fmt: skip
    if not others:
        for pattern, need in ((JA_AGAIN if ja else EN_AGAIN, AGAIN_ORDERS),
                              (JA_FREQUENT if ja else EN_FREQUENT, FREQUENT_ORDERS)):  # fmt: skip
            for m in pattern.finditer(sentence):
                product = about(start + m.start())
                if product is None:
                    ok = facts.customer_orders >= (need if need == AGAIN_ORDERS else FREQUENT_CUSTOMER_ORDERS)
                    label = "the customer"
                    orders = facts.customer_orders
                else:
                    ok, label, orders = product.orders >= need, f"“{product.name}”", product.orders
                if not ok:
                    flags.append(_flag("frequency", f"{label} has {orders} order(s); “{m.group()}” needs {need}+.",
                                       start + m.start(), start + m.end(), text))  # fmt: skip
        for m in (JA_COUNT if ja else EN_COUNT).finditer(sentence):
            said = m.group(1) if ja else (m.group(1) or m.group(2))
            stated = int(said) if said.isdigit() else NUMBER_WORDS.get(said.lower())
            product = about(start + m.start())
            actual = product.orders if product is not None else facts.customer_orders
            if stated is not None and stated != actual:
                flags.append(_flag("frequency", f"Stated {stated} orders; the facts say {actual}.",
                                   start + m.start(), start + m.end(), text))  # fmt: skip
        # "they bought X": X must have been bought by this customer.
        for m in (JA_BOUGHT if ja else EN_BOUGHT).finditer(sentence):
            product = about(start + m.start())
            if product is not None and product.orders == 0 and not (JA_NEW if ja else EN_NEW).search(sentence):
                flags.append(_flag("purchase", f"The customer has not bought “{product.name}”.",
                                   start + m.start(), start + m.end(), text))  # fmt: skip
    else:
        named = {m.product.name.lower() for m in mentions}
        backed = any(c.both > 0 and c.evidence.lower() in named for c in facts.co_purchases)
        if not backed:
            flags.append(_flag("purchase", "No co-purchase figure supports what other customers bought.",
                               start + others.start(), start + others.end(), text))  # fmt: skip

    # Time: intervals, relative dates, recency, months and years.
    for m in (JA_INTERVAL if ja else EN_INTERVAL).finditer(sentence):
        days = _interval_days(m.group(1), m.group(2), JA_UNIT_DAYS if ja else EN_UNIT_DAYS)
        if days is not None and not _interval_supported(days, intervals(start + m.start())):
            flags.append(_flag("time", f"No fact gives an interval of “{m.group()}”.", start + m.start(),
                               start + m.end(), text))  # fmt: skip
    for m in (JA_RELATIVE if ja else EN_RELATIVE).finditer(sentence):
        word = m.group() if ja else (m.group(1) or m.group()).lower()
        product = about(start + m.start())
        age = product.last_days if product is not None else facts.days_since_last_order
        ages = [age] if age is not None else []
        if word in ("year", "昨年", "去年"):
            ok = facts.reference is not None and any(
                (facts.reference - timedelta(days=d)).year == facts.reference.year - 1 for d in ages
            )
        else:
            ok = any(d <= RELATIVE_DAYS[word] for d in ages)
        if not ok:
            flags.append(_flag("time", f"No fact dates anything to “{m.group()}”.", start + m.start(),
                               start + m.end(), text))  # fmt: skip
    for m in (JA_RECENT if ja else EN_RECENT).finditer(sentence):
        product = about(start + m.start())
        days = product.last_days if product is not None else facts.days_since_last_order
        if days is None or days > RECENT_DAYS:
            flags.append(_flag("time", "The facts show no recent order.", start + m.start(), start + m.end(), text))
    dates = facts.dates()
    for m in JA_MONTH.finditer(sentence) if ja else EN_MONTH.finditer(sentence):
        month = int(m.group(1)) if ja else MONTHS.index(m.group(1).lower()) + 1
        if month not in {d.month for d in dates} and m.group(1).lower() not in support_forms:
            flags.append(_flag("time", f"No fact is dated “{m.group()}”.", start + m.start(), start + m.end(), text))
    for m in YEAR.finditer(sentence):
        if int(m.group(1)) not in {d.year for d in dates} and m.group(1) not in facts.support_text():
            flags.append(_flag("time", f"No fact is dated {m.group()}.", start + m.start(), start + m.end(), text))

    # Concepts stated as facts.
    for key, pattern in JA_CONCEPTS if ja else EN_CONCEPTS:
        for m in pattern.finditer(sentence):
            if any(m.group().lower() in p.name.lower() for p in facts.products):
                continue  # a product word ("JUMBO BAG" is not a bulk claim; "BUDGET" in a product name)
            if not _concept_supported(key, sentence, facts, JA_SIMILARITY if ja else EN_SIMILARITY):
                flags.append(_flag("concept", f"The customer's own figures do not show “{m.group()}”.",
                                   start + m.start(), start + m.end(), text))  # fmt: skip

    # Attributes.
    if ja:
        for word, supports in JA_ATTRIBUTES.items():
            for m in re.finditer(re.escape(word), sentence):
                if not _attribute_supported(supports, facts, support_forms):
                    flags.append(_flag("attribute", f"Nothing in the facts says “{word}”.", start + m.start(),
                                       start + m.end(), text))  # fmt: skip
    else:
        for m in re.finditer(r"[A-Za-z]+(?:-[A-Za-z]+)*", sentence):
            word = m.group().lower()
            supports = _attribute_supports(word)
            if supports is None:
                continue
            if forms(word) & support_forms:
                continue  # the product text itself says it ("WOODEN HEART", "PARTY BUNTING")
            if not _attribute_supported(supports, facts, support_forms):
                flags.append(_flag("attribute", f"Nothing in the facts says “{m.group()}”.", start + m.start(),
                                   start + m.end(), text))  # fmt: skip
    return flags


def find_unsupported_claims(text: str, facts: ClaimFacts) -> list[Flag]:
    """Return an ``unsupported_claim:<kind>`` flag for each claim in ``text`` that ``facts`` do not support."""
    if not text or not text.strip():
        return []
    support_forms = frozenset(f for w in EN_WORD.findall(facts.support_text()) for f in forms(w))
    flags: list[Flag] = []
    for start, end in _sentences(text):
        flags += _check_sentence(text, start, end, facts, support_forms)
    unique = {(f.code, f.start, f.end): f for f in flags}
    return sorted(unique.values(), key=lambda f: (f.start, f.end, f.code))


def names_evidence(text: str, facts: ClaimFacts) -> bool:
    """Whether ``text`` names at least one evidence product (most of its words, see ``_mentions``)."""
    evidence = tuple(p for p in facts.products if p.role == "evidence")
    return bool(_mentions(text, 0, evidence))
