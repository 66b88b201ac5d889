"""Build and store the explanation of recommendations: evidence first, words last.

Everything numeric (evidence shares, necessity, concept sensitivities, word attributions,
confidence) is computed here from the same vectors that produced the score. The language model
only phrases those facts; its text is checked and measured, and a template reason built from the
same evidence always exists as the fallback and the reviewer's reference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.db import transaction

from explanations.models import Concept, ConfidenceCalibration, CustomerConcept, Explanation
from explanations.services.evidence import (
    NECESSITY_REMOVE,
    TOP_EVIDENCE,
    Evidence,
    counterfactual_vector,
    decompose,
    hybrid_evidence,
)
from explanations.services.localized import localized_reasons_record, other_languages
from explanations.services.reasons import (  # noqa: F401  (the reason writing lives there; names kept for callers)
    adapter_reads_vectors,
    catalogue_vocabulary,
    clean_generated,
    generate_reasons,
    reason_prompt,
    reason_sheet,
    source_id_flags,
    template_reason,
    text_checks,
)
from explanations.services.review import explanation_record_generated
from recommendations import profile
from recommendations.models import Product, Recommendation
from recommendations.services.production import HYBRID
from recommendations.services.recommend import configure_search, product_search, recently_bought
from recommendations.vectors import fetch_vectors

logger = logging.getLogger(__name__)

MIN_SHARED_CONCEPT_SCORE = 0.5
# The item must point along the concept: cos(CAV, item) above this (random directions give ~N(0, 0.05)).
MIN_SHARED_SENSITIVITY = 0.1


@dataclass
class Facts:
    """Everything computed for one recommendation before any text is written."""

    recommendation: Recommendation
    customer_vector: np.ndarray
    product_vector: np.ndarray
    evidence: Evidence
    evidence_rows: list[dict]
    residual: float
    necessity: dict
    concepts: list[dict]


@dataclass
class CustomerProfile:
    """A customer's purchase weights and the vectors and names of the products involved."""

    weights: list
    vectors: dict[int, np.ndarray]
    names: dict[int, tuple[str, str]]


def customer_profile(customer_id: int, product_ids: set[int], *, reference) -> CustomerProfile:
    """Load what every explanation of this customer needs, once (a shard holds several of its items)."""
    weights = profile.purchase_weights([customer_id], reference=reference).get(customer_id, [])
    wanted = {pw.product_id for pw in weights} | product_ids
    vectors = {pid: v.astype(np.float64) for pid, v in fetch_vectors(Product._meta.db_table, wanted).items()}
    names = {pid: (code, desc) for pid, code, desc in Product.objects.filter(pk__in=wanted).values_list(
        "id", "stock_code", "description")}  # fmt: skip
    return CustomerProfile(weights, vectors, names)


def explanation_facts(
    *, recommendation: Recommendation, reference=None, loaded: CustomerProfile | None = None
) -> Facts:
    """Compute evidence, necessity and shared concepts for one recommendation."""
    customer = recommendation.customer
    product = recommendation.product
    reference = reference or profile.reference_time()
    loaded = loaded or customer_profile(customer.pk, {product.pk}, reference=reference)
    weights, vectors, names = loaded.weights, loaded.vectors, loaded.names
    v_i = vectors[product.pk]
    c_vec = np.asarray(customer.embedding, dtype=np.float64)
    necessity = None
    if recommendation.batch.recommender == HYBRID:
        # The hybrid's own exact decomposition (+ a popularity base term) and its own counterfactual re-rank.
        evidence, necessity = hybrid_evidence(recommendation, reference=reference)
        missing = {e.product_id for e in evidence.items} - set(names)
        names = {**names, **{pid: (code, desc) for pid, code, desc in Product.objects.filter(pk__in=missing)
                             .values_list("id", "stock_code", "description")}}  # fmt: skip
    else:
        evidence = decompose(weights, vectors, v_i)
    evidence_rows = [
        {
            "product_id": e.product_id,
            "stock_code": names[e.product_id][0],
            "description": names[e.product_id][1],
            "weight": round(e.weight, 6),
            "share": e.share,
        }
        for e in evidence.top(TOP_EVIDENCE)
    ]
    rest = evidence.rest_share(TOP_EVIDENCE)
    if len(evidence.items) > TOP_EVIDENCE:
        evidence_rows.append({"product_id": None, "description": "other purchases", "share": rest,
                              "count": len(evidence.items) - TOP_EVIDENCE})  # fmt: skip
    if evidence.base:
        evidence_rows.append({"product_id": None, "kind": "popularity", "share": evidence.base,
                              "description": "popular with all customers (not personal)"})  # fmt: skip
    return Facts(
        recommendation=recommendation,
        customer_vector=c_vec,
        product_vector=v_i,
        evidence=evidence,
        evidence_rows=evidence_rows,
        residual=float(recommendation.score - evidence.score),
        necessity=necessity or _necessity(recommendation, weights, vectors, evidence, reference),
        concepts=_shared_concepts(customer.pk, v_i),
    )


def _necessity(recommendation, weights, vectors, evidence: Evidence, reference) -> dict:
    """CountER-style check: without the top evidence purchases, is the item still in the top-N?"""
    removed = [e.product_id for e in evidence.top(NECESSITY_REMOVE)]
    top_n = int(recommendation.batch.params.get("top_n", settings.ELM_RECOMMENDATIONS_PER_CUSTOMER))
    cf = counterfactual_vector(weights, vectors, set(removed))
    if cf is None:
        return {"removed": removed, "drops_out": True, "new_rank": None, "counterfactual_score": None,
                "note": "nothing left in the profile without them"}  # fmt: skip
    since = reference - timedelta(days=int(recommendation.batch.params.get("exclude_days", 90)))
    excluded = recently_bought(customer_ids=[recommendation.customer_id], since=since).get(
        recommendation.customer_id, []
    )
    from django.db import connection

    with transaction.atomic(), connection.cursor() as cur:
        configure_search(cur)
        hits = product_search(vector=cf, excluded=excluded, top_n=top_n, cursor=cur)
    ranked = [pid for pid, _ in hits]
    new_rank = ranked.index(recommendation.product_id) + 1 if recommendation.product_id in ranked else None
    cf_score = float(
        np.dot(cf, vectors[recommendation.product_id] / np.linalg.norm(vectors[recommendation.product_id]))
    )
    return {"removed": removed, "drops_out": new_rank is None, "new_rank": new_rank, "counterfactual_score": cf_score}


def _shared_concepts(customer_id: int, item_vector: np.ndarray) -> list[dict]:
    """Concepts the customer scores high on and the item points along (positive directional sensitivity)."""
    out = []
    scores = {
        cc.concept_id: cc
        for cc in CustomerConcept.objects.filter(customer_id=customer_id, concept__usable=True, concept__is_active=True)
    }
    for concept in Concept.objects.filter(pk__in=scores, cav__isnull=False):
        cc = scores[concept.pk]
        sensitivity = float(np.dot(np.asarray(concept.cav, dtype=np.float64), item_vector))
        shared = cc.score >= MIN_SHARED_CONCEPT_SCORE and sensitivity >= MIN_SHARED_SENSITIVITY
        out.append({"concept": concept.name, "customer_score": cc.score, "low": cc.low, "high": cc.high,
                    "sensitivity": sensitivity, "shared": shared})  # fmt: skip
    out.sort(key=lambda c: (not c["shared"], -c["sensitivity"] * c["customer_score"]))
    return out


def latest_calibration(recommender: str | None = None) -> ConfidenceCalibration | None:
    """Return the newest calibration (of ``recommender``'s scores when given: scales differ by model)."""
    from explanations.selectors import calibration_latest

    return calibration_latest(recommender=recommender)


# --------------------------------------------------------------------------- batch generation


def sig_version() -> str:
    """Return the version tag of the word attributions the settings produce."""
    if settings.ELM_SIG_METHOD == "exact":
        return "sig-exact"
    return f"sig-{settings.ELM_SIG_STEPS}-{settings.ELM_SIG_METHOD}"


def explanations_generate(
    *, recommendation_ids: list[int], use_lm: bool = True, fall_back_on_lm_error: bool = True
) -> int:
    """Write the reasons of the given recommendations over their stored numbers (computed first where missing).

    Idempotent: an existing reason is replaced. The numbers (evidence, necessity, concepts, word
    attributions, confidence) come from ``explain_numbers`` (explanations.services.numbers); only a
    quadrature SIG setting recomputes the product's word attributions here (those depend on the customer).
    When the LM fails, ``fall_back_on_lm_error`` keeps the template reason (flagged with the error);
    otherwise the error propagates and nothing is written, so the job's shard is retried with backoff.
    """
    from explanations.ml.sig import sig_word_attributions
    from explanations.services.numbers import explanation_numbers_compute
    from recommendations.ml.encoder import encode

    if use_lm and not fall_back_on_lm_error:
        from explanations.ml.lm import get_lm

        get_lm()  # an LM that cannot load fails this attempt now, before any other work is spent on it
    explanation_numbers_compute(recommendation_ids=recommendation_ids)
    recs = list(
        Recommendation.objects.filter(pk__in=recommendation_ids, explanation__versions__has_key="numbers")
        .select_related("customer", "product", "batch", "explanation")
        .order_by("customer_id", "rank")
    )
    if not recs:
        return 0
    sig_options = {"steps": settings.ELM_SIG_STEPS, "method": settings.ELM_SIG_METHOD}
    vectors = fetch_vectors(Product._meta.db_table, {r.product_id for r in recs})
    prepared = []
    for rec in recs:
        stored = rec.explanation
        facts = Facts(
            recommendation=rec,
            customer_vector=np.asarray(rec.customer.embedding, dtype=np.float64),
            product_vector=vectors[rec.product_id].astype(np.float64),
            evidence=Evidence(score=rec.score - stored.evidence_residual, items=[], norm=0.0),
            evidence_rows=stored.evidence,
            residual=stored.evidence_residual,
            necessity=stored.necessity,
            concepts=stored.concepts,
        )
        attributions = dict(stored.word_attributions or {})
        if settings.ELM_SIG_METHOD != "exact":
            attributions["product"] = sig_word_attributions(
                rec.product.description, facts.customer_vector, **sig_options
            ).as_dict()
        # The fact-sentence template (explanations.services.reasons) over the customer's own order facts; the
        # numbers pass stored a template for every recommendation, this one is what the model must beat.
        if stored.reason_facts:
            # The numbers pass built this sheet for the whole shard from the same evidence and concepts
            # (explanations.services.sheets): reuse it instead of querying it again per recommendation.
            facts._reason_sheet = stored.reason_facts
        prepared.append((facts, attributions, template_reason(facts)))
    reasons: list[str | None] = [None] * len(prepared)
    lm_error = ""
    model_versions = {"lm": "", "adapter": ""}
    if use_lm:
        try:
            texts, model_versions = generate_reasons([f for f, _, _ in prepared])
            reasons = [t or None for t in texts]
        except Exception as exc:  # the template reason still serves; the failure is recorded
            if not fall_back_on_lm_error:
                raise
            logger.exception("reason generation failed")
            lm_error = f"{type(exc).__name__}: {exc}"
    texts = [reason or template for reason, (_, _, template) in zip(reasons, prepared, strict=True)]
    text_vectors = encode(texts)
    with transaction.atomic():
        for (facts, attributions, template), reason, text, tv in zip(
            prepared, reasons, texts, text_vectors, strict=True
        ):
            explanation = facts.recommendation.explanation
            pair = facts.customer_vector + facts.product_vector
            pair /= np.linalg.norm(pair)
            flags = text_checks(text, facts, attributions.get("product") or {}, template=template)
            if reason is None:
                message = lm_error or "No model candidate passed the checks."
                flags.append({"code": "template_fallback", "message": message,
                              "start": 0, "end": 0, "text": "", "severity": "warning"})  # fmt: skip
            explanation.word_attributions = attributions
            explanation.reason_text = text
            explanation.template_text = template
            explanation.reason_facts = reason_sheet(facts)
            explanation.consistency = float(np.dot(tv, pair))
            explanation.flags = flags
            explanation.versions = {**explanation.versions, "sig": sig_version(), **model_versions}
            explanation.error = lm_error
            explanation.save(update_fields=["word_attributions", "reason_text", "template_text", "reason_facts",
                                            "consistency", "flags", "versions", "error", "generated_at"])  # fmt: skip
            # The status is the review workflow's: a new text starts over as "generated", and
            # explanation_record_generated moves the checked text on to "pending_review".
            explanation_record_generated(explanation=explanation)
            # The other languages' reason: the template in that language, reviewed on its own.
            localized_reasons_record(
                explanation=explanation,
                templates={lang: template_reason(facts, lang=lang) for lang in other_languages()},
            )
    return len(recs)


def explanations_mark_failed(*, recommendation_ids: list[int], error: str) -> None:
    """Mark these recommendations' explanations failed with ``error`` (a shard failed for good after its
    retries); complete explanations are kept, and a missing one is stored as a failed row."""
    message = error[:4000]
    with transaction.atomic():
        Explanation.objects.filter(recommendation_id__in=recommendation_ids, status=Explanation.Status.FAILED).update(
            error=message
        )
        # Numbers without a reason yet (explain_numbers wrote them): failed too, numbers kept for the retry.
        Explanation.objects.filter(
            recommendation_id__in=recommendation_ids, status=Explanation.Status.GENERATED, reason_text=""
        ).update(status=Explanation.Status.FAILED, error=message)
        have = set(
            Explanation.objects.filter(recommendation_id__in=recommendation_ids).values_list(
                "recommendation_id", flat=True
            )
        )
        Explanation.objects.bulk_create(
            [
                Explanation(recommendation_id=i, status=Explanation.Status.FAILED, error=message)
                for i in recommendation_ids
                if i not in have
            ],
            ignore_conflicts=True,
        )
