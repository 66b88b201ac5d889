"""Concept labels from real purchase behaviour, CAV training and per-customer concept scores."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np
from django.db import connection, transaction
from django.utils import timezone

from explanations.ml import cav as cav_ml
from explanations.models import Concept, CustomerConcept
from recommendations import profile
from recommendations.models import Customer
from recommendations.vectors import fetch_vectors

IGNORE = -1  # neither clearly in nor clearly out of the concept: left out of training


@dataclass
class BehaviourStats:
    customer_ids: np.ndarray
    median_line_qty: np.ndarray
    q4_order_share: np.ndarray
    price_ratio: np.ndarray
    orders: np.ndarray
    days_since_last: np.ndarray


def behaviour_stats(customer_ids: list[int]) -> BehaviourStats:
    """Return per-customer behaviour figures used by the labelling rules, in ``customer_ids`` order."""
    reference = profile.reference_time()
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT p.customer_id,
                   percentile_cont(0.5) WITHIN GROUP (ORDER BY p.quantity),
                   count(DISTINCT p.invoice) FILTER (WHERE extract(month FROM p.occurred_at) >= 10)::float
                       / greatest(count(DISTINCT p.invoice), 1),
                   avg(p.unit_price / NULLIF(pr.price_median, 0)),
                   count(DISTINCT p.invoice),
                   extract(epoch FROM (%s - max(p.occurred_at))) / 86400
            FROM recommendations_purchase p JOIN recommendations_product pr ON pr.id = p.product_id
            WHERE p.kind = 'sale' AND p.customer_id = ANY(%s)
            GROUP BY p.customer_id
            """,
            [reference, customer_ids],
        )
        rows = {r[0]: r[1:] for r in cur.fetchall()}
    ids = [cid for cid in customer_ids if cid in rows]
    cols = list(zip(*(rows[cid] for cid in ids), strict=True)) if ids else [[]] * 5
    as_array = [np.asarray([float(v or 0) for v in col], dtype=np.float64) for col in cols]
    return BehaviourStats(np.asarray(ids), *as_array)


def seed_share(customer_ids: list[int], phrases: list[str], *, weights=None) -> dict[int, float]:
    """Return, per customer, the share of its purchase weight on products matching any seed phrase."""
    if weights is None:
        weights = profile.purchase_weights(customer_ids, reference=profile.reference_time())
    pattern = re.compile(r"\b(" + "|".join(re.escape(p.strip()) for p in phrases if p.strip()) + r")", re.IGNORECASE)
    product_ids = {pw.product_id for ws in weights.values() for pw in ws}
    with connection.cursor() as cur:
        cur.execute("SELECT id, description FROM recommendations_product WHERE id = ANY(%s)", [list(product_ids)])
        matches = {pid for pid, desc in cur.fetchall() if pattern.search(desc or "")}
    out = {}
    for cid in customer_ids:
        ws = weights.get(cid, [])
        total = sum(pw.weight for pw in ws)
        out[cid] = sum(pw.weight for pw in ws if pw.product_id in matches) / total if total else 0.0
    return out


def _by_quantile(values: np.ndarray, top: float) -> np.ndarray:
    """Label the top quantile 1, the bottom half 0, and the ambiguous middle IGNORE."""
    hi, mid = np.quantile(values, top), np.quantile(values, 0.5)
    labels = np.full(len(values), IGNORE)
    labels[values >= hi] = 1
    labels[values <= mid] = 0
    return labels


def concept_labels(concept: Concept, stats: BehaviourStats, *, weights=None) -> np.ndarray:
    """Return 1 (in), 0 (out) or IGNORE for each customer in ``stats`` under the concept's rule."""
    r = Concept.Rule
    t = concept.threshold
    if concept.rule == r.BULK_BUYER:
        return _by_quantile(stats.median_line_qty, t or 0.75)
    if concept.rule == r.FREQUENT:
        return _by_quantile(stats.orders, t or 0.75)
    if concept.rule == r.SEASONAL:
        enough = stats.orders >= 2
        labels = np.where(stats.q4_order_share >= (t or 0.6), 1, 0)
        return np.where(enough, labels, IGNORE)
    if concept.rule == r.PRICE_SENSITIVE:
        return np.where(stats.price_ratio <= (t or 0.9), 1, np.where(stats.price_ratio >= 1.0, 0, IGNORE))
    if concept.rule == r.LAPSED:
        return np.where(stats.days_since_last >= (t or 90), 1, 0)
    if concept.rule == r.SEED_PHRASES:
        shares = seed_share(list(stats.customer_ids), concept.seed_phrases.splitlines(), weights=weights)
        values = np.asarray([shares[int(cid)] for cid in stats.customer_ids])
        if t:
            return np.where(values >= t, 1, np.where(values == 0, 0, IGNORE))
        return _by_quantile(values, 0.75)
    raise ValueError(f"unknown rule {concept.rule}")


def concepts_train(*, seed: int = 0) -> dict[str, dict]:
    """Train a CAV for every active concept, store it, and score every embedded customer."""
    vectors = fetch_vectors(Customer._meta.db_table)
    if not vectors:
        return {}
    stats = behaviour_stats(list(vectors))
    x_all = np.stack([vectors[int(cid)] for cid in stats.customer_ids])
    version = f"cav-logreg-v1-seed{seed}-n{len(x_all)}"
    report = {}
    # Purchase weights are shared by every seed-phrase concept: compute them once.
    weights = profile.purchase_weights([int(c) for c in stats.customer_ids], reference=profile.reference_time())
    for concept in Concept.objects.filter(is_active=True):
        labels = concept_labels(concept, stats, weights=weights)
        keep = labels != IGNORE
        try:
            result = cav_ml.train_cav(x_all[keep], labels[keep], seed=seed)
        except ValueError as exc:
            Concept.objects.filter(pk=concept.pk).update(usable=False, auc=None, trained_at=timezone.now())
            report[concept.name] = {"error": str(exc)}
            continue
        score, low, high = cav_ml.concept_scores(x_all, result)
        with transaction.atomic():
            Concept.objects.filter(pk=concept.pk).update(
                cav=result.direction.tolist(),
                cav_bias=result.bias,
                auc=result.auc,
                auc_low=result.auc_low,
                accuracy=result.accuracy,
                positives=result.positives,
                negatives=result.negatives,
                usable=result.usable,
                version=version,
                trained_at=timezone.now(),
            )
            CustomerConcept.objects.filter(concept=concept).delete()
            CustomerConcept.objects.bulk_create(
                [
                    CustomerConcept(
                        customer_id=int(cid),
                        concept=concept,
                        score=float(s),
                        low=float(lo),
                        high=float(hi),
                        version=version,
                    )
                    for cid, s, lo, hi in zip(stats.customer_ids, score, low, high, strict=True)
                ],
                batch_size=5000,
            )
        report[concept.name] = {
            "auc": round(result.auc, 3), "auc_low": round(result.auc_low, 3), "accuracy": round(result.accuracy, 3),
            "positives": result.positives, "negatives": result.negatives, "usable": result.usable,
        }  # fmt: skip
    return report


@cache
def _population_cutoffs(reference) -> dict[str, float]:
    """The quantile cut-offs of the quantile rules over all customers (once per process and reference)."""
    from recommendations.models import Customer as CustomerModel

    ids = list(CustomerModel.objects.filter(order_count__gt=0).values_list("pk", flat=True))
    stats = behaviour_stats(ids)
    if not len(stats.customer_ids):
        return {}
    return {"orders": float(np.quantile(stats.orders, 0.75)), "qty": float(np.quantile(stats.median_line_qty, 0.75))}


# Rules whose cut-off is absolute, so one customer's own figures say whether it holds (the quantile rules,
# frequent and bulk, need every customer's figures for their cut-off).
ABSOLUTE_RULES = (Concept.Rule.LAPSED, Concept.Rule.SEASONAL, Concept.Rule.PRICE_SENSITIVE)


def rule_holds(rule: str, threshold: float, stats: BehaviourStats, cutoffs: dict | None = None) -> bool | None:
    """Whether the first customer of ``stats`` meets ``rule`` (None: this rule cannot tell for it)."""
    r, t = Concept.Rule, threshold
    if rule == r.LAPSED:
        return bool(stats.days_since_last[0] >= (t or 90))
    if rule == r.SEASONAL:
        return bool(stats.q4_order_share[0] >= (t or 0.6)) if stats.orders[0] >= 2 else None
    if rule == r.PRICE_SENSITIVE:
        return bool(stats.price_ratio[0] <= (t or 0.9))
    if rule in (r.FREQUENT, r.BULK_BUYER) and cutoffs:
        cut = cutoffs.get("orders" if rule == r.FREQUENT else "qty")
        value = stats.orders[0] if rule == r.FREQUENT else stats.median_line_qty[0]
        return None if cut is None else bool(value >= cut)
    return None


def concept_holds(*, customer_id: int, concept_names: list[str]) -> dict[str, bool | None]:
    """Whether the customer's own figures meet each named concept's labelling rule (None: the rule cannot
    tell, e.g. a seed-phrase concept or too few orders). A concept score is a similarity of the customer's
    vector to the concept's direction; only a True here lets a reason state the concept as a fact."""
    return concept_holds_batch(concept_names_by_customer={customer_id: concept_names})[customer_id]


def concept_holds_batch(*, concept_names_by_customer: dict[int, list[str]]) -> dict[int, dict[str, bool | None]]:
    """:func:`concept_holds` for many customers at once: per customer, its named concepts and whether they hold."""
    stats = behaviour_stats(list(concept_names_by_customer))
    row = {int(cid): i for i, cid in enumerate(stats.customer_ids)}
    cutoffs = _population_cutoffs(profile.reference_time()) if row else {}
    names = {n for ns in concept_names_by_customer.values() for n in ns}
    rules = {
        n: (rule, t) for n, rule, t in Concept.objects.filter(name__in=names).values_list("name", "rule", "threshold")
    }
    out = {}
    for customer_id, concept_names in concept_names_by_customer.items():
        i = row.get(customer_id)
        if i is None:
            out[customer_id] = dict.fromkeys(concept_names)
            continue
        own = BehaviourStats(*(np.asarray(a)[i : i + 1] for a in vars(stats).values()))
        out[customer_id] = {n: rule_holds(*rules[n], own, cutoffs) if n in rules else None for n in concept_names}
    return out
