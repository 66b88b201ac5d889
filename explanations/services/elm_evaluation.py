"""Does the ELM read the vector? Issue 18's metrics for one adapter version, on customers it never saw.

Held-out customers and products are chosen once and for all by ``elm_training.is_held_out`` (a hash of the
pseudonym or stock code), so every adapter version is measured on the same people. Per decoding method:
retrieval of the true customer among 10 and 100 by the cosine of the decoded text, semantic consistency (SC)
against the shuffled reference and the best single generic text (chosen on training customers), the swap
test, product words outside the customer's history, and products decoded back to their description
(retrieval among 10, same category family). Results go to ``docs/results/elm_<version>.json`` and a table per
adapter version in ``docs/elm.md``, and into the artifact's ``metrics.json`` (which decides whether the
product lets the adapter write on its own: ``metrics.decoding_that_reads``).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from django.conf import settings

from explanations.services.elm_training import is_held_out, purchase_lines
from recommendations.models import Customer, Product
from recommendations.vectors import fetch_vectors

TRAINING_SAMPLE = 256  # training customers whose reference texts compete for "best generic text"


@dataclass
class HeldOut:
    """Evaluation inputs: the evaluated customers and products and the pools they are retrieved from."""

    vectors: np.ndarray  # evaluated customers
    references: list[str]
    evidence: list[str]  # facts lines, for the grounded swap test
    histories: list[list[str]]  # descriptions of the products each customer bought, and its categories
    pool: np.ndarray  # every held-out customer with a vector
    truth: list[int]  # row of each evaluated customer in ``pool``
    train_vectors: np.ndarray
    train_references: list[str]
    product_vectors: np.ndarray
    product_descriptions: list[str]
    product_pool: np.ndarray
    product_truth: list[int]


def held_out_data(*, customers: int = 64, products: int = 64) -> HeldOut:
    """Read the held-out customers' vectors, reference texts and histories, and the held-out products."""
    from explanations.ml.profiles import customer_profile_text, facts_from_lines, facts_prompt

    lines = purchase_lines()
    facts = facts_from_lines(lines)
    vectors = fetch_vectors(Customer._meta.db_table)
    pseudonyms = dict(Customer.objects.filter(pk__in=list(vectors)).values_list("id", "pseudonym"))
    ordered = sorted((pseudonyms[cid], cid) for cid in vectors if cid in facts)
    held = [cid for p, cid in ordered if is_held_out(p)]
    trained = [cid for p, cid in ordered if not is_held_out(p)][:TRAINING_SAMPLE]
    chosen = held[:customers]
    bought = lines[lines["customer"].isin(chosen)].groupby("customer")["description"].agg(lambda s: sorted(set(s)))
    product_vectors = fetch_vectors(Product._meta.db_table, where="is_merchandise")
    rows = Product.objects.filter(pk__in=list(product_vectors)).order_by("stock_code")
    rows = rows.values_list("id", "stock_code", "description")
    held_products = [(pid, d) for pid, code, d in rows if is_held_out(code)]
    return HeldOut(
        vectors=np.stack([vectors[c] for c in chosen]).astype(np.float32),
        references=[customer_profile_text(facts[c]) for c in chosen],
        evidence=[facts_prompt(facts[c]) for c in chosen],
        histories=[[*bought.get(c, []), *(cat for cat, _ in facts[c].top_categories)] for c in chosen],
        pool=np.stack([vectors[c] for c in held]).astype(np.float32),
        truth=list(range(len(chosen))),
        train_vectors=np.stack([vectors[c] for c in trained]).astype(np.float32),
        train_references=[customer_profile_text(facts[c]) for c in trained],
        product_vectors=np.stack([product_vectors[p] for p, _ in held_products[:products]]).astype(np.float32),
        product_descriptions=[d for _, d in held_products[:products]],
        product_pool=np.stack([product_vectors[p] for p, _ in held_products]).astype(np.float32),
        product_truth=list(range(min(products, len(held_products)))),
    )


def _mean(values) -> float:
    return round(float(np.mean(values)), 4)


def _context(data: HeldOut) -> dict:
    """Numbers that do not depend on the adapter: what the reference texts and a generic text reach."""
    from explanations.ml.elm import metrics
    from recommendations.ml.encoder import encode

    shift = np.roll(np.arange(len(data.references)), 1)  # each customer gets another's reference
    encoded = encode(data.references)
    generic, generic_train_sc = metrics.best_generic_text(
        [*data.train_references, *(t.split(". ")[0] + "." for t in data.train_references)], data.train_vectors
    )
    unit = data.pool / np.linalg.norm(data.pool, axis=1, keepdims=True)
    pairwise = unit @ unit.T
    return {
        "customers": len(data.references),
        "held_out_pool": len(data.pool),
        "products": len(data.product_descriptions),
        "held_out_product_pool": len(data.product_pool),
        "mean_pairwise_cosine": _mean(pairwise[np.triu_indices(len(unit), 1)]),
        "reference_sc": _mean(metrics.semantic_consistency(data.references, data.vectors)),
        "shuffled_reference_sc": _mean(metrics.semantic_consistency([data.references[i] for i in shift], data.vectors)),
        "reference_top1_among_10": _mean(metrics.retrieval_hits(encoded, data.pool, data.truth, among=10)),
        "reference_top1_among_100": _mean(metrics.retrieval_hits(encoded, data.pool, data.truth, among=100)),
        "generic_text": generic,
        "generic_sc_training": round(generic_train_sc, 4),
        "generic_sc": _mean(metrics.semantic_consistency([generic] * len(data.references), data.vectors)),
    }


def _method_summary(
    method: str, data: HeldOut, artifact, *, max_new_tokens: int, vocabulary, caches: dict
) -> tuple[dict, dict]:
    """Decode the held-out customers and products with ``method``; return (summary, samples)."""
    from explanations.ml.elm import decoding, metrics
    from explanations.ml.profiles import product_category
    from recommendations.ml.encoder import encode

    n = len(data.references)
    shift = np.roll(np.arange(n), 1)
    wall, cpu = time.perf_counter(), time.process_time()
    texts = decoding.decode_by(
        method, data.vectors, artifact=artifact, max_new_tokens=max_new_tokens, cache=caches.setdefault("c", {})
    )
    customer_wall = time.perf_counter() - wall
    product_texts = decoding.decode_by(
        method,
        data.product_vectors,
        artifact=artifact,
        task="product",
        max_new_tokens=max_new_tokens // 2,
        cache=caches.setdefault("p", {}),
    )
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    sc = metrics.semantic_consistency(texts, data.vectors)
    shuffled = metrics.semantic_consistency([data.references[i] for i in shift], data.vectors)
    encoded = encode(texts)
    words = [metrics.product_words_outside(t, h, vocabulary) for t, h in zip(texts, data.histories, strict=True)]
    named, outside = sum(w[0] for w in words), sum(w[1] for w in words)
    product_encoded = encode(product_texts)
    summary = {
        "sc": _mean(sc),
        "sc_std": round(float(np.std(sc)), 4),
        "beats_shuffled_share": _mean(sc > shuffled),
        "customer_top1_among_10": _mean(metrics.retrieval_hits(encoded, data.pool, data.truth, among=10)),
        "customer_top1_among_100": _mean(metrics.retrieval_hits(encoded, data.pool, data.truth, among=100)),
        "shared_output_share": round(metrics.shared_output_share(texts), 4),
        "swap_identical_share": round(metrics.identical_share(texts, [texts[i] for i in shift]), 4),
        "product_words": named,
        "product_words_outside_share": round(outside / named, 4) if named else 0.0,
        "texts_with_words_outside_share": _mean([w[1] > 0 for w in words]),
        "product_top1_among_10": _mean(
            metrics.retrieval_hits(product_encoded, data.product_pool, data.product_truth, among=10)
        ),
        "product_family_share": _mean(
            [
                product_category(t) == product_category(d)
                for t, d in zip(product_texts, data.product_descriptions, strict=True)
            ]
        ),
    }
    # Methods that share candidates (guided-8, guided-8-contrast-1) are charged what the candidates cost.
    candidates = method.split("-")[1] if method != "greedy" else method
    cost = caches.setdefault("cost", {}).setdefault(
        candidates,
        {
            "customer_texts_per_minute": round(60 * n / customer_wall, 2),
            "wall_seconds": round(wall, 1),
            "cpu_minutes": round(cpu / 60, 2),
        },
    )
    summary.update(cost)
    summary["goals"] = metrics.goals_met(summary)
    samples = {
        "customers": [{"reference": r, "decoded": t} for r, t in zip(data.references[:8], texts[:8], strict=True)],
        "products": [
            {"description": d, "decoded": t}
            for d, t in zip(data.product_descriptions[:8], product_texts[:8], strict=True)
        ],
    }
    return summary, samples


def _grounded_swap(data: HeldOut, artifact, *, customers: int, max_new_tokens: int) -> dict:
    """Facts of customer i with the vector of customer i, then of another customer: does the text change?"""
    from explanations.ml.elm import decoding, metrics

    n = min(customers, len(data.references))
    evidence, vectors = data.evidence[:n], data.vectors[:n]
    own = decoding.decode(vectors, evidence_prompt=evidence, artifact=artifact, max_new_tokens=max_new_tokens)
    swapped = decoding.decode(
        vectors[np.roll(np.arange(n), 1)], evidence_prompt=evidence, artifact=artifact, max_new_tokens=max_new_tokens
    )
    return {"customers": n, "identical_share": round(metrics.identical_share(own, swapped), 4)}


def elm_evaluate(
    *,
    version: str | None = None,
    methods: tuple[str, ...] = ("greedy",),
    customers: int = 64,
    products: int = 64,
    swap_customers: int = 32,
    max_new_tokens: int = 48,
    write: bool = True,
    log=print,
) -> dict:
    """Measure an adapter version (the current one by default) with each decoding method; write the results.

    Results of earlier runs of the same version are kept and extended, so levers measured one at a time land
    in one table.
    """
    from explanations.ml.elm import AdapterArtifact, adapter_root, load_current
    from explanations.services.explain import catalogue_vocabulary

    root = adapter_root()
    artifact = AdapterArtifact.load(root / version) if version else load_current(root)
    data = held_out_data(customers=customers, products=products)
    log(f"{artifact.version}: {len(data.references)} held-out customers, {len(data.product_descriptions)} products")
    result = _load_result(artifact.version)
    result.update(
        {
            "version": artifact.version,
            "preset": artifact.config.get("preset_name"),
            "preset_settings": artifact.config.get("preset"),
            "trained": artifact.metrics.get("stages"),
            "context": _context(data),
            "max_new_tokens": max_new_tokens,
        }
    )
    result.setdefault("methods", {})
    result.setdefault("samples", {})
    vocabulary = catalogue_vocabulary()
    caches: dict = {}  # guided methods with the same number of candidates share them
    for method in methods:
        load = os.getloadavg()[0]
        summary, samples = _method_summary(
            method, data, artifact, max_new_tokens=max_new_tokens, vocabulary=vocabulary, caches=caches
        )
        summary["load_average"] = round((load + os.getloadavg()[0]) / 2, 1)
        result["methods"][method] = summary
        result["samples"][method] = samples
        log(f"{method}: {json.dumps({k: v for k, v in summary.items() if k != 'goals'})}")
    if swap_customers:
        result["grounded_swap"] = _grounded_swap(
            data, artifact, customers=swap_customers, max_new_tokens=max_new_tokens
        )
    if write:
        results_path(artifact.version).write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        artifact_dir = root / artifact.version
        if artifact_dir.exists():
            # The product reads this to decide whether the adapter may write on its own (metrics.decoding_that_reads).
            artifact.metrics["evaluation"] = {"methods": result["methods"], "context": result["context"]}
            (artifact_dir / "metrics.json").write_text(json.dumps(artifact.metrics, indent=2, sort_keys=True))
        docs_render()
    return result


def results_dir() -> Path:
    return Path(settings.BASE_DIR) / "docs" / "results"


def results_path(version: str) -> Path:
    return results_dir() / f"elm_{version}.json"


def _load_result(version: str) -> dict:
    path = results_path(version)
    return json.loads(path.read_text()) if path.exists() else {}


DOC_BEGIN = "<!-- elm_evaluate: begin (written by manage.py elm_evaluate; do not edit by hand) -->"
DOC_END = "<!-- elm_evaluate: end -->"
ROWS = (
    ("customer_top1_among_10", "true customer first among 10 (chance 0.10)"),
    ("customer_top1_among_100", "true customer first among 100 (chance 0.01)"),
    ("beats_shuffled_share", "SC beats the shuffled reference, share of customers"),
    ("sc", "SC of the decoded text"),
    ("shared_output_share", "outputs word for word another customer's"),
    ("swap_identical_share", "swap test: same as the next customer's output"),
    ("product_words_outside_share", "product words outside the customer's history"),
    ("texts_with_words_outside_share", "texts with such a word"),
    ("product_top1_among_10", "product: true product first among 10"),
    ("product_family_share", "product: same category family"),
    ("customer_texts_per_minute", "customer texts per minute (wall)"),
    ("cpu_minutes", "CPU minutes (customers and products)"),
    ("load_average", "load average during the run"),
)


COSTS = ("customer_texts_per_minute", "cpu_minutes", "load_average")  # shown with one or two decimals


def _cell(value, key: str = "") -> str:
    if isinstance(value, float):
        if key in COSTS:
            return f"{value:.2f}" if key == "cpu_minutes" else f"{value:.1f}"
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    return "—" if value is None else str(value)


def _training_words(result: dict) -> str:
    """How the version was trained: its preset (with the fields a lever changed), LM steps and wall time."""
    from dataclasses import asdict

    from explanations.ml.elm.presets import PRESETS

    name, chosen = result.get("preset"), result.get("preset_settings") or {}
    words = f"preset `{name}`"
    if name not in PRESETS and chosen:
        changed = {k: v for k, v in chosen.items() if asdict(PRESETS["cpu"]).get(k) != v}
        words = "`cpu` preset with " + ", ".join(f"{k}={v}" for k, v in sorted(changed.items()))
    stages = result.get("trained") or []
    steps = sum(stage.get("steps") or 0 for stage in stages)
    seconds = sum(stage.get("train_seconds") or 0 for stage in stages)
    return f"{words}; {steps} optimizer steps through the LM, {seconds:.0f} s of training"


def docs_render() -> str:
    """Rewrite the generated section of docs/elm.md: one table per adapter version with results."""
    from explanations.ml.elm.metrics import GOALS

    parts = [DOC_BEGIN, ""]
    for path in sorted(results_dir().glob("elm_elm-*.json")):
        result = json.loads(path.read_text())
        methods, context = result.get("methods", {}), result.get("context", {})
        names = sorted(methods, key=lambda m: (m != "greedy", len(m), m))
        parts += [
            f"### `{result['version']}` ({_training_words(result)})",
            "",
            f"{context.get('customers')} held-out customers (retrieval pool {context.get('held_out_pool')}), "
            f"{context.get('products')} held-out products (pool {context.get('held_out_product_pool')}); "
            f"up to {result.get('max_new_tokens')} new tokens. Context, without the adapter: own reference text "
            f"SC {_cell(context.get('reference_sc'))}, first among 10 {_cell(context.get('reference_top1_among_10'))}, "
            f"among 100 {_cell(context.get('reference_top1_among_100'))}; shuffled reference SC "
            f"{_cell(context.get('shuffled_reference_sc'))}; best single generic text (chosen on "
            f"{TRAINING_SAMPLE} training customers) SC {_cell(context.get('generic_sc'))}: "
            f'"{context.get("generic_text")}"; held-out vectors\' mean pairwise cosine '
            f"{_cell(context.get('mean_pairwise_cosine'))}.",
            "",
            "| metric | goal | " + " | ".join(f"`{m}`" for m in names) + " |",
            "| --- | --- | " + " | ".join("---" for _ in names) + " |",
        ]
        for key, label in ROWS:
            goal = " ".join(str(x) for x in GOALS[key]) if key in GOALS else ""
            cells = []
            for m in names:
                value = methods[m].get(key)
                met = methods[m].get("goals", {}).get(key)
                cells.append(_cell(value, key) + ("" if met is None else (" ✓" if met else " ✗")))
            parts.append(f"| {label} | {goal} | " + " | ".join(cells) + " |")
        swap = result.get("grounded_swap")
        if swap:
            parts += [
                "",
                f"Grounded swap test (facts of customer i, vector of the next customer, greedy): "
                f"{_cell(swap['identical_share'])} of {swap['customers']} texts identical to those with the "
                "customer's own vector.",
            ]
        parts.append("")
    parts.append(DOC_END)
    section = "\n".join(parts)
    doc = Path(settings.BASE_DIR) / "docs" / "elm.md"
    text = doc.read_text()
    if DOC_BEGIN in text and DOC_END in text:
        text = text[: text.index(DOC_BEGIN)] + section + text[text.index(DOC_END) + len(DOC_END) :]
    else:
        text = text.rstrip("\n") + "\n\n## Held-out evaluation (`manage.py elm_evaluate`)\n\n" + section + "\n"
    doc.write_text(text)
    return section
