"""KPI selectors on the hand-built world of conftest.kpi_world: every number is worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from dashboard import model_selectors, selectors
from dashboard.selectors import Filters
from recommendations.models import Recommendation
from tests.dashboard.conftest import PERIOD_END, PERIOD_START, at
from tests.factories import CustomerFactory, ProductFactory, PurchaseFactory

PERIOD = Filters(date_from=PERIOD_START, date_to=PERIOD_END)


def test_deal_kpis_count_shown_pitched_won_lost_and_not_relevant(kpi_world):
    # When
    kpis = selectors.deal_kpis(user=kpi_world.users["manager"], filters=PERIOD)
    # Then: r5 (before the period) is left out; r6 was never shown but has outcomes.
    assert kpis.shown == 4
    assert (kpis.pitched, kpis.won, kpis.lost, kpis.open, kpis.not_relevant) == (4, 1, 2, 1, 1)
    assert (kpis.win_rate.successes, kpis.win_rate.trials) == (1, 3)
    assert (kpis.acceptance.successes, kpis.acceptance.trials) == (4, 5)
    assert kpis.pitch_rate.value == 1.0


def test_deal_kpis_split_by_arm_with_the_latest_decision_of_each_deal(kpi_world):
    kpis = selectors.deal_kpis(user=kpi_world.users["manager"], filters=PERIOD)
    explained, control = kpis.arms["explained"], kpis.arms["control"]
    # r6 was won, then lost: its latest decision counts.
    assert (explained.shown, explained.pitched, explained.won, explained.lost) == (3, 3, 1, 1)
    assert (control.shown, control.pitched, control.won, control.lost) == (1, 1, 0, 1)
    assert kpis.difference.value == pytest.approx(0.5)
    low, high = kpis.difference.interval
    assert low < 0 < high and not kpis.difference.significant


def test_deal_kpis_split_re_orders_from_new_products(kpi_world):
    """Re-orders (r1 won, r6 lost; r6 never shown) and new products (r2 lost, r3 open, r4 not relevant)."""
    # Given r1 and r6 recommend products their customers bought before
    for key in ("r1", "r6"):
        Recommendation.objects.filter(pk=kpi_world.recs[key].pk).update(times_bought=3)
    # When
    kpis = selectors.deal_kpis(user=kpi_world.users["manager"], filters=PERIOD)
    # Then each kind has its own shown, pitched, won and lost, adding up to the totals
    kinds = {k.kind: (k.shown, k.pitched, k.won, k.lost) for k in kpis.kinds}
    assert kinds == {"reorder": (1, 2, 1, 1), "new": (3, 2, 0, 1)}
    assert kpis.kinds[0].win_rate.value == pytest.approx(0.5)


def test_deal_kpis_by_region_and_week(kpi_world):
    kpis = selectors.deal_kpis(user=kpi_world.users["manager"], filters=PERIOD)
    assert [(r.region, r.pitched, r.won, r.lost) for r in kpis.regions] == [("North", 4, 1, 2)]
    weeks = {w.week.isoformat(): w.values for w in kpis.weeks}
    # Days 1-6 fall in the week of 2 March, day 7 (9 March) in the next.
    assert weeks["2026-03-02"] == {"shown": 4, "pitched": 4, "won": 2, "lost": 1, "not_relevant": 1}
    assert weeks["2026-03-09"] == {"lost": 1}


def test_deal_kpis_follow_the_region_and_sales_person_filters(kpi_world):
    manager = kpi_world.users["manager"]
    south = selectors.deal_kpis(user=manager, filters=Filters(PERIOD_START, PERIOD_END, region="South"))
    assert (south.shown, south.pitched, south.not_relevant) == (1, 0, 1)
    s2_book = selectors.deal_kpis(
        user=manager, filters=Filters(PERIOD_START, PERIOD_END, sales_user_id=kpi_world.users["s2"].pk)
    )
    assert (s2_book.shown, s2_book.pitched, s2_book.won, s2_book.lost, s2_book.open) == (1, 2, 0, 1, 1)


def test_without_a_date_range_every_outcome_counts(kpi_world):
    kpis = selectors.deal_kpis(user=kpi_world.users["manager"], filters=Filters())
    # r5's earlier win now counts (control arm), and its exposure too.
    assert (kpis.shown, kpis.won, kpis.lost) == (5, 2, 2)
    assert (kpis.arms["control"].won, kpis.arms["control"].lost) == (1, 1)


def test_review_kpis_decisions_times_edits_and_queue(kpi_world):
    # When
    kpis = selectors.review_kpis(user=kpi_world.users["manager"], filters=PERIOD)
    # Then
    assert (kpis.approved, kpis.rejected, kpis.changes_requested, kpis.edits) == (1, 1, 1, 1)
    assert (kpis.approval_rate.successes, kpis.approval_rate.trials) == (1, 3)
    # e1 10 h; e2 55 h counted from its edit (which put it back into review); e3 20 h.
    assert sorted(kpis.decision_hours) == pytest.approx([10, 20, 55])
    assert kpis.median_hours == pytest.approx(20)
    assert kpis.p90_hours == pytest.approx(48)  # 20 + 0.8 x (55 - 20)
    assert (kpis.within_sla.successes, kpis.within_sla.trials) == (2, 3)  # SLA 48 h
    assert kpis.pending == 1 and kpis.overdue == 1
    assert kpis.oldest_pending_hours == pytest.approx(100, abs=0.1)
    assert dict(kpis.age_buckets) == {"under_1d": 0, "1_2d": 0, "2_7d": 1, "over_7d": 0}
    assert {w.week.isoformat(): w.values for w in kpis.weeks} == {
        "2026-03-02": {"approved": 1, "rejected": 1, "changes_requested": 1}
    }


def test_review_kpis_outside_the_period_are_empty_but_the_queue_stays(kpi_world):
    kpis = selectors.review_kpis(user=kpi_world.users["manager"], filters=Filters(PERIOD_END, PERIOD_END))
    assert kpis.decisions == 0 and kpis.edits == 0 and kpis.decision_hours == []
    assert kpis.pending == 1


def test_quality_kpis_flag_rates_by_kind_and_histograms(kpi_world):
    # When
    kpis = model_selectors.quality_kpis(user=kpi_world.users["manager"], filters=Filters())
    # Then: two flags of one kind on e1 count once.
    assert kpis.explanations == 4 and kpis.flagged == 3
    assert kpis.flag_counts == [("pii", 2), ("risky_claim", 1)]
    assert [(kind, rate.value) for kind, rate in kpis.flag_rates] == [("pii", 0.5), ("risky_claim", 0.25)]
    # Consistency 0.15, 0.25, 0.35, 1.0 -> range 0.1..1.0 in 9 bins of 0.1; 1.0 lands in the last bin.
    assert len(kpis.consistency) == 9
    assert kpis.consistency[0].low == pytest.approx(0.1) and kpis.consistency[-1].high == pytest.approx(1.0)
    assert [b.count for b in kpis.consistency] == [1, 1, 1, 0, 0, 0, 0, 0, 1]
    # Confidence 0.05, 0.12, 0.18, 0.31 -> range 0.0..0.4 in 8 bins of 0.05.
    assert [b.count for b in kpis.confidence] == [0, 1, 1, 1, 0, 0, 1, 0]
    assert kpis.confidence[1].label == "0.05–0.10"


def test_quality_kpis_follow_the_region_filter(kpi_world):
    kpis = model_selectors.quality_kpis(user=kpi_world.users["manager"], filters=Filters(region="South"))
    assert kpis.explanations == 1 and kpis.flag_counts == [("pii", 1)]


def test_fairness_by_region(kpi_world):
    rows = {r.region: r for r in model_selectors.fairness_by_region(user=kpi_world.users["manager"], filters=PERIOD)}
    north, south = rows["North"], rows["South"]
    assert (north.customers, north.recommended, north.shown, north.decisions, north.approved) == (2, 2, 3, 3, 1)
    assert north.recommendation_rate.value == 1.0
    assert north.approval_rate.value == pytest.approx(1 / 3)
    # c4 has no recommendation: half of the South is recommended; nothing was reviewed there.
    assert (south.customers, south.recommended, south.shown, south.decisions) == (2, 1, 1, 0)
    assert south.recommendation_rate.value == 0.5 and south.approval_rate.value is None


def _unit(i: int) -> list[float]:
    v = np.zeros(384)
    v[i] = 1.0
    return v.tolist()


@pytest.mark.django_db
def test_embedding_drift_is_one_minus_cosine_of_monthly_centroids(django_user_model):
    # Given: product a on axis 0, b on axis 1; January buys a, February b (twice), March one of each.
    manager = django_user_model.objects.create(username="drift-manager", is_superuser=True)
    a, b = ProductFactory(embedding=_unit(0)), ProductFactory(embedding=_unit(1))
    c1, c2 = CustomerFactory(), CustomerFactory()
    jan, feb, mar = at(-51), at(-20), at(8)  # 10 January, 10 February, 10 March
    for customer, product, when in ((c1, a, jan), (c1, b, feb), (c2, b, feb), (c2, b, feb), (c1, a, mar), (c2, b, mar)):
        PurchaseFactory(customer=customer, product=product, occurred_at=when)
    # When
    points = model_selectors.embedding_drift(user=manager, filters=Filters())
    # Then: pairs are distinct (customer, product) per month (c2 bought b twice in February).
    assert [p.pairs for p in points] == [1, 2, 2]
    assert points[0].shift is None and points[0].from_first == pytest.approx(0)
    assert points[1].shift == pytest.approx(1.0) and points[1].from_first == pytest.approx(1.0)
    assert points[2].shift == pytest.approx(1 - 1 / math.sqrt(2))
    assert points[2].from_first == pytest.approx(1 - 1 / math.sqrt(2))
