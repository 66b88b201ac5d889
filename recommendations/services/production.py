"""The production recommender: the validation winner among explainable models, its artifact, scores and evidence.

Which model serves is decided by the latest full :class:`~recommendations.models.EvaluationRun` (never a
reduced one): its ``chosen_model`` is the best mean validation NDCG@10 among the models whose score splits
exactly into per-purchase evidence (``hybrid`` and ``embedding``). Before any evaluation has run, the
choice recorded in ``recommendations/evaluation/production.json`` (the last full run on the real data)
serves. The hybrid is refitted on every purchase in the database with the chosen hyper-parameters and
frozen into a :class:`~recommendations.evaluation.served.ServedHybrid` under ``var/models/recommender/``;
its version names the parameters and a digest of the data, so a refit on the same data finds the same
directory. Numpy and scipy only (no torch): fitting is a few dense item x item matrix operations.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from django.conf import settings
from django.db import connection

from recommendations import profile
from recommendations.models import EvaluationRun, Product

logger = logging.getLogger(__name__)

HYBRID = "hybrid"  # RecommendationBatch.recommender of the hybrid
EMBEDDING = "embedding-cosine"  # RecommendationBatch.recommender of the HNSW embedding recommender
# Evaluation model name -> production recommender. Only models whose score is an exact sum of
# per-purchase terms (+ a non-personal popularity term) may serve: explanations show those terms.
EXPLAINABLE = {"hybrid": HYBRID, "embedding": EMBEDDING}
DEFAULT_CHOICE_FILE = Path(__file__).resolve().parents[1] / "evaluation" / "production.json"
KEEP_ARTIFACTS = 3  # newest artifact directories kept; older ones are pruned after a fit


@dataclass(frozen=True)
class ProductionChoice:
    model: str  # evaluation name: "hybrid" or "embedding"
    params: dict
    evaluation_run_id: int | None  # None: the recorded default
    source: str

    @property
    def recommender(self) -> str:
        return EXPLAINABLE[self.model]


def production_choice() -> ProductionChoice:
    """Return the model production serves: the latest full evaluation's choice, else the recorded default."""
    forced = getattr(settings, "ELM_RECOMMENDER", "auto")
    run = (
        EvaluationRun.objects.filter(
            status=EvaluationRun.Status.SUCCEEDED, reduced=False, chosen_model__in=list(EXPLAINABLE)
        )
        .order_by("-created_at")
        .first()
    )
    if run is not None and forced in ("auto", run.chosen_model):
        return ProductionChoice(run.chosen_model, dict(run.chosen_params), run.pk, f"evaluation run #{run.pk}")
    default = json.loads(DEFAULT_CHOICE_FILE.read_text())
    if forced == "embedding" and default["model"] != "embedding":
        return ProductionChoice("embedding", {}, None, "ELM_RECOMMENDER=embedding")
    return ProductionChoice(default["model"], dict(default["params"]), None, f"default ({DEFAULT_CHOICE_FILE.name})")


# --------------------------------------------------------------------------- data and version


def artifact_root() -> Path:
    configured = getattr(settings, "ELM_RECOMMENDER_DIR", None)
    return Path(configured) if configured else Path(settings.VAR_DIR) / "models" / "recommender"


def data_digest() -> str:
    """Return a digest of everything a hybrid fit reads: sale lines, the catalogue's vectors, the reference time."""
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT count(*), coalesce(max(p.id), 0), coalesce(sum(p.quantity), 0), max(p.occurred_at),
                   count(DISTINCT p.customer_id)
            FROM recommendations_purchase p
            WHERE p.kind = 'sale' AND p.customer_id IS NOT NULL
            """
        )
        purchases = cur.fetchone()
        cur.execute(
            """
            SELECT md5(coalesce(string_agg(stock_code || ':' || embedding_input_hash, ',' ORDER BY stock_code), ''))
            FROM recommendations_product WHERE is_merchandise
            """
        )
        vectors = cur.fetchone()[0]
    blob = json.dumps([list(map(str, purchases)), vectors, profile.reference_time().isoformat()])
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def hybrid_version(params: Mapping, *, digest: str | None = None) -> str:
    """Return ``hybrid@<parameters>+data@<digest>``: equal versions are equal fits."""
    from recommendations.evaluation.hybrid import HybridRecommender

    model_version = HybridRecommender(**dict(params)).version()
    return f"{model_version}+data@{digest or data_digest()}"


def interactions_for_fit():
    """Return (interactions, as_of) with every clean sale line in the database, in the evaluation's local time."""
    import pandas as pd
    from django.utils import timezone

    from recommendations.evaluation.data import interactions_from_db

    interactions = interactions_from_db()
    reference = profile.reference_time()
    as_of = pd.Timestamp(timezone.localtime(reference, timezone.get_default_timezone()).replace(tzinfo=None))
    return interactions.loc[interactions["occurred_at"] <= as_of], as_of


def hybrid_fit(params: Mapping, *, version: str | None = None):
    """Fit the hybrid on every purchase in the database; return the frozen ServedHybrid (not saved)."""
    from recommendations.evaluation.data import embeddings_from_db
    from recommendations.evaluation.hybrid import HybridRecommender
    from recommendations.evaluation.served import ServedHybrid
    from recommendations.evaluation.training import TrainingData

    version = version or hybrid_version(params)
    interactions, as_of = interactions_for_fit()
    if interactions.empty:
        raise ValueError("no sale lines of known customers to fit the hybrid on")
    data = TrainingData.from_interactions(interactions, as_of=as_of, embeddings=embeddings_from_db())
    model = HybridRecommender(**dict(params)).fit(data)
    meta = {
        "as_of": as_of.isoformat(),
        "lines": len(interactions),
        "customers": len(data.customers),
        "items": data.n_items,
    }
    return ServedHybrid.from_model(model, version=version, meta=meta)


_lock = threading.Lock()
_cache: dict[str, object] = {}


def hybrid_artifact(params: Mapping, *, version: str | None = None):
    """Return the ServedHybrid of ``version`` (default: the current data): from memory, from disk, or fitted now.

    A fit whose version is not the requested one (the data changed since the batch started) is refused.
    """
    from recommendations.evaluation.served import ServedHybrid

    version = version or hybrid_version(params)
    with _lock:
        if version in _cache:
            return _cache[version]
        directory = artifact_root() / _directory_name(version)
        if (directory / "config.json").exists():
            served = ServedHybrid.load(directory)
        else:
            current = hybrid_version(params)
            if current != version:
                raise LookupError(f"recommender artifact {version} is gone and the data changed (now {current})")
            served = hybrid_fit(params, version=version)
            # Written aside and renamed: a worker on the same disk never loads a half-written artifact.
            tmp = directory.with_name(f"{directory.name}.{threading.get_ident()}.tmp")
            served.save(tmp)
            try:
                tmp.rename(directory)
            except OSError:  # another worker finished the same fit first
                shutil.rmtree(tmp, ignore_errors=True)
            _prune(artifact_root())
        _cache.clear()  # one model per process: each is ~100 MB
        _cache[version] = served
        return served


def _directory_name(version: str) -> str:
    return version.replace("@", "-").replace("+", "_")


def _prune(root: Path) -> None:
    dirs = [d for d in root.iterdir() if d.is_dir() and not d.name.endswith(".tmp")]
    dirs.sort(key=lambda d: d.stat().st_mtime)
    for old in dirs[:-KEEP_ARTIFACTS]:
        shutil.rmtree(old, ignore_errors=True)


# --------------------------------------------------------------------------- per-customer inputs


def customer_weights(
    customer_ids: Sequence[int], *, reference: datetime, half_life_days: float | None
) -> dict[int, dict[str, float]]:
    """Return per customer {stock code: w_p} with w_p = 0.5 ** (days since its latest purchase / half-life).

    The same lines as the fit (sales of merchandise, quantity and price > 0), so the weights are the
    ones the evaluated model used.
    """
    out: dict[int, dict[str, float]] = defaultdict(dict)
    if not customer_ids:
        return out
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT p.customer_id, pr.stock_code, max(p.occurred_at)
            FROM recommendations_purchase p JOIN recommendations_product pr ON pr.id = p.product_id
            WHERE p.customer_id = ANY(%s) AND p.kind = 'sale' AND p.quantity > 0 AND p.unit_price > 0
                  AND pr.is_merchandise AND p.occurred_at <= %s
            GROUP BY p.customer_id, pr.stock_code
            """,
            [list(customer_ids), reference],
        )
        for customer_id, code, last in cur.fetchall():
            age = max((reference - last).total_seconds() / 86400, 0.0)
            out[customer_id][code] = 1.0 if half_life_days is None else 0.5 ** (age / half_life_days)
    return out


def recently_bought_codes(customer_ids: Sequence[int], *, since: datetime) -> dict[int, list[str]]:
    """Return per customer the stock codes it bought since ``since`` (never recommended: the exclusion rule)."""
    out: dict[int, list[str]] = defaultdict(list)
    if not customer_ids:
        return out
    with connection.cursor() as cur:
        cur.execute(
            """
            SELECT DISTINCT p.customer_id, pr.stock_code
            FROM recommendations_purchase p JOIN recommendations_product pr ON pr.id = p.product_id
            WHERE p.customer_id = ANY(%s) AND p.kind = 'sale' AND p.occurred_at >= %s
            """,
            [list(customer_ids), since],
        )
        for customer_id, code in cur.fetchall():
            out[customer_id].append(code)
    return out


def hybrid_top_n(
    served, customer_ids: Sequence[int], *, top_n: int, exclude_days: int, reference: datetime | None = None
) -> dict[int, list[tuple[str, float]]]:
    """Return each customer's top-N (stock code, score) under the served hybrid, minus recent purchases."""
    from recommendations.evaluation.baselines import top_n as best_columns

    reference = reference or profile.reference_time()
    weights = customer_weights(customer_ids, reference=reference, half_life_days=served.params["half_life_days"])
    recent = recently_bought_codes(customer_ids, since=reference - timedelta(days=exclude_days))
    ids = [cid for cid in customer_ids if weights.get(cid)]
    if not ids:
        return {}
    scores = served.score(served.weight_matrix([weights[cid] for cid in ids]))
    # Products held back for personal data in their descriptions are recommended to no one.
    quarantined = set(Product.objects.filter(pii_quarantined=True).values_list("stock_code", flat=True))
    scores[:, [col for col, code in enumerate(served.items) if str(code) in quarantined]] = float("-inf")
    excluded = served.weight_matrix([dict.fromkeys(recent.get(cid, ()), 1.0) for cid in ids]).astype(bool)
    picks = best_columns(scores, excluded, top_n)
    return {
        cid: [(str(served.items[col]), float(scores[row, col])) for col in cols]
        for row, (cid, cols) in enumerate(zip(ids, picks, strict=True))
    }


# --------------------------------------------------------------------------- evidence of one recommendation


@dataclass(frozen=True)
class HybridEvidence:
    score: float
    base: float  # non-personal popularity term
    contributions: dict[str, float]  # stock code -> contribution, every purchase
    weights: dict[str, float]  # stock code -> w_p
    necessity: dict


def hybrid_explain(*, recommendation, removed_count: int, reference: datetime | None = None) -> HybridEvidence:
    """Split a hybrid recommendation's score into per-purchase contributions + base; check necessity.

    Necessity (CountER-style): without the ``removed_count`` largest contributions, is the item still in
    the customer's top-N under the same model?
    """
    batch = recommendation.batch
    served = hybrid_artifact(batch.params["model"], version=batch.model_version)
    reference = reference or profile.reference_time()
    cid = recommendation.customer_id
    weights = customer_weights([cid], reference=reference, half_life_days=served.params["half_life_days"]).get(cid, {})
    code = recommendation.product.stock_code
    score, contributions, base = served.evidence(weights, code)
    top_n = int(batch.params.get("top_n", settings.ELM_RECOMMENDATIONS_PER_CUSTOMER))
    exclude_days = int(batch.params.get("exclude_days", settings.ELM_RECENT_PURCHASE_EXCLUSION_DAYS))
    removed = [c for c, _ in sorted(contributions.items(), key=lambda kv: -kv[1])[:removed_count]]
    rest = {c: w for c, w in weights.items() if c not in removed}
    excluded = recently_bought_codes([cid], since=reference - timedelta(days=exclude_days)).get(cid, [])
    ranked = [c for c, _ in served.rank(rest, excluded=excluded, top_n=top_n)] if rest else []
    new_rank = ranked.index(code) + 1 if code in ranked else None
    cf_score = served.evidence(rest, code)[0] if rest else None
    necessity = {
        "removed_codes": removed,
        "drops_out": new_rank is None,
        "new_rank": new_rank,
        "counterfactual_score": cf_score,
    }
    return HybridEvidence(score, base, contributions, weights, necessity)


def timezone_aware(naive) -> datetime:
    """Return a naive local (evaluation) timestamp as an aware datetime in the project's time zone."""
    from django.utils import timezone

    return timezone.make_aware(naive.to_pydatetime(), timezone.get_default_timezone())
