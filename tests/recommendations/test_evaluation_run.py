"""The reduced evaluation (CI): a slice of the real data, every model, known-answer metrics, a wrong model loses."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from django.core.management import call_command

from recommendations.evaluation import metrics
from recommendations.evaluation.baselines import PopularityRecommender, Recommender, rank_customers
from recommendations.evaluation.calibration import calibration_report, replay_pairs
from recommendations.evaluation.run import run_evaluation
from recommendations.evaluation.split import temporal_split
from recommendations.evaluation.training import TrainingData
from recommendations.models import EvaluationRun
from recommendations.services.evaluation import (
    REDUCED_AXES,
    REDUCED_GRIDS,
    customer_slice,
    evaluation_result,
    hashed_embeddings,
)

DATASET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"
needs_data = pytest.mark.skipif(not DATASET.exists(), reason="the Online Retail data set is not available")
CUSTOMERS = 400  # a slice: the full run takes ~15-40 minutes, this one well under a minute


# ------------------------------------------------------------------------------- known answers


def test_mean_metrics_over_customers_with_hand_computed_answers():
    """Average per-customer metrics exactly as computed by hand for two customers."""
    # Given customer 1: hits at ranks 2 and 3 of 2 relevant items; customer 2: no hit in the top 10,
    # one relevant item at rank 11
    rankings = [["x", "a", "b", "y"], [f"n{i}" for i in range(10)] + ["c"]]
    relevant = [{"a", "b"}, {"c"}]
    popularity = {item: 0.5 for ranked in rankings for item in ranked}
    # When the metrics are summarized
    result, per_customer = metrics.summarize(rankings, relevant, popularity, catalogue_size=20)
    # Then NDCG@10 = mean((1/log2(3) + 1/log2(4)) / (1 + 1/log2(3)), 0)
    ndcg_1 = (1 / math.log2(3) + 0.5) / (1 + 1 / math.log2(3))
    assert result["ndcg@10"]["mean"] == pytest.approx(ndcg_1 / 2)
    # And MRR = mean(1/2, 1/11) (the first hit anywhere in the list), MAP@10 = mean((1/2 + 2/3) / 2, 0)
    assert result["mrr"]["mean"] == pytest.approx((1 / 2 + 1 / 11) / 2)
    assert result["map@10"]["mean"] == pytest.approx(((1 / 2 + 2 / 3) / 2) / 2)
    # And recall@10 = mean(1, 0), recall@20 = mean(1, 1), hit rate@10 = mean(1, 0)
    assert result["recall@10"]["mean"] == pytest.approx(0.5)
    assert result["recall@20"]["mean"] == pytest.approx(1.0)
    assert result["hit_rate@10"]["mean"] == pytest.approx(0.5)
    # And novelty@10 = -log2(0.5) = 1; coverage@10 = 4 + 10 distinct of 20
    assert result["novelty@10"]["mean"] == pytest.approx(1.0)
    assert result["coverage@10"]["mean"] == pytest.approx(14 / 20)
    assert per_customer["ndcg@10"].tolist() == pytest.approx([ndcg_1, 0.0])


def test_bootstrap_interval_of_a_constant_is_the_constant_and_contains_the_mean():
    """Give a zero-width interval for constant values and one around the mean otherwise."""
    idx = metrics.bootstrap_indices(50, n_resamples=200, seed=1)
    assert metrics.bootstrap_interval(np.full(50, 0.25), idx) == pytest.approx((0.25, 0.25))
    values = np.random.default_rng(0).uniform(size=50)
    low, high = metrics.bootstrap_interval(values, idx)
    assert low < values.mean() < high


def test_calibration_report_of_a_perfectly_calibrated_score():
    """Report a near-zero ECE after calibrating scores that are already probabilities of the outcome."""
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20_000)
    outcomes = (rng.uniform(size=p.size) < p).astype(int)
    shifted = np.clip(p + 0.3, 0, 1)  # the raw score overstates the probability by 0.3
    report = calibration_report((shifted[:10_000], outcomes[:10_000]), (shifted[10_000:], outcomes[10_000:]))
    assert report["ece_before"] > 0.2
    assert report["ece_after"] < 0.03


# ------------------------------------------------------------------------------- the reduced evaluation


class AntiPopularity(Recommender):
    """A trivially wrong recommender: the least bought products first."""

    name = "anti_popularity"

    def score(self, rows):
        return np.broadcast_to(-self.data.popularity, (len(rows), self.data.n_items)).copy()


@pytest.fixture(scope="module")
def sliced():
    from recommendations.evaluation.data import interactions_from_csv

    key = hashlib.sha256(b"test-slice").digest()
    interactions = interactions_from_csv(DATASET, key=key)
    return customer_slice(interactions, customers=CUSTOMERS, seed=0)


@pytest.fixture(scope="module")
def reduced_result(sliced):
    embeddings = hashed_embeddings(sliced["item"].unique())
    return run_evaluation(sliced, embeddings=embeddings, n_resamples=100, grids=REDUCED_GRIDS, hybrid_axes=REDUCED_AXES)


@needs_data
def test_reduced_evaluation_scores_every_model_with_intervals(reduced_result):
    """Evaluate every model on the slice with metrics in range and intervals around the means."""
    result = reduced_result
    assert set(result["models"]) == {"popularity", "item_knn", "ease", "als", "bpr", "embedding", "hybrid"}
    assert (
        0 < result["customers_counted"]["test_evaluated"] <= result["customers_counted"]["test_active_in_both_periods"]
    )
    for name, entry in result["models"].items():
        for metric in ("ndcg@10", "recall@10", "recall@20", "mrr", "map@10", "hit_rate@10"):
            value = entry["test"][metric]
            assert 0.0 <= value["mean"] <= 1.0, (name, metric)
            assert value["ci95"][0] <= value["mean"] <= value["ci95"][1], (name, metric)
        assert 0 < entry["test"]["coverage@10"]["mean"] <= 1
    # And production is chosen on validation among the explainable models, with a calibration report
    assert result["production"]["model"] in ("hybrid", "embedding")
    chosen = result["models"][result["production"]["model"]]
    explainable = [m for m in ("hybrid", "embedding") if m in result["models"]]
    assert chosen["validation_ndcg@10_mean_over_folds"] == max(
        result["models"][m]["validation_ndcg@10_mean_over_folds"] for m in explainable
    )
    assert 0 <= result["calibration"]["ece_after"] <= 1
    assert result["goal"]["best_baseline"] in ("popularity", "item_knn", "ease", "als", "bpr", "embedding")


@needs_data
def test_item_models_beat_popularity_on_the_slice(reduced_result):
    """Rank item-kNN, EASE and the hybrid above recent popularity on the test window (a sanity floor)."""
    ndcg = {name: entry["test"]["ndcg@10"]["mean"] for name, entry in reduced_result["models"].items()}
    for name in ("item_knn", "ease", "hybrid"):
        assert ndcg[name] > ndcg["popularity"], ndcg


@needs_data
def test_a_trivially_wrong_recommender_scores_lower_than_popularity(sliced):
    """Score the least-popular-first recommender far below popularity on the same split."""
    split = temporal_split(sliced, cutoff="2011-09-01")
    data = TrainingData.from_interactions(split.train, as_of=split.cutoff)
    rel = [split.relevant[c] for c in split.customers]
    popularity = dict(zip(data.items.tolist(), data.popularity.tolist(), strict=True))
    results = {}
    for model in (PopularityRecommender(window_days=30), AntiPopularity()):
        model.fit(data)
        ranked = rank_customers(model, split.customers, split.excluded, n=100)
        results[model.name], _ = metrics.summarize(ranked, rel, popularity, catalogue_size=data.n_items)
    assert results["anti_popularity"]["ndcg@10"]["mean"] < 0.25 * results["popularity"]["ndcg@10"]["mean"]
    assert results["anti_popularity"]["hit_rate@10"]["mean"] < results["popularity"]["hit_rate@10"]["mean"]


@needs_data
def test_replay_labels_what_customers_bought_after_the_cutoff(sliced):
    """Pair every top-N item (recent purchases excluded) with whether it was bought within the horizon."""
    from recommendations.evaluation.split import recently_bought

    # Given popularity fitted before the cutoff, and 40 of its customers
    cutoff = pd.Timestamp("2011-09-01")
    train = sliced.loc[sliced["occurred_at"] < cutoff]
    model = PopularityRecommender(window_days=30).fit(TrainingData.from_interactions(train, as_of=cutoff))
    customers = model.data.customers[:40].tolist()
    # When the pairs are replayed
    scores, outcomes = replay_pairs(model, sliced, cutoff=cutoff, top_n=5, customers=customers)
    # Then they are the top-5 lists under the exclusion rule, labelled by the next 90 days' purchases
    ranked = rank_customers(model, customers, recently_bought(train, as_of=cutoff, days=90), n=5)
    after = sliced.loc[(sliced["occurred_at"] >= cutoff) & (sliced["occurred_at"] < cutoff + pd.Timedelta(days=90))]
    bought = set(zip(after["customer"], after["item"], strict=True))
    expected = [int((c, item) in bought) for c, items in zip(customers, ranked, strict=True) for item in items]
    assert outcomes.tolist() == expected and 0 < sum(expected) < len(expected)
    assert scores.tolist() == [model.item_scores[model.data.item_index[i]] for items in ranked for i in items]


# ------------------------------------------------------------------------------- stored runs


@needs_data
@pytest.mark.django_db
def test_evaluate_command_stores_a_reduced_run_that_never_chooses_production(capsys):
    """Write an EvaluationRun with metrics, regions and calibration; reduced, so production ignores it."""
    from recommendations.services.production import production_choice

    call_command("evaluate", source="csv", csv=DATASET, customers=250, embeddings="hashed", resamples=50)
    run = EvaluationRun.objects.get()
    assert run.status == EvaluationRun.Status.SUCCEEDED and run.reduced
    assert run.chosen_model in ("hybrid", "embedding") and run.chosen_version.startswith(run.chosen_model + "@")
    assert set(run.metrics) >= {"popularity", "als", "hybrid"}
    assert "ndcg@10" in run.metrics["als"]["test"] and run.by_region["hybrid"]
    assert run.customers_evaluated > 0 and run.wall_seconds > 0
    assert run.calibration["ece_before"] >= 0
    # And the stored run renders as the markdown table again
    from recommendations.evaluation.report import markdown_table

    assert "**" + run.chosen_model + "** (production)" in markdown_table(evaluation_result(run))
    assert production_choice().evaluation_run_id is None
    assert "production:" in capsys.readouterr().out


@pytest.mark.django_db
def test_evaluate_job_kind_records_its_run_once():
    """Plan the evaluate job into one shard with its run; a redelivered shard does not run it again."""
    from jobs.models import Job
    from recommendations import job_kinds

    job = Job.objects.create(kind="evaluate", params={"source": "db", "reduced": True, "config": {"customers": 5}})
    payloads = job_kinds._plan_evaluate(job)
    again = job_kinds._plan_evaluate(job)
    assert payloads == again and len(payloads) == 1
    run = EvaluationRun.objects.get(pk=payloads[0]["evaluation_run_id"])
    assert run.job_id == job.pk and run.reduced and run.config == {"customers": 5}
    EvaluationRun.objects.filter(pk=run.pk).update(status=EvaluationRun.Status.SUCCEEDED)
    assert job_kinds._run_evaluate(job, payloads[0]) == 1  # already stored: nothing recomputed
