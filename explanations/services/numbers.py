"""The numbers of every recommendation, at batch speed: evidence, families, necessity, concepts, words, confidence.

The ``explain_numbers`` step runs this over the whole active batch before any text is written: one pass
per shard loads the batch model's arrays, computes every recommendation's numbers with numpy
(:mod:`~explanations.services.evidence_batch`, :mod:`~explanations.services.families`,
:mod:`~explanations.services.word_cache`) and writes them with ``bulk_create`` in one transaction. A
recommendation whose explanation already holds numbers (``versions["numbers"]``) is skipped, so a rerun
or a redelivered shard does nothing twice. The template reason is written with the numbers, so every
card has a reason to show; the ``explain`` step only adds the language model's text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
from django.db import connection, transaction

from explanations.models import Concept, CustomerConcept, Explanation
from explanations.services.evidence import NECESSITY_REMOVE, TOP_EVIDENCE, Evidence
from explanations.services.evidence_batch import (
    BatchArrays,
    EvidenceArrays,
    NecessityArrays,
    ScoringModel,
    batch_arrays,
    evidence_arrays,
    necessity_arrays,
    scoring_model,
    top_pairs,
    triples_matrix,
)
from explanations.services.families import Families, Groups, co_buyer_counts, group_evidence, product_families
from recommendations import profile
from recommendations.models import Customer, Product, Recommendation
from recommendations.vectors import fetch_vectors

NUMBERS_VERSION = "numbers-v1"
MIN_SHARED_CONCEPT_SCORE = 0.5
# The item must point along the concept: cos(CAV, item) above this (random directions give ~N(0, 0.05)).
MIN_SHARED_SENSITIVITY = 0.1


@dataclass
class Catalogue:
    """What every shard of a batch shares: the model, product names and vectors, families, co-buyer counts."""

    key: tuple
    model: ScoringModel
    codes: list[str]  # per model column
    descriptions: list[str]  # per model column
    vectors: dict[int, np.ndarray]  # product id -> stored vector (float64)
    families: Families
    co_counts: object  # scipy sparse items x items


_catalogue: list[Catalogue] = []  # one batch per process: the model is ~100 MB


def catalogue_for(batch) -> Catalogue:
    """Return the batch's shared arrays, loaded once per worker process."""
    key = (batch.pk, batch.model_version)
    if _catalogue and _catalogue[0].key == key:
        return _catalogue[0]
    model = scoring_model(batch)
    names = dict(Product.objects.values_list("id", "stock_code"))
    descriptions = dict(Product.objects.values_list("id", "description"))
    ids = model.product_ids.tolist()
    codes = [names.get(pid, "") for pid in ids]
    texts = [descriptions.get(pid, "") for pid in ids]
    with connection.cursor() as cur:
        cur.execute(
            "SELECT DISTINCT customer_id, product_id FROM recommendations_purchase "
            "WHERE kind = 'sale' AND customer_id IS NOT NULL"
        )
        pairs = np.array(cur.fetchall(), dtype=np.int64).reshape(-1, 2)
    customers = np.unique(pairs[:, 0])
    buyers = triples_matrix(model, customers, pairs[:, 0], pairs[:, 1], np.ones(len(pairs)))
    vectors = {pid: v.astype(np.float64) for pid, v in fetch_vectors(Product._meta.db_table).items()}
    found = Catalogue(
        key, model, codes, texts, vectors, product_families(codes, texts, model.targets), co_buyer_counts(buyers)
    )
    _catalogue[:] = [found]
    return found


def _title(description: str) -> str:
    text = " ".join(description.split()).strip(" .")
    return text[:1].upper() + text[1:].lower() if text else text


def _evidence_rows(cat: Catalogue, evidence: EvidenceArrays) -> list[list[dict]]:
    """Today's evidence rows: the top purchases, the rest in one row, the popularity term."""
    rows: list[list[dict]] = [[] for _ in evidence.base]
    ids = cat.model.product_ids
    for i in top_pairs(evidence, TOP_EVIDENCE).tolist():
        col = int(evidence.col[i])
        rows[int(evidence.rec[i])].append(
            {
                "product_id": int(ids[col]),
                "stock_code": cat.codes[col],
                "description": cat.descriptions[col],
                "weight": round(float(evidence.weight[i]), 6),
                "share": float(evidence.share[i]),
            }
        )
    counts = np.diff(evidence.start)
    top = top_pairs(evidence, TOP_EVIDENCE)
    top_sum = np.bincount(evidence.rec[top], weights=evidence.share[top], minlength=len(counts))
    for r in np.flatnonzero(counts > TOP_EVIDENCE).tolist():
        rest = float(evidence.score[r] - evidence.base[r] - top_sum[r])
        rows[r].append(
            {
                "product_id": None,
                "description": "other purchases",
                "share": rest,
                "count": int(counts[r] - TOP_EVIDENCE),
            }
        )
    for r in np.flatnonzero(evidence.base != 0).tolist():
        rows[r].append(
            {
                "product_id": None,
                "kind": "popularity",
                "share": float(evidence.base[r]),
                "description": "popular with all customers (not personal)",
            }
        )
    return rows


def _group_payloads(cat: Catalogue, groups: Groups, base: np.ndarray) -> list[dict]:
    """The concise evidence of each recommendation: at most five lines whose shares sum to the score."""
    lines: list[list[dict]] = [[] for _ in base]
    ids = cat.model.product_ids
    for i in range(len(groups.rec)):
        col, fam = int(groups.top_col[i]), int(groups.family[i])
        line = {
            "kind": str(groups.kind[i]),
            "product_id": int(ids[col]),
            "stock_code": cat.codes[col],
            "description": cat.descriptions[col],
            "family": cat.families.names[fam] if fam >= 0 else "",
            "count": int(groups.count[i]),
            "share": float(groups.share[i]),
        }
        if not np.isnan(groups.co_rate[i]):
            line["co_buyers_rate"] = float(groups.co_rate[i])
            line["co_buyers"] = int(groups.co_buyers[i])
        lines[int(groups.rec[i])].append(line)
    out = []
    for r, rec_lines in enumerate(lines):
        if groups.rest_count[r] > 0:
            rec_lines.append(
                {
                    "kind": "rest",
                    "product_id": None,
                    "count": int(groups.rest_count[r]),
                    "share": float(groups.rest_share[r]),
                    "description": "other purchases",
                }
            )
        if base[r]:
            rec_lines.append(
                {
                    "kind": "popularity",
                    "product_id": None,
                    "share": float(base[r]),
                    "description": "popular with all customers (not personal)",
                }
            )
        coverage = groups.coverage[r]
        out.append(
            {
                "lines": rec_lines,
                "personal": float(groups.personal[r]),
                "coverage": None if np.isnan(coverage) else float(coverage),
            }
        )
    return out


def _necessity(cat: Catalogue, necessity: NecessityArrays) -> list[dict]:
    ids = cat.model.product_ids
    out = []
    for removed, rank, cf in zip(necessity.removed, necessity.new_rank, necessity.counterfactual_score, strict=True):
        row = {
            "removed": [int(ids[c]) for c in removed],
            "drops_out": not rank,
            "new_rank": int(rank) or None,
            "counterfactual_score": None if np.isnan(cf) else float(cf),
        }
        if np.isnan(cf):
            row["note"] = "nothing left in the profile without them"
        out.append(row)
    return out


def _concepts(customer_ids: list[int], item_vectors: np.ndarray) -> list[list[dict]]:
    """Each recommendation's concepts: the customer's scores and the item's sensitivity (cos with the CAV)."""
    concepts = list(
        Concept.objects.filter(usable=True, is_active=True, cav__isnull=False)
        .order_by("name")
        .values_list("id", "name", "cav")
    )
    if not concepts:
        return [[] for _ in customer_ids]
    column = {cid: k for k, (cid, _, _) in enumerate(concepts)}
    cavs = np.stack([np.asarray(cav, dtype=np.float64) for _, _, cav in concepts])
    sensitivity = item_vectors @ cavs.T
    scores: dict[int, list] = {}
    for customer_id, concept_id, score, low, high in CustomerConcept.objects.filter(
        customer_id__in=set(customer_ids), concept_id__in=list(column)
    ).values_list("customer_id", "concept_id", "score", "low", "high"):
        scores.setdefault(customer_id, []).append((column[concept_id], score, low, high))
    out = []
    for r, customer_id in enumerate(customer_ids):
        found = []
        for k, score, low, high in sorted(scores.get(customer_id, [])):
            s = float(sensitivity[r, k])
            found.append(
                {
                    "concept": concepts[k][1],
                    "customer_score": score,
                    "low": low,
                    "high": high,
                    "sensitivity": s,
                    "shared": score >= MIN_SHARED_CONCEPT_SCORE and s >= MIN_SHARED_SENSITIVITY,
                }
            )
        found.sort(key=lambda c: (not c["shared"], -c["sensitivity"] * c["customer_score"]))
        out.append(found)
    return out


def _words(recs, customer_vectors: dict, item_vectors: np.ndarray, evidence_rows: list[list[dict]]) -> list[dict]:
    """Exact SIG word attributions from the cached masked encodings: the product's words against the customer,
    the top evidence purchase's words against the product."""
    from explanations.services.word_cache import attributions, masked_vectors_for
    from recommendations.ml.encoder import encoder_version

    version = encoder_version()
    tops = [next((row for row in rows if row.get("product_id")), None) for rows in evidence_rows]
    masked = masked_vectors_for([r.product.description for r in recs] + [t["description"] for t in tops if t])
    out: list[dict] = [{} for _ in recs]
    by_text: dict[str, list[int]] = {}
    for i, rec in enumerate(recs):
        if rec.customer_id in customer_vectors and rec.product.description in masked:
            by_text.setdefault(rec.product.description, []).append(i)
    for text, members in by_text.items():
        targets = np.stack([customer_vectors[recs[i].customer_id] for i in members])
        for i, found in zip(members, attributions(masked[text], targets, model_version=version), strict=True):
            out[i]["product"] = found
    by_text = {}
    for i, top in enumerate(tops):
        if top and top["description"] in masked:
            by_text.setdefault(top["description"], []).append(i)
    for text, members in by_text.items():
        for i, found in zip(
            members, attributions(masked[text], item_vectors[members], model_version=version), strict=True
        ):
            out[i]["evidence"] = {**found, "product_id": tops[i]["product_id"]}
    return out


def _templates(recs, evidence_rows, concepts, customer_vectors, item_vectors) -> tuple[list[str], list[dict]]:
    """Every recommendation's English template reason and the fact sheet it is written from (one sheet pass
    for the shard: per-recommendation queries would dominate the batch)."""
    from explanations.services.explain import Facts, template_reason
    from explanations.services.sheets import reason_sheets_batch

    facts = [
        Facts(
            rec,
            customer_vectors.get(rec.customer_id),
            item_vectors[i],
            Evidence(rec.score, [], 0.0),
            evidence_rows[i],
            0.0,
            {},
            concepts[i],
        )
        for i, rec in enumerate(recs)
    ]
    sheets = reason_sheets_batch(facts)  # kept on each Facts: template_reason reads it from there
    return [template_reason(f, lang="en") for f in facts], sheets


def explanation_numbers_compute(*, recommendation_ids: list[int]) -> int:
    """Compute and store the numbers of the given recommendations that have none yet; return how many."""
    recs = list(
        Recommendation.objects.filter(pk__in=recommendation_ids)
        .exclude(explanation__versions__has_key="numbers")
        .select_related("product", "batch")
        .defer("product__embedding")  # parsing 384 floats per row costs more than the row's numbers
        .order_by("batch_id", "customer_id", "rank")
    )
    done = 0
    for batch_id in sorted({r.batch_id for r in recs}):
        done += _compute(recs=[r for r in recs if r.batch_id == batch_id])
    return done


def _compute(*, recs: list[Recommendation]) -> int:
    from explanations.services.confidence import confidence_predict
    from explanations.services.explain import latest_calibration
    from recommendations.ml.encoder import encoder_version

    batch = recs[0].batch
    cat = catalogue_for(batch)
    arrays: BatchArrays = batch_arrays(
        batch, [(r.customer_id, r.product_id) for r in recs], model=cat.model, reference=profile.reference_time()
    )
    evidence = evidence_arrays(arrays)
    necessity = _necessity(cat, necessity_arrays(arrays, evidence, removed_count=NECESSITY_REMOVE))
    groups = _group_payloads(cat, group_evidence(evidence, arrays.target, cat.families, cat.co_counts), evidence.base)
    evidence_rows = _evidence_rows(cat, evidence)
    customer_vectors = {
        cid: v.astype(np.float64)
        for cid, v in fetch_vectors(Customer._meta.db_table, {r.customer_id for r in recs}).items()
    }
    missing = np.zeros(cat.model.vectors.shape[1])  # a product without a description vector
    item_vectors = np.stack([cat.vectors.get(r.product_id, missing) for r in recs])
    concepts = _concepts([r.customer_id for r in recs], item_vectors)
    words = _words(recs, customer_vectors, item_vectors, evidence_rows)
    confidence = confidence_predict(recommendations=recs)
    templates, sheets = _templates(recs, evidence_rows, concepts, customer_vectors, item_vectors)
    calibration = latest_calibration(batch.recommender)
    versions = {
        "numbers": NUMBERS_VERSION,
        "encoder": encoder_version(),
        "recommender": batch.model_version,
        "sig": "sig-exact",
        "calibration": calibration.pk if calibration else None,
    }
    existing = {e.recommendation_id: e for e in Explanation.objects.filter(recommendation__in=recs)}
    new, changed = [], []
    for i, rec in enumerate(recs):
        fields = {
            "evidence": evidence_rows[i],
            "evidence_groups": groups[i],
            "evidence_residual": float(rec.score - evidence.score[i]),
            "necessity": necessity[i],
            "concepts": concepts[i],
            "word_attributions": words[i],
            "template_text": templates[i],
            "reason_facts": sheets[i],
            "confidence": confidence[i],
        }
        explanation = existing.get(rec.pk)
        if explanation is None:
            new.append(Explanation(recommendation_id=rec.pk, versions=versions, **fields))
            continue
        for name, value in fields.items():
            setattr(explanation, name, value)
        explanation.versions = {**(explanation.versions or {}), **versions}
        changed.append(explanation)
    with transaction.atomic():
        _copy_new(new)
        Explanation.objects.bulk_update(changed, [*fields, "versions"], batch_size=1000)
    return len(recs)


COPY_COLUMNS = (
    "recommendation_id", "status", "evidence", "evidence_groups", "evidence_residual", "necessity", "concepts",
    "word_attributions", "reason_text", "template_text", "reason_facts", "confidence", "flags", "versions", "error",
    "generated_at",
)  # fmt: skip
JSON_COLUMNS = {
    "evidence", "evidence_groups", "necessity", "concepts", "word_attributions", "reason_facts", "flags", "versions",
}  # fmt: skip


def _copy_new(explanations: list[Explanation]) -> None:
    """Insert new explanation rows with one COPY (bulk_create quotes every JSON value in Python: ~10x slower)."""
    import psycopg
    from django.utils import timezone

    if not explanations:
        return
    now = timezone.now()
    connection.ensure_connection()
    table = Explanation._meta.db_table
    sql = f"COPY {table} ({', '.join(COPY_COLUMNS)}) FROM STDIN"
    with psycopg.Cursor(connection.connection) as cur, cur.copy(sql) as copy:
        for e in explanations:
            e.generated_at = now
            copy.write_row(
                [
                    json.dumps(getattr(e, c), allow_nan=False) if c in JSON_COLUMNS else getattr(e, c)
                    for c in COPY_COLUMNS
                ]
            )
