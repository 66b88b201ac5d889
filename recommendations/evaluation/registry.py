"""Build any evaluated recommender by name, e.g. the production model recorded in evaluation.json."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from recommendations.evaluation.baselines import (
    ALSRecommender,
    BPRRecommender,
    EASERecommender,
    EmbeddingRecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    Recommender,
)
from recommendations.evaluation.hybrid import HybridRecommender
from recommendations.evaluation.training import TrainingData

MODELS: dict[str, type[Recommender]] = {
    cls.name: cls
    for cls in (
        PopularityRecommender,
        ItemKNNRecommender,
        EASERecommender,
        ALSRecommender,
        BPRRecommender,
        EmbeddingRecommender,
        HybridRecommender,
    )
}
BASELINES = ("popularity", "item_knn", "ease", "als", "bpr", "embedding")


def build_model(name: str, params: Mapping) -> Recommender:
    """Return an unfitted recommender ``name`` with ``params``."""
    return MODELS[name](**dict(params))


def fit_model(
    name: str,
    params: Mapping,
    interactions: pd.DataFrame,
    *,
    as_of: str | pd.Timestamp,
    embeddings: Mapping[str, np.ndarray] | None = None,
) -> Recommender:
    """Fit recommender ``name`` on every interaction before ``as_of`` (e.g. now, for production)."""
    as_of = pd.Timestamp(as_of)
    train = interactions.loc[interactions["occurred_at"] < as_of]
    return build_model(name, params).fit(TrainingData.from_interactions(train, as_of=as_of, embeddings=embeddings))
