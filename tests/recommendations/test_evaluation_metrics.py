"""Evaluation metrics with hand-computed answers, the temporal split and exclusion rule, and the loaders."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recommendations.evaluation import metrics
from recommendations.evaluation.baselines import PopularityRecommender, Recommender, rank_customers, top_n
from recommendations.evaluation.data import INTERACTION_COLUMNS, interactions_from_csv
from recommendations.evaluation.split import recently_bought, temporal_split, validation_split, validation_splits
from recommendations.evaluation.training import TrainingData

DATASET = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "online_retail" / "online_retail.csv.gz"

# One hand-built ranking: hits at ranks 1 and 3, three relevant items (c is never ranked).
RANKED = ["a", "x", "b", "y"]
RELEVANT = {"a", "b", "c"}


# ------------------------------------------------------------------------------------------ metrics


def test_ndcg_of_hand_built_ranking():
    """Score a ranking with hits at ranks 1 and 3 out of 3 relevant items."""
    # Given DCG = 1/log2(2) + 1/log2(4) = 1.5 and IDCG = 1 + 1/log2(3) + 1/log2(4)
    ideal = 1 + 1 / math.log2(3) + 0.5
    # When NDCG@10 is computed
    value = metrics.ndcg_at_k(RANKED, RELEVANT, 10)
    # Then it is their ratio (0.70392...)
    assert value == pytest.approx(1.5 / ideal)
    assert value == pytest.approx(0.703918, abs=1e-6)


def test_ndcg_is_one_for_a_perfect_ranking_and_zero_without_hits():
    """Give 1 to a perfect list, 0 to a list without hits and to an empty relevant set."""
    assert metrics.ndcg_at_k(["b", "a", "c", "x"], RELEVANT, 10) == pytest.approx(1.0)
    assert metrics.ndcg_at_k(["x", "y"], RELEVANT, 10) == 0.0
    assert metrics.ndcg_at_k(RANKED, set(), 10) == 0.0


def test_ndcg_ideal_is_capped_at_k():
    """Cap the ideal DCG at k positions when more than k items are relevant."""
    # Given 3 relevant items but k = 2, and a list with hits at both of its first 2 ranks
    # Then the list is perfect at k = 2
    assert metrics.ndcg_at_k(["a", "b"], RELEVANT, 2) == pytest.approx(1.0)
    # And a single hit at rank 2 scores (1/log2 3) / (1 + 1/log2 3)
    expected = (1 / math.log2(3)) / (1 + 1 / math.log2(3))
    assert metrics.ndcg_at_k(["x", "a"], RELEVANT, 2) == pytest.approx(expected)


def test_recall_hit_rate_mrr_and_map_of_hand_built_ranking():
    """Compute recall, hit rate, reciprocal rank and AP on the hand-built ranking."""
    assert metrics.recall_at_k(RANKED, RELEVANT, 10) == pytest.approx(2 / 3)
    assert metrics.recall_at_k(RANKED, RELEVANT, 2) == pytest.approx(1 / 3)
    assert metrics.hit_rate_at_k(RANKED, RELEVANT, 1) == 1.0
    assert metrics.hit_rate_at_k(["x", "y", "a"], RELEVANT, 2) == 0.0
    assert metrics.reciprocal_rank(RANKED, RELEVANT) == 1.0
    assert metrics.reciprocal_rank(["x", "y", "b"], RELEVANT) == pytest.approx(1 / 3)
    assert metrics.reciprocal_rank(["x", "y"], RELEVANT) == 0.0
    # AP@10 = (P@1 + P@3) / min(3, 10) = (1 + 2/3) / 3
    assert metrics.average_precision_at_k(RANKED, RELEVANT, 10) == pytest.approx((1 + 2 / 3) / 3)
    # AP@2 = P@1 / min(3, 2)
    assert metrics.average_precision_at_k(RANKED, RELEVANT, 2) == pytest.approx(0.5)


def test_coverage_and_novelty():
    """Count distinct items shown at k over the catalogue; average self-information of the top k."""
    lists = [["a", "b", "z"], ["b", "c", "a"]]
    assert metrics.catalogue_coverage(lists, 10, k=2) == pytest.approx(0.3)
    assert metrics.catalogue_coverage(lists, 10, k=1) == pytest.approx(0.2)
    popularity = {"a": 0.5, "b": 0.25, "c": 0.125}
    # -log2(0.5) = 1, -log2(0.25) = 2
    assert metrics.novelty_at_k(["a", "b", "c"], popularity, k=2) == pytest.approx(1.5)


def test_bootstrap_interval_is_seeded_and_brackets_the_mean():
    """Return the same interval for the same seed, around the mean; a point for constant values."""
    # Given per-customer values and two draws of resamples with the same seed
    values = np.random.default_rng(7).random(500)
    first = metrics.bootstrap_interval(values, metrics.bootstrap_indices(500, n_resamples=1000, seed=3))
    second = metrics.bootstrap_interval(values, metrics.bootstrap_indices(500, n_resamples=1000, seed=3))
    # Then the intervals are identical, contain the mean and have the width of ~4 standard errors
    assert first == second
    assert first[0] < values.mean() < first[1]
    standard_error = values.std() / math.sqrt(500)
    assert 3.0 * standard_error < first[1] - first[0] < 5.0 * standard_error
    constant = metrics.bootstrap_interval(np.full(50, 0.25), metrics.bootstrap_indices(50, seed=1))
    assert constant == pytest.approx((0.25, 0.25))


def test_summarize_means_match_the_per_customer_functions():
    """Average each per-customer metric over customers."""
    rankings = [RANKED, ["x", "c"]]
    relevant = [RELEVANT, {"c"}]
    popularity = {"a": 0.5, "b": 0.5, "c": 0.5, "x": 0.25, "y": 0.25}
    result, per_customer = metrics.summarize(rankings, relevant, popularity, catalogue_size=5)
    expected_ndcg = (metrics.ndcg_at_k(RANKED, RELEVANT) + 1 / math.log2(3)) / 2
    assert result["ndcg@10"]["mean"] == pytest.approx(expected_ndcg)
    assert result["mrr"]["mean"] == pytest.approx((1 + 0.5) / 2)
    assert result["coverage@10"]["mean"] == pytest.approx(1.0)
    assert per_customer["hit_rate@10"].tolist() == [1.0, 1.0]


# ---------------------------------------------------------------------------- split and exclusion


def _frame(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer": [r[0] for r in rows],
            "item": [r[1] for r in rows],
            "quantity": 1,
            "unit_price": 1.0,
            "occurred_at": pd.to_datetime([r[2] for r in rows]),
            "region": "United Kingdom",
        }
    )


TINY = _frame(
    [
        # A: x recently (excluded), y long ago (an old repeat stays relevant)
        ("A", "y", "2011-03-01 10:00"),
        ("A", "x", "2011-05-20 10:00"),
        ("A", "x", "2011-06-10 10:00"),  # test: recent repeat -> excluded
        ("A", "y", "2011-06-15 10:00"),  # test: old repeat -> relevant
        ("A", "z", "2011-06-01 00:00"),  # test: exactly at the cutoff -> test window
        ("A", "w", "2011-07-01 00:00"),  # exactly cutoff + horizon -> outside
        # B: training only
        ("B", "x", "2011-05-25 10:00"),
        # C: active in both, but only recent repeats -> counted, not evaluated
        ("C", "x", "2011-05-25 10:00"),
        ("C", "x", "2011-06-05 10:00"),
        # D: test only (no history) -> not counted
        ("D", "z", "2011-06-05 10:00"),
    ]
)


def test_temporal_split_applies_the_exclusion_rule():
    """Keep only new-to-the-customer or old-repeat items of customers active in both periods."""
    # When the tiny frame is split at 2011-06-01 with 30-day horizon and exclusion windows
    split = temporal_split(TINY, cutoff="2011-06-01", horizon_days=30, exclusion_days=30)
    # Then training holds only the lines before the cutoff
    assert split.train["occurred_at"].max() < pd.Timestamp("2011-06-01")
    assert len(split.train) == 4
    # And only A has something to find: the old repeat y and the new z (w is past the horizon)
    assert split.relevant == {"A": frozenset({"y", "z"})}
    assert split.customers == ["A"]
    # And A and C were active in both periods
    assert split.customers_active_both == 2
    # And recommenders must exclude what each customer bought in the last 30 days of training
    assert split.excluded == {"A": frozenset({"x"}), "B": frozenset({"x"}), "C": frozenset({"x"})}
    assert recently_bought(TINY, as_of="2011-06-01", days=30) == split.excluded
    assert split.region == {"A": "United Kingdom"}


def test_validation_split_sees_only_training_lines():
    """Carve validation out of training: its answers do not change when test lines are dropped."""
    # Given a split, and the same data without anything from the cutoff on
    split = temporal_split(TINY, cutoff="2011-06-01", horizon_days=30, exclusion_days=30)
    clipped = temporal_split(
        TINY[TINY["occurred_at"] < pd.Timestamp("2011-06-01")], cutoff="2011-06-01", horizon_days=30, exclusion_days=30
    )
    # When validation splits are carved out of each
    val, val_clipped = validation_split(split), validation_split(clipped)
    # Then they are one horizon earlier and identical
    assert val.cutoff == pd.Timestamp("2011-05-02")
    assert val.relevant == val_clipped.relevant == {"A": frozenset({"x"})}
    assert val.customers_active_both == 1
    folds = validation_splits(split, folds=2)
    assert [f.cutoff for f in folds] == [pd.Timestamp("2011-05-02"), pd.Timestamp("2011-04-17")]
    assert all(f.cutoff + pd.Timedelta(days=30) <= split.cutoff for f in folds)


def test_rankings_never_contain_excluded_items():
    """Drop each customer's recently bought items from their list."""
    # Given popularity, where x is the most bought item overall
    split = temporal_split(TINY, cutoff="2011-06-01", horizon_days=30, exclusion_days=30)
    data = TrainingData.from_interactions(split.train, as_of=split.cutoff)
    model = PopularityRecommender(window_days=None).fit(data)
    # When every training customer is ranked
    customers = sorted(data.customers)
    ranked = rank_customers(model, customers, split.excluded, n=10)
    # Then nobody sees x, A still sees y, and B and C have nothing else to see
    assert dict(zip(customers, ranked, strict=True)) == {"A": ["y"], "B": ["y"], "C": ["y"]}


def test_purchase_weights_are_per_product_and_decay_from_the_latest_purchase():
    """Weigh a bought product by log1p(total quantity) or 1, times 0.5 ** (days since last bought / half-life)."""
    # Given a customer who bought x twice (3 + 4 units, latest 30 days ago) and y once (9 units, 90 days ago)
    frame = _frame([("A", "x", "2011-01-01"), ("A", "x", "2011-05-02"), ("A", "y", "2011-03-03")])
    frame["quantity"] = [3, 4, 9]
    data = TrainingData.from_interactions(frame, as_of="2011-06-01")
    x, y = data.item_index["x"], data.item_index["y"]
    # When weights are computed with a 30-day half-life
    log_weights = data.purchase_weights(half_life_days=30.0, quantity="log1p").toarray()[0]
    unit_weights = data.purchase_weights(half_life_days=30.0, quantity="binary").toarray()[0]
    undecayed = data.purchase_weights(half_life_days=None, quantity="log1p").toarray()[0]
    # Then each product gets one weight from its total quantity and its latest purchase
    assert log_weights[x] == pytest.approx(math.log1p(7) * 0.5)
    assert log_weights[y] == pytest.approx(math.log1p(9) * 0.125)
    assert unit_weights.tolist() == pytest.approx([0.5, 0.125])
    assert undecayed.tolist() == pytest.approx([math.log1p(7), math.log1p(9)])


def test_top_n_orders_by_score_then_column():
    """Rank by descending score, ties by column index, never returning excluded columns."""
    import scipy.sparse as sp

    scores = np.array([[0.1, 0.5, 0.5, 0.9], [1.0, 0.0, 0.0, 0.0]])
    exclude = sp.csr_matrix(np.array([[False, False, False, True], [True, False, False, False]]))
    best = top_n(scores, exclude, 3)
    assert [b.tolist() for b in best] == [[1, 2, 0], [1, 2, 3]]


def test_region_breakdown_pools_regions_with_few_customers():
    """Publish per-region means only for groups of at least 5 evaluated customers, pooling smaller regions."""
    from recommendations.evaluation.run import POOLED_REGIONS, _by_region
    from recommendations.evaluation.split import TemporalSplit

    # Given 6 UK customers, 3 in Japan, 2 in Peru and 1 in Chile, with known NDCG values
    regions = ["UK"] * 6 + ["Japan"] * 3 + ["Peru"] * 2 + ["Chile"]
    customers = [f"c{i:02d}" for i in range(len(regions))]
    split = TemporalSplit(
        cutoff=pd.Timestamp("2011-09-01"),
        horizon_days=90,
        exclusion_days=90,
        train=pd.DataFrame(),
        relevant={c: frozenset({"x"}) for c in customers},
        excluded={},
        region=dict(zip(customers, regions, strict=True)),
        customers_active_both=len(customers),
    )
    ndcg = np.array([0.5] * 6 + [0.0] * 3 + [1.0] * 2 + [0.25])
    values = {name: ndcg for name in metrics.PER_CUSTOMER_METRICS}
    # When the breakdown is computed
    breakdown = _by_region(values, split, seed=0, n_resamples=200)
    # Then the UK stands alone and the three small regions form one pool of 6
    assert set(breakdown) == {"UK", POOLED_REGIONS}
    assert breakdown["UK"]["customers"] == 6
    assert breakdown["UK"]["ndcg@10"]["mean"] == pytest.approx(0.5)
    assert breakdown[POOLED_REGIONS]["regions"] == ["Chile", "Japan", "Peru"]
    assert breakdown[POOLED_REGIONS]["ndcg@10"]["mean"] == pytest.approx(2.25 / 6)


# ------------------------------------------------------------------------ real data: a sanity check


class LeastPopularRecommender(Recommender):
    """A deliberately wrong recommender: the items the fewest customers bought."""

    name = "least_popular"

    def fit(self, data):
        super().fit(data)
        self.item_scores = -data.recent_buyers(None)
        return self

    def score(self, rows):
        return np.broadcast_to(self.item_scores, (len(rows), len(self.item_scores))).copy()


@pytest.mark.skipif(not DATASET.exists(), reason="the shared dataset is not available")
def test_least_popular_scores_lower_than_popularity_on_real_data():
    """Rank popularity above a least-popular recommender on the first 60k rows of the real data."""
    # Given the first 60k rows (2010-12-01 .. 2011-01-17), split after the Christmas break
    interactions = interactions_from_csv(DATASET, nrows=60_000, key=b"test-key")
    split = temporal_split(interactions, cutoff="2011-01-04", horizon_days=14, exclusion_days=14)
    data = TrainingData.from_interactions(split.train, as_of=split.cutoff)
    assert len(split.customers) > 50
    # When both recommenders are evaluated on the same customers
    results = {}
    for model in (PopularityRecommender(window_days=None), LeastPopularRecommender()):
        model.fit(data)
        ranked = rank_customers(model, split.customers, split.excluded, n=20)
        popularity = dict(zip(data.items, data.popularity, strict=True))
        results[model.name], _ = metrics.summarize(
            ranked, [split.relevant[c] for c in split.customers], popularity, catalogue_size=data.n_items
        )
    # Then popularity is clearly better, and the wrong one recommends rarer (more novel) items
    assert results["popularity"]["ndcg@10"]["mean"] > 0.05
    assert results["popularity"]["ndcg@10"]["mean"] > 5 * results["least_popular"]["ndcg@10"]["mean"]
    assert results["least_popular"]["novelty@10"]["mean"] > results["popularity"]["novelty@10"]["mean"]


@pytest.mark.skipif(not DATASET.exists(), reason="the shared dataset is not available")
def test_csv_loader_keeps_clean_merchandise_sales_only():
    """Load only positive merchandise sale lines with pseudonymous customers and a region."""
    interactions = interactions_from_csv(DATASET, nrows=60_000, key=b"test-key")
    assert list(interactions.columns) == INTERACTION_COLUMNS
    assert (interactions["quantity"] > 0).all() and (interactions["unit_price"] > 0).all()
    assert interactions["item"].str.fullmatch(r"\d{5}[A-Z]{0,4}").all()
    # Pseudonyms are 16 hex chars, never the 5-digit source ids
    assert interactions["customer"].str.fullmatch(r"[0-9a-f]{16}").all()
    assert interactions["region"].notna().all()


# --------------------------------------------------------------------------------- database loader


@pytest.mark.django_db
def test_interactions_from_db_reads_merchandise_sales_in_local_time():
    """Read sale lines of merchandise with the customer pseudonym, stock code and region."""
    from recommendations.evaluation.data import interactions_from_db
    from recommendations.models import Purchase
    from tests.factories import CustomerFactory, ProductFactory, PurchaseFactory

    # Given a sale, a return, a non-merchandise line and a line without customer
    customer = CustomerFactory(pseudonym="00000000000000aa", region="Western Europe")
    mug = ProductFactory(stock_code="22423")
    postage = ProductFactory(stock_code="POST", is_merchandise=False)
    when = dt.datetime(2011, 7, 1, 11, 30, tzinfo=dt.UTC)  # 12:30 in London (BST)
    PurchaseFactory(customer=customer, product=mug, quantity=4, unit_price=Decimal("1.250"), occurred_at=when)
    PurchaseFactory(customer=customer, product=mug, quantity=-1, kind=Purchase.Kind.RETURN, occurred_at=when)
    PurchaseFactory(customer=customer, product=postage, occurred_at=when)
    PurchaseFactory(customer=None, product=mug, occurred_at=when)
    # When interactions are read from the database
    frame = interactions_from_db()
    # Then only the merchandise sale remains, in the data's local wall-clock time
    assert list(frame.columns) == INTERACTION_COLUMNS
    assert frame.to_dict("records") == [
        {
            "customer": "00000000000000aa",
            "item": "22423",
            "quantity": 4,
            "unit_price": 1.25,
            "occurred_at": pd.Timestamp("2011-07-01 12:30"),
            "region": "Western Europe",
        }
    ]
