"""Tune the encoder on co-purchases, stage the re-embedded catalogue, measure the gain, and switch on request.

The tuned model is saved, versioned, under ``var/models/encoder/<version>/`` with the catalogue's new
vectors (``product_vectors.npz``) and the measurements (``metrics.json``). Nothing in the database
changes until :func:`encoder_activate`: the old vectors keep serving while the new ones are computed.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

DEFAULT_CUTOFF = "2011-09-01"  # pairs come from before the evaluation's test window only
CURRENT = "CURRENT"


def encoder_root() -> Path:
    configured = getattr(settings, "ELM_ENCODER_DIR", None)
    return Path(configured) if configured else Path(settings.VAR_DIR) / "models" / "encoder"


def tuned_encoders() -> list[dict]:
    """Return the metrics of every tuned encoder on disk, newest first (read by the quality page)."""
    root = encoder_root()
    if not root.exists():
        return []
    current = (root / CURRENT).read_text().strip() if (root / CURRENT).exists() else None
    found = []
    for metrics in root.glob("*/metrics.json"):
        try:
            data = json.loads(metrics.read_text())
        except (OSError, ValueError):
            continue
        found.append({**data, "active": metrics.parent.name == current})
    return sorted(found, key=lambda d: d.get("created_at", ""), reverse=True)


def _catalogue() -> tuple[dict[str, str], dict[str, str]]:
    """Return (stock code -> description of the merchandise, stock code -> encoder text of every described product).

    Search is judged on the merchandise; the staged vectors cover every product the embed job embeds.
    """
    from recommendations.models import Product
    from recommendations.services.embeddings import product_embedding_text

    rows = Product.objects.exclude(description="").values_list("stock_code", "description", "is_merchandise")
    descriptions = {code: desc for code, desc, merchandise in rows if merchandise}
    return descriptions, {code: product_embedding_text(desc) for code, desc, _ in rows}


def encoder_tune(
    *,
    preset: str = "cpu",
    cutoff: str = DEFAULT_CUTOFF,
    overrides: dict | None = None,
    evaluate: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict:
    """Fine-tune, stage the catalogue's vectors, measure; return the report (also ``metrics.json``).

    Idempotent: the same data and settings give the same version, and a finished version is not redone.
    """
    from recommendations.evaluation.data import interactions_from_db
    from recommendations.ml.encoder import encoder_path, encoder_version
    from recommendations.ml.tuning import copurchase_pairs, encode_with, fine_tune, tuned_version, with_settings

    log = log or logger.info
    started = time.perf_counter()
    tune = with_settings(preset, **(overrides or {}))
    descriptions, texts = _catalogue()
    interactions = interactions_from_db()
    pairs = copurchase_pairs(interactions, texts, before=cutoff, settings=tune)
    version = tuned_version(encoder_version(), pairs, tune)
    out = encoder_root() / version
    if (out / "metrics.json").exists():
        log(f"{version} exists; nothing to do")
        return json.loads((out / "metrics.json").read_text())
    log(f"{len(pairs):,} co-purchase pairs before {cutoff}; tuning {version} ({preset})")
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    training = fine_tune(
        encoder_path(),
        pairs,
        tmp,
        settings=tune,
        progress=lambda p: log(f"step {p['step']}/{p['steps']} loss {p['loss']:.3f}"),
    )
    log(f"trained {training['steps']} steps in {training['train_seconds']} s")
    # The background re-embedding: the whole catalogue, staged next to the model, not yet in the database.
    t0 = time.perf_counter()
    codes = sorted(texts)
    vectors = encode_with(tmp, [texts[c] for c in codes], device=tune.device)
    np.savez(tmp / "product_vectors.npz", codes=np.asarray(codes), vectors=vectors)
    report = {
        "version": version,
        "base": encoder_version(),
        "preset": preset,
        "cutoff": cutoff,
        "training": training,
        "reembed_seconds": round(time.perf_counter() - t0, 1),
        "products": len(codes),
        "created_at": timezone.now().isoformat(),
    }
    if evaluate:
        t0 = time.perf_counter()
        before = base_vectors(encoder_path(), texts, device=tune.device)
        after = dict(zip(codes, vectors, strict=True))
        report["search"] = search_gain(
            encoder_path(), tmp, descriptions, before=before, after=after, device=tune.device
        )
        log(f"search NDCG@10 {report['search']['before']:.4f} -> {report['search']['after']:.4f}")
        report["evaluation_split"] = split_gain(interactions, before, after, cutoff=cutoff, log=log)
        report["evaluate_seconds"] = round(time.perf_counter() - t0, 1)
    report["wall_seconds"] = round(time.perf_counter() - started, 1)
    (tmp / "metrics.json").write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return report


def search_gain(
    base_path, tuned_path, descriptions: dict[str, str], *, before: dict[str, np.ndarray],
    after: dict[str, np.ndarray], device: str = "cpu",
) -> dict:  # fmt: skip
    """Return product-search NDCG@10 of the labelled queries before (base encoder) and after (tuned).

    ``before``/``after``: the merchandise's product vectors under each encoder (stock code -> unit vector).
    """
    from recommendations.evaluation.search_set import build, search_ndcg
    from recommendations.ml.tuning import encode_with

    labelled = build(descriptions)["queries"]
    codes = sorted(c for c in descriptions if c in before and c in after)
    queries = [q["query"] for q in labelled]
    relevant = [q["relevant"] for q in labelled]
    result = {"queries": len(labelled), "catalogue": len(codes)}
    per_query = {}
    for label, path, vectors in (("before", base_path, before), ("after", tuned_path, after)):
        products = np.stack([vectors[c] for c in codes])
        mean, values = search_ndcg(encode_with(path, queries, device=device), products, codes, relevant)
        result[label] = mean
        per_query[label] = values
    result["per_query"] = [
        {"query": q, "before": b, "after": a}
        for q, b, a in zip(queries, per_query["before"], per_query["after"], strict=True)
    ]
    return result


def base_vectors(base_path, texts: dict[str, str], *, device: str = "cpu") -> dict[str, np.ndarray]:
    """Return the base encoder's product vectors: the stored ones when they are that encoder's, else encoded."""
    from recommendations.ml.encoder import encoder_version
    from recommendations.ml.tuning import encode_with
    from recommendations.models import Product
    from recommendations.vectors import fetch_vectors

    version = encoder_version()
    ids = dict(
        Product.objects.filter(stock_code__in=list(texts), embedding_version=version).values_list("id", "stock_code")
    )
    stored = {ids[pk]: v for pk, v in fetch_vectors(Product._meta.db_table, list(ids)).items()}
    missing = sorted(set(texts) - set(stored))
    if missing:
        stored.update(zip(missing, encode_with(base_path, [texts[c] for c in missing], device=device), strict=True))
    return stored


def split_gain(
    interactions, before: dict[str, np.ndarray], after: dict[str, np.ndarray], *, cutoff: str, log=logger.info
) -> dict:
    """Return test-window NDCG@10 (95% bootstrap intervals) with the stored vs the tuned product vectors.

    The tuning pairs come from before ``cutoff``, so the test window after it is unseen by the encoder.
    The embedding recommender and the production hybrid (its recorded parameters) are scored.
    """
    from recommendations.evaluation.baselines import EmbeddingRecommender, rank_customers
    from recommendations.evaluation.hybrid import HybridRecommender
    from recommendations.evaluation.metrics import bootstrap_indices, summarize
    from recommendations.evaluation.split import temporal_split
    from recommendations.evaluation.training import TrainingData
    from recommendations.services.production import production_choice

    split = temporal_split(interactions, cutoff=cutoff)
    indices = bootstrap_indices(len(split.customers), n_resamples=1000, seed=0)
    choice = production_choice()
    hybrid_params = choice.params if choice.model == "hybrid" else {}
    result = {"cutoff": cutoff, "customers": len(split.customers)}
    for label, embeddings in (("before", before), ("after", after)):
        data = TrainingData.from_interactions(split.train, as_of=split.cutoff, embeddings=embeddings)
        popularity = dict(zip(data.items.tolist(), data.popularity.tolist(), strict=True))
        for name, model in (("embedding", EmbeddingRecommender()), ("hybrid", HybridRecommender(**hybrid_params))):
            model.fit(data)
            ranked = rank_customers(model, split.customers, split.excluded, n=100)
            metrics, _ = summarize(
                ranked, [split.relevant[c] for c in split.customers], popularity,
                catalogue_size=data.n_items, indices=indices,
            )  # fmt: skip
            result.setdefault(name, {})[label] = metrics["ndcg@10"]
            log(f"{name} with {label} vectors: test NDCG@10 {metrics['ndcg@10']['mean']:.4f}")
    return result


def encoder_activate(*, version: str) -> int:
    """Switch to a tuned encoder: write its staged product vectors in one transaction; return how many.

    Every process must then use it (``ELM_ENCODER=tuned`` reads ``CURRENT``); this refuses otherwise, so
    that later embeddings and explanations never mix two encoders.
    """
    from recommendations.ml import encoder
    from recommendations.models import Product
    from recommendations.services.embeddings import product_input_hash
    from recommendations.vectors import write_vectors

    directory = encoder_root() / version
    staged = directory / "product_vectors.npz"
    if not staged.exists():
        raise FileNotFoundError(f"no staged vectors for {version} under {directory}")
    if settings.ELM_ENCODER not in ("tuned", str(directory)):
        raise RuntimeError(f"set ELM_ENCODER=tuned (or {directory}) for every process before switching")
    (encoder_root() / CURRENT).write_text(version + "\n")
    encoder.encoder_version.cache_clear()
    encoder.get_encoder.cache_clear()
    label = encoder.encoder_version()
    with np.load(staged, allow_pickle=False) as arrays:
        vectors = dict(zip(arrays["codes"].tolist(), arrays["vectors"], strict=True))
    rows = []
    for pk, code, description in Product.objects.filter(stock_code__in=list(vectors)).values_list(
        "id", "stock_code", "description"
    ):
        rows.append((pk, vectors[code], label, product_input_hash(description, label)))
    with transaction.atomic():
        write_vectors(Product._meta.db_table, rows, now=timezone.now())
    return len(rows)
