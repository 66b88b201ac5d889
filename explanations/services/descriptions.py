"""Customer descriptions: each customer's embedding said in words, checked, then reviewed.

When an ELM adapter has met issue 18's goals on held-out customers (``manage.py elm_evaluate``: it reads the
vector rather than guessing), it turns the customer's vector into soft tokens and the LM writes the
description from them together with the customer's purchase facts, with the decoding method that met the
goals. Otherwise (no adapter, or one that does not read vectors well enough: docs/elm.md) the deterministic
profile built from the purchase facts is used, and the page says so. Every text is checked (PII, policy
terms, named products that the facts do not hold) and waits for a reviewer before sales see it.
"""

from __future__ import annotations

import numpy as np
from django.db import transaction
from django.utils import timezone

from core.audit import audit_record
from explanations.models import CustomerDescription
from recommendations.models import Customer

REVIEW_ACTIONS = {"approve": CustomerDescription.Status.APPROVED, "reject": CustomerDescription.Status.REJECTED}


class DescriptionReviewError(ValueError):
    """A review action that the description's state does not allow."""


def _facts_for(customer_ids: list[int]) -> dict:
    """Return CustomerFacts per customer id, computed against the whole catalogue's price level."""
    from explanations.ml.profiles import facts_from_lines
    from explanations.services.elm_training import purchase_lines

    # The price level is relative to the catalogue median, so the facts need every customer's lines.
    wanted = set(customer_ids)
    return {cid: f for cid, f in facts_from_lines(purchase_lines()).items() if cid in wanted}


def reading_adapter():
    """Return (adapter, decoding method) when the current adapter met the held-out goals, else (None, None)."""
    from explanations.ml import elm
    from explanations.ml.elm.metrics import decoding_that_reads

    try:
        artifact = elm.get_adapter()
    except FileNotFoundError:
        return None, None
    method = decoding_that_reads(artifact.metrics)
    return (artifact, method) if method else (None, None)


def _checks(text: str, facts, reference: str, pseudonym: str) -> list[dict]:
    from explanations.checks import Evidence, check_text
    from explanations.ml.profiles import facts_prompt
    from explanations.selectors import policy_term_list
    from explanations.services.reasons import catalogue_vocabulary, source_id_flags

    evidence = Evidence(
        recommended="",
        evidence_products=[d for d, _ in facts.top_products],
        concepts=[c for c, _ in facts.top_categories],
        highlighted_words=[],
        # The reference text and the facts line the LM was given: their wording and numbers are supported.
        extra=[reference, facts_prompt(facts)],
        vocabulary=catalogue_vocabulary(),
    )
    flags = check_text(text, evidence=evidence, terms=policy_term_list()) + source_id_flags(text, pseudonym)
    return [f.as_dict() for f in flags]


def customer_descriptions_generate(*, customer_ids: list[int], max_new_tokens: int = 60) -> int:
    """Describe the given customers (idempotent: a customer's description is replaced and re-reviewed)."""
    from explanations.ml import elm
    from explanations.ml.profiles import customer_profile_text, facts_prompt
    from explanations.services.reasons import clean_generated
    from recommendations.ml.encoder import encoder_version
    from recommendations.vectors import fetch_vectors

    vectors = fetch_vectors(Customer._meta.db_table, customer_ids)
    facts = _facts_for(customer_ids)
    ids = [cid for cid in customer_ids if cid in vectors and cid in facts]
    if not ids:
        return 0
    customers = Customer.objects.in_bulk(ids)
    matrix = np.stack([vectors[cid] for cid in ids]).astype(np.float32)
    references = [customer_profile_text(facts[cid]) for cid in ids]
    artifact, method_name = reading_adapter()
    if artifact is not None:
        from explanations.ml.elm.decoding import decode_by
        from explanations.ml.lm import lm_id

        raw = decode_by(
            method_name, matrix, evidence_prompt=[facts_prompt(facts[cid]) for cid in ids], artifact=artifact,
            max_new_tokens=max_new_tokens,
        )  # fmt: skip
        texts = [clean_generated(t) or ref for t, ref in zip(raw, references, strict=True)]
        method = CustomerDescription.Method.ELM_GROUNDED
        versions = {"adapter": artifact.version, "lm": lm_id(), "decoding": method_name}
    else:
        texts, method, versions = references, CustomerDescription.Method.TEMPLATE, {"adapter": "", "lm": ""}
    sc = elm.semantic_consistency(texts, matrix)
    sc_reference = elm.semantic_consistency(references, matrix)
    versions["encoder"] = encoder_version()
    now = timezone.now()
    with transaction.atomic():
        for i, cid in enumerate(ids):
            customer = customers[cid]
            description, created = CustomerDescription.objects.update_or_create(
                customer=customer,
                defaults={
                    "text": texts[i],
                    "reference_text": references[i],
                    "method": method,
                    "consistency": float(sc[i]),
                    "reference_consistency": float(sc_reference[i]),
                    "flags": _checks(texts[i], facts[cid], references[i], customer.pseudonym),
                    "versions": {**versions, "customer_input_hash": customer.embedding_input_hash},
                    "reviewed_by": None,
                    "reviewed_at": None,
                    "generated_at": now,
                },
            )
            if not created and description.status != CustomerDescription.Status.PENDING_REVIEW:
                description.resubmit()  # a new text is reviewed again, whatever the old one's verdict
                description.save(update_fields=["status"])
    return len(ids)


def customers_to_describe(*, customers: int | None = None) -> list[int]:
    """Return ids of embedded customers without a description or with one made from an older vector."""
    qs = Customer.objects.filter(embedding__isnull=False).order_by("-order_count", "id")
    if customers:
        qs = qs[:customers]
    rows = qs.values_list("id", "embedding_input_hash", "description__versions")
    return [
        cid for cid, input_hash, versions in rows if not versions or versions.get("customer_input_hash") != input_hash
    ]


def customer_description_review(
    *, description: CustomerDescription, reviewer, action: str, comment: str = ""
) -> CustomerDescription:
    """Approve or reject a pending description, with the audit record in the same transaction."""
    if action not in REVIEW_ACTIONS:
        raise DescriptionReviewError(f"unknown action {action!r}; use one of {sorted(REVIEW_ACTIONS)}")
    with transaction.atomic():
        locked = CustomerDescription.objects.select_for_update().get(pk=description.pk)
        if locked.status != CustomerDescription.Status.PENDING_REVIEW:
            raise DescriptionReviewError(
                f"this description is {locked.get_status_display().lower()}, not pending review"
            )
        before = locked.status
        getattr(locked, action)()  # the transition: approve or reject
        locked.reviewed_by = reviewer
        locked.reviewed_at = timezone.now()
        locked.save(update_fields=["status", "reviewed_by", "reviewed_at"])
        audit_record(
            actor=reviewer,
            action=f"customer_description.{action}",
            object_type="explanations.customerdescription",
            object_ref=locked.pk,
            detail={"from": before, "to": locked.status, "comment": comment[:1000]},
        )
    return locked
