"""Reason writing: a fact sheet per recommendation, fact sentences from it (in the viewer's language), and
language-model candidates that are checked and scored against the same sheet.

The sheet (:func:`reason_sheet`, stored as ``Explanation.reason_facts``) holds what a reason may claim: the
recommended product, the top evidence products with this customer's own order counts, last-order ages and
re-order intervals, what other buyers of the top evidence product bought, and which shared concepts the
customer's own figures meet (``holds``) rather than only resemble. The template reason is built from it
with gettext, so a Japanese viewer reads the same facts in Japanese. The model writes several candidates;
each is checked (claims, entities, policy, PII), scored by its consistency to the customer-product pair and
must name an evidence line; the best passing one is kept, otherwise the template is the reason.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import replace
from functools import cache
from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from explanations.checks.claims import ClaimFacts, CoPurchase, ProductFact, find_unsupported_claims, names_evidence
from explanations.services.sheets import reason_sheet, title  # noqa: F401  (title: kept for callers)
from recommendations.models import Product

if TYPE_CHECKING:
    from explanations.services.explain import Facts

SYSTEM_PROMPT = (
    "You help a sales person at a gift wholesaler. Using only the facts given, write one or two short "
    "sentences the sales person can say to the client about why the product fits. Do not invent facts."
)
SAMPLING_TEMPERATURE = 0.8
# Flags that keep a candidate from being chosen (warnings included: an invented name is a wrong reason).
BLOCKING_PREFIXES = ("unsupported_claim", "hallucinated_entity", "pii", "sensitive_attribute", "risky_claim",
                     "too_long", "empty")  # fmt: skip
# Words of the prompt's instructions: a candidate that repeats them talks to the model, not to the client.
PROMPT_ECHO = re.compile(r"\b(?:facts?|adjectives?|sentences?|prompt|instructions?|recommended product)\b", re.I)


# --------------------------------------------------------------------------- the fact sheet (sheets.py)


def claim_facts(sheet: dict) -> ClaimFacts:
    """Return the claim checker's view of a stored fact sheet."""
    from datetime import date

    if not sheet:
        return ClaimFacts()
    product = sheet["product"]

    def fact(row: dict, role: str) -> ProductFact:
        return ProductFact(row["name"], role, row["orders"], row["last_days"], row["reorder_days"])

    co = sheet.get("co_purchase")
    return ClaimFacts(
        products=(fact(product, "recommended"), *(fact(r, "evidence") for r in sheet["evidence"])),
        reference=date.fromisoformat(sheet["reference"]),
        customer_orders=sheet["customer_orders"],
        days_since_last_order=sheet["days_since_last_order"],
        order_interval_days=sheet["order_interval_days"],
        concepts_held=tuple(c["name"] for c in sheet["concepts"] if c["holds"]),
        concepts_similar=tuple(c["name"] for c in sheet["concepts"]),
        co_purchases=(CoPurchase(co["evidence"], product["name"], co["buyers"], co["both"]),) if co else (),
        popular=sheet.get("popular", False),
    )


def claim_flags(text: str, sheet: dict) -> list[dict]:
    """Return the unsupported-claim flags of ``text`` against ``sheet`` as dicts (none without a sheet)."""
    if not sheet:
        return []
    return [f.as_dict() for f in find_unsupported_claims(text, claim_facts(sheet))]


def evidence_named(text: str, sheet: dict) -> bool:
    """Whether ``text`` names at least one of the sheet's evidence lines (the product itself when it is one)."""
    if not sheet:
        return False
    facts = claim_facts(sheet)
    if sheet["product"].get("in_evidence"):
        facts = replace(facts, products=tuple(replace(p, role="evidence") for p in facts.products))
    return names_evidence(text, facts)


# --------------------------------------------------------------------------- the template reason


def _span(days: float) -> str:
    """Return a number of days as the unit a sales person would say ("12 days", "3 weeks", "2 months")."""
    days = max(1, round(days))
    if days < 14:
        return ngettext("%(n)s day", "%(n)s days", days) % {"n": days}
    if days < 60:
        weeks = round(days / 7)
        return ngettext("%(n)s week", "%(n)s weeks", weeks) % {"n": weeks}
    months = round(days / 30.4)
    return ngettext("%(n)s month", "%(n)s months", months) % {"n": months}


def _opening(product: str, ev: dict, variant: int) -> str:
    values = {"product": product, "evidence": ev["name"], "count": ev["orders"]}
    if ev["orders"] >= 2:
        frames = (
            _("%(product)s fits next to %(evidence)s, which this account has ordered %(count)s times."),
            _("%(evidence)s, ordered %(count)s times so far, is the closest link to %(product)s."),
            _("Their %(count)s orders of %(evidence)s point to %(product)s."),
        )
    elif ev["orders"] == 1 and ev["last_days"] is not None:
        values["ago"] = _span(ev["last_days"])
        frames = (
            _("%(product)s is close to %(evidence)s, which they ordered 1 time, %(ago)s ago."),
            _("An order of %(evidence)s %(ago)s ago is the closest link to %(product)s."),
        )
    else:
        frames = (_("%(product)s is close to %(evidence)s in the catalogue."),)
    return frames[variant % len(frames)] % values


def _reorder_opening(own: dict, variant: int) -> str:
    values = {"product": own["name"], "count": own["orders"], "ago": _span(own["last_days"])}
    if own["orders"] >= 2:
        frames = (
            _("%(product)s is due again: this account has ordered it %(count)s times."),
            _("Their %(count)s orders of %(product)s make it a re-order candidate."),
            _("%(product)s has been ordered %(count)s times by this account."),
        )
    else:
        frames = (
            _("This account ordered %(product)s 1 time, %(ago)s ago."),
            _("%(product)s was ordered here 1 time, %(ago)s ago."),
        )
    return frames[variant % len(frames)] % values


def _along(ev: dict) -> str:
    return ngettext(
        "It goes with %(evidence)s, which they have ordered %(count)s time.",
        "It goes with %(evidence)s, which they have ordered %(count)s times.",
        ev["orders"],
    ) % {"evidence": ev["name"], "count": ev["orders"]}


def _timing(ev: dict | None, sheet: dict) -> str:
    if ev and ev["reorder_days"] and ev["orders"] >= 2 and ev["last_days"] is not None:
        return _("They re-order %(evidence)s about every %(interval)s; the last order was %(ago)s ago.") % {
            "evidence": ev["name"], "interval": _span(ev["reorder_days"]), "ago": _span(ev["last_days"])}  # fmt: skip
    if sheet["order_interval_days"] and sheet["days_since_last_order"] is not None:
        return _("This account places an order about every %(interval)s, the last one %(ago)s ago.") % {
            "interval": _span(sheet["order_interval_days"]), "ago": _span(sheet["days_since_last_order"])}  # fmt: skip
    return ""


def _context(sheet: dict, product: str) -> str:
    co = sheet.get("co_purchase")
    if co:
        return _("%(both)s of the %(buyers)s other customers who buy %(evidence)s also buy %(product)s.") % {
            **co, "product": product}  # fmt: skip
    held = [c for c in sheet["concepts"] if c["holds"]]
    if held:
        return _("The account's own orders fit the concept “%(concept)s”.") % {"concept": _(held[0]["name"])}
    if sheet["concepts"]:
        return _("Their buying resembles the “%(concept)s” profile.") % {"concept": _(sheet["concepts"][0]["name"])}
    return ""


def template_text(sheet: dict, *, lang: str | None = None, variant: int = 0) -> str:
    """Return the fact-sentence reason of ``sheet`` in ``lang`` (the active language when None).

    The strongest evidence line first (with its order count), then re-order timing, then what other buyers
    of it bought or the shared concept; ``variant`` picks among equivalent sentence frames (varied openings).
    """
    with translation.override(lang or translation.get_language()):
        product = sheet["product"]["name"]
        evidence = sheet["evidence"]
        own = sheet["product"]
        if own["orders"] >= 1 and own["last_days"] is not None:
            # A re-order: its own history first, then what it goes with.
            parts = [_reorder_opening(own, variant), _timing(own, sheet) if own["orders"] >= 2 else "",
                     _context(sheet, product) or (_along(evidence[0]) if evidence else "")]  # fmt: skip
        elif not evidence:
            return _("%(product)s is close to the range this customer buys.") % {"product": product}
        else:
            ev = evidence[0]
            parts = [_opening(product, ev, variant), _timing(ev, sheet), _context(sheet, product)]
        text = " ".join(p for p in parts if p)
        if translation.get_language() == "ja":
            text = text.replace("。 ", "。")
        return text


def template_reason(facts: Facts, *, lang: str = "en") -> str:
    """Return the deterministic reason built only from the facts (fallback and reviewer reference)."""
    variant = zlib.crc32(str(facts.recommendation.pk).encode())
    return template_text(reason_sheet(facts), lang=lang, variant=variant)


# --------------------------------------------------------------------------- model candidates


def _fact_lines(sheet: dict) -> list[str]:
    """The sheet as English fact lines: the model's prompt and the numbers the checks accept."""
    with translation.override("en"):
        return _english_fact_lines(sheet)


def _english_fact_lines(sheet: dict) -> list[str]:
    product = sheet["product"]["name"]
    own = sheet["product"]
    if own["orders"]:
        lines = [f"Recommended product: {product} (the customer ordered it {own['orders']} times before)."]
    else:
        lines = [f"Recommended product: {product} (the customer has not ordered it yet)."]
    for ev in sheet["evidence"]:
        when = f", last {round(ev['last_days'])} days ago" if ev["last_days"] is not None else ""
        lines.append(f"The customer ordered {ev['name']} {ev['orders']} times{when}.")
    subject = own if own["orders"] >= 2 else (sheet["evidence"][0] if sheet["evidence"] else None)
    timing = _timing(subject, sheet)
    if timing:
        lines.append(timing)
    context = _context(sheet, product)
    if context:
        lines.append(context)
    return lines


def reason_prompt(facts: Facts, *, with_vectors: bool = False) -> list[dict]:
    """Return the chat prompt with the fact sheet the language model may use.

    ``with_vectors``: also splice in the ELM adapter's soft tokens for the customer's and the product's
    vectors (two :data:`~explanations.ml.lm.SOFT_PLACEHOLDER`, customer first), after the facts, as in
    the adapter's grounded training prompts.
    """
    from explanations.ml.lm import SOFT_PLACEHOLDER

    sheet = reason_sheet(facts)
    lines = _fact_lines(sheet)
    if with_vectors:
        lines.append(f"Customer profile vector: {SOFT_PLACEHOLDER}. Product vector: {SOFT_PLACEHOLDER}.")
    first = sheet["evidence"][0]["name"] if sheet["evidence"] and not sheet["product"]["orders"] else (
        sheet["product"]["name"])  # fmt: skip
    lines.append(f"In one or two sentences, say why this product suits this customer. Name {first}. "
                 "Use only the facts above; add no qualities, materials or uses.")  # fmt: skip
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": "\n".join(lines)}]


def adapter_reads_vectors(metrics: dict) -> bool:
    """Whether an adapter met issue 18's goals on held-out customers (``manage.py elm_evaluate``).

    Below them its soft tokens carry too little of the customer for the LM to use: measured on the real data,
    an adapter that did not read vectors made reasons no more consistent and doubled the flagged share
    (docs/elm.md). Semantic consistency alone cannot tell reading from guessing, so the goals decide.
    """
    from explanations.ml.elm.metrics import decoding_that_reads

    return decoding_that_reads(metrics) is not None


def reason_adapter():
    """Return the ELM adapter whose soft tokens go into reason prompts, or None (facts only)."""
    mode = settings.ELM_REASON_SOFT_TOKENS
    if mode == "off":
        return None
    from explanations.ml.elm import get_adapter

    try:
        adapter = get_adapter()
    except FileNotFoundError:
        return None
    if mode == "auto" and not adapter_reads_vectors(adapter.metrics):
        return None
    return adapter


def clean_generated(text: str) -> str:
    """Keep at most three complete sentences of model output."""
    text = " ".join(text.split())
    sentences = re.findall(r"[^.!?]+[.!?]", text)
    return " ".join(s.strip() for s in sentences[:3]) if sentences else text


def choose_candidate(
    candidates: list[str], facts: Facts, *, vectors: np.ndarray | None = None, floor: float | None = None
) -> tuple[str, dict]:
    """Return the best candidate that passes every check and names an evidence line ("" when none does),
    with a record of how each candidate fared. Best: the highest consistency to the customer-product pair;
    with ``floor`` (the template's consistency) a candidate must also be at least as consistent as that."""
    sheet = reason_sheet(facts)
    pair = facts.customer_vector + facts.product_vector
    pair = pair / (np.linalg.norm(pair) or 1.0)
    best, best_score, record = "", -np.inf if floor is None else floor, []
    for i, text in enumerate(candidates):
        flags = text_checks(text, facts, {}) if text else [{"code": "empty"}]
        blocking = sorted({f["code"] for f in flags if f["code"].startswith(BLOCKING_PREFIXES)})
        if PROMPT_ECHO.search(text):
            blocking.append("prompt_echo")
        named = evidence_named(text, sheet)
        score = float(np.dot(vectors[i], pair)) if vectors is not None and text else None
        passed = bool(text) and not blocking and named
        record.append({"passed": passed, "blocking": blocking, "evidence_named": named, "consistency": score})
        if passed and (score if score is not None else 0.0) >= best_score:
            best, best_score = text, score if score is not None else 0.0
    return best, {"candidates": record}


def consistency_of(vector: np.ndarray, facts: Facts) -> float:
    """The semantic consistency of a text's vector to the customer-product pair (as stored on explanations)."""
    pair = facts.customer_vector + facts.product_vector
    return float(np.dot(vector, pair / (np.linalg.norm(pair) or 1.0)))


def generate_reasons(facts_list: list[Facts]) -> tuple[list[str], dict]:
    """Write one reason per recommendation: several model candidates, each checked and scored, the best
    passing one kept ("" when none passes: the caller keeps the template). Return the texts and the versions.

    With a trained adapter the LM also gets the customer's and the product's soft tokens: the
    embedding itself, not only the facts drawn from it (the ELM idea).
    """
    from explanations.ml.lm import generate_batch, lm_id
    from recommendations.ml.encoder import encode

    adapter = reason_adapter()
    soft = None
    if adapter is not None:
        customers = adapter.soft_tokens(np.stack([f.customer_vector for f in facts_list]).astype(np.float32))
        products = adapter.soft_tokens(np.stack([f.product_vector for f in facts_list]).astype(np.float32))
        soft = [[c, p] for c, p in zip(customers, products, strict=True)]
    prompts = [reason_prompt(f, with_vectors=adapter is not None) for f in facts_list]
    k = max(1, settings.ELM_REASON_CANDIDATES)  # the greedy one, then sampled ones
    rounds = [generate_batch(prompts, soft_tokens=soft, max_new_tokens=settings.ELM_REASON_MAX_TOKENS)]
    for seed in range(1, k):
        rounds.append(generate_batch(prompts, soft_tokens=soft, max_new_tokens=settings.ELM_REASON_MAX_TOKENS,
                                     temperature=SAMPLING_TEMPERATURE, seed=seed * 7919))  # fmt: skip
    per_rec = [[clean_generated(r[i]) for r in rounds] for i in range(len(facts_list))]
    # The template is the candidate to beat: a model text is kept only when at least as consistent.
    flat = [t or "." for texts in per_rec for t in texts] + [template_reason(f) for f in facts_list]
    encoded = encode(flat)
    vectors = encoded[: len(facts_list) * k].reshape(len(facts_list), k, -1)
    chosen = [
        choose_candidate(
            texts, facts, vectors=vectors[i], floor=consistency_of(encoded[len(facts_list) * k + i], facts)
        )[0]
        for i, (texts, facts) in enumerate(zip(per_rec, facts_list, strict=True))
    ]
    return chosen, {"lm": lm_id(), "adapter": adapter.version if adapter else "", "candidates": k}


# --------------------------------------------------------------------------- checks


@cache
def catalogue_vocabulary() -> frozenset[str]:
    """Return the catalogue's product words, built once per worker process."""
    from explanations.checks import build_vocabulary

    return build_vocabulary(Product.objects.exclude(description="").values_list("description", flat=True))


def source_id_flags(text: str, pseudonym: str) -> list:
    """Flag any number in the text whose pseudonym is this customer's: its own source id, never stored."""
    from core.pseudonyms import pseudonym_key, pseudonymize
    from explanations.checks import ERROR, Flag

    key = pseudonym_key()
    return [
        Flag("pii:source_id", "The customer's own source id appears in the text.", m.start(), m.end(), m.group(), ERROR)
        for m in re.finditer(r"(?<!\d)\d{4,7}(?!\d)", text)
        if pseudonymize(m.group(), key=key) == pseudonym
    ]


def text_checks(text: str, facts: Facts, attributions: dict, *, template: str = "") -> list[dict]:
    """Run the automatic checks (PII, policy terms, hallucinated entities, claims, length) on a reason."""
    from explanations.checks import Evidence as CheckEvidence
    from explanations.checks import check_text
    from explanations.selectors import policy_term_list

    highlighted = [
        w
        for w, share in zip(attributions.get("words", []), attributions.get("normalized", []), strict=False)
        if share > 0.1
    ]
    sheet = reason_sheet(facts)
    evidence = CheckEvidence(
        recommended=facts.recommendation.product.description,
        evidence_products=[r["description"] for r in facts.evidence_rows if r.get("product_id")],
        concepts=[c["concept"] for c in facts.concepts if c["shared"]],
        highlighted_words=highlighted,
        # The template and the fact lines are built from the evidence: their wording and numbers are supported.
        extra=[template, *_fact_lines(sheet)],
        vocabulary=catalogue_vocabulary(),
    )
    # The admin-edited term list (seeded with the defaults), cached until it changes.
    flags = [f.as_dict() for f in check_text(text, evidence=evidence, terms=policy_term_list())]
    flags += [f.as_dict() for f in source_id_flags(text, facts.recommendation.customer.pseudonym)]
    if text and text.strip():
        flags += claim_flags(text, sheet)
    return sorted(flags, key=lambda f: (f["start"], f["end"], f["code"]))
