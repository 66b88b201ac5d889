"""Replay on the synthetic shop: the recommender as of a cutoff, scored on known purchases after it."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from django.conf import settings
from django.utils import timezone

from dashboard import selectors
from dashboard.models import ReplayRecommendation, ReplayRun
from dashboard.services import replay
from jobs import registry
from jobs.models import Job
from outcomes.services import ab_arm_for
from recommendations import profile
from recommendations.models import Product, Purchase
from tests.factories import UserFactory
from tests.shop import build_shop

CUTOFF = timezone.make_aware(dt.datetime(2011, 9, 1))


def _buy(customer, product, when, *, kind=Purchase.Kind.SALE, quantity=1) -> None:
    Purchase.objects.create(
        line_key=f"x{customer.pk}:{product.pk}:{when:%Y%m%d}:{kind[0]}",
        customer=customer,
        product=product,
        invoice="X1",
        quantity=quantity,
        unit_price=Decimal("1.00"),
        occurred_at=when,
        kind=kind,
    )


@pytest.fixture
def shop(db):
    """The shop's past purchases (100+ days before the cutoff), random product vectors, and extra lines."""
    products, people = build_shop(customers=6, per_customer=4, now=CUTOFF)
    rng = np.random.default_rng(7)
    for product in products:
        vec = rng.normal(size=384)
        product.embedding = (vec / np.linalg.norm(vec)).tolist()
        product.save(update_fields=["embedding"])
    # Customer 1 bought product 2 ten days before the cutoff: excluded for them (the 90-day rule).
    _buy(people[1], products[2], CUTOFF - dt.timedelta(days=10))
    # Product 20 is first sold after the cutoff: not in the catalogue at the cutoff.
    _buy(people[5], products[20], CUTOFF + dt.timedelta(days=5))
    # The data runs past the horizon, so every replayed recommendation can be decided.
    _buy(people[5], products[0], CUTOFF + dt.timedelta(days=120))
    return products, people


def _expected_top(customer, products, *, top_n: int) -> list[int]:
    """Recompute a customer's recommendations at the cutoff by brute force, independently of the service."""
    lines = Purchase.objects.filter(customer=customer, occurred_at__lt=CUTOFF, kind=Purchase.Kind.SALE)
    acc = np.zeros(384)
    for line in lines:
        age = (CUTOFF - line.occurred_at).total_seconds() / 86400
        weight = profile.weight_of(line.quantity, age, half_life_days=settings.ELM_RECENCY_HALF_LIFE_DAYS)
        acc += weight * np.asarray(line.product.embedding)
    vector = acc / np.linalg.norm(acc)
    sold_before = set(Purchase.objects.filter(occurred_at__lt=CUTOFF, kind="sale").values_list("product_id", flat=True))
    recent = set(lines.filter(occurred_at__gte=CUTOFF - dt.timedelta(days=90)).values_list("product_id", flat=True))
    candidates = [p for p in Product.objects.filter(is_merchandise=True) if p.pk in sold_before and p.pk not in recent]
    scored = sorted(candidates, key=lambda p: -float(np.dot(vector, np.asarray(p.embedding))))
    return [p.pk for p in scored[:top_n]]


def _run_replay_job(**params) -> Job:
    """Run the replay job kind in-process: plan, every shard, finalize (what the workers do)."""
    job = Job.objects.create(kind="replay", params={"cutoff": "2011-09-01", **params}, status=Job.Status.RUNNING)
    kind = registry.get("replay")
    for payload in kind.plan(job):
        kind.run_shard(job, payload)
    job.result = {**job.result, **kind.finalize(job)}
    job.save(update_fields=["result"])
    return job


def test_the_embedding_replay_recommends_what_the_production_rule_recommends_at_the_cutoff(shop, settings):
    # Given: production serves the embedding recommender
    settings.ELM_RECOMMENDER = "embedding"
    settings.ELM_RECOMMENDATIONS_PER_CUSTOMER = 5
    products, people = shop
    # When
    job = _run_replay_job()
    run = ReplayRun.objects.get(pk=job.result["replay_run_id"])
    # Then: the same top 5 as a brute-force recomputation, for every customer with purchases before the cutoff.
    assert run.recommender == "embedding-cosine"
    assert run.status == ReplayRun.Status.SUCCEEDED and run.customers == 6 and run.recommendations == 30
    for person in people:
        got = list(run.rows.filter(customer=person).order_by("rank").values_list("product_id", flat=True))
        assert got == _expected_top(person, products, top_n=5), person
    replayed = set(run.rows.values_list("product_id", flat=True))
    assert products[20].pk not in replayed  # first sold after the cutoff
    assert not run.rows.filter(customer=people[1], product=products[2]).exists()  # bought 10 days before


@pytest.mark.parametrize("recommender", ["hybrid", "embedding"])
def test_replay_outcomes_come_from_real_purchases_within_the_horizon(shop, settings, recommender):
    settings.ELM_RECOMMENDER = recommender
    # Given: the replay's first two recommendations for customer 0, and one for customer 2.
    _products, people = shop
    first = _run_replay_job()
    rows = ReplayRecommendation.objects.filter(run_id=first.result["replay_run_id"])
    by_rank = {r.rank: r.product for r in rows.filter(customer=people[0])}
    c2_top = rows.get(customer=people[2], rank=1).product
    other = next(p for p in people[3:] if not rows.filter(customer=p, product=c2_top).exists())
    bought_at = CUTOFF + dt.timedelta(days=30)
    _buy(people[0], by_rank[1], bought_at)  # within 90 days: won
    _buy(people[0], by_rank[2], CUTOFF + dt.timedelta(days=95))  # after the horizon: lost
    _buy(other, c2_top, bought_at)  # somebody else bought it: still lost for customer 2
    _buy(people[2], c2_top, bought_at, kind=Purchase.Kind.RETURN, quantity=-1)  # a return is no purchase
    # When: a new import means a new replay (the earlier one is not reused).
    job = _run_replay_job(force=True)
    run = ReplayRun.objects.get(pk=job.result["replay_run_id"])
    # Then
    won = {(r.customer_id, r.rank): r.won_at for r in run.rows.filter(won=True)}
    assert won == {(people[0].pk, 1): bought_at}
    assert run.won == 1 and job.result["won"] == 1
    assert not run.rows.get(customer=people[0], rank=2).won
    assert not run.rows.get(customer=people[2], rank=1).won


def test_replay_arms_follow_the_live_assignment_rule(shop, settings):
    settings.ELM_AB_CONTROL_SHARE = 0.5
    run = ReplayRun.objects.get(pk=_run_replay_job().result["replay_run_id"])
    arms = {row.arm for row in run.rows.all()}
    assert arms == {"explained", "control"}
    for row in run.rows.all():
        assert row.arm == ab_arm_for(customer_id=row.customer_id, product_id=row.product_id, control_share=0.5)
    assert run.control_share == 0.5


def test_an_unchanged_replay_is_reused_and_force_recomputes(shop):
    first = _run_replay_job()
    again = _run_replay_job()
    assert again.result["replay_run_id"] == first.result["replay_run_id"] and again.result["reused"]
    forced = _run_replay_job(force=True)
    assert forced.result["replay_run_id"] != first.result["replay_run_id"]
    assert ReplayRun.objects.filter(status=ReplayRun.Status.SUCCEEDED).count() == 2


@pytest.mark.parametrize("recommender", ["hybrid", "embedding"])
def test_purchases_after_the_cutoff_do_not_change_what_the_replay_recommends(shop, settings, recommender):
    # Given: a replay, then many purchases after the cutoff (that a leaky replay would learn from)
    settings.ELM_RECOMMENDER = recommender
    products, people = shop
    before = _run_replay_job()
    for person in people:
        for product in products[:12]:
            _buy(person, product, CUTOFF + dt.timedelta(days=1), quantity=50)
    # When
    after = _run_replay_job(force=True)

    # Then: the same recommendations (only the outcomes may differ), none of them excluded ones
    def lists(job):
        rows = ReplayRecommendation.objects.filter(run_id=job.result["replay_run_id"]).order_by("customer", "rank")
        return [(r.customer_id, r.rank, r.product_id) for r in rows]

    assert lists(after) == lists(before) and len(lists(after)) == 6 * settings.ELM_RECOMMENDATIONS_PER_CUSTOMER
    run = ReplayRun.objects.get(pk=after.result["replay_run_id"])
    assert run.recommender == {"hybrid": "hybrid", "embedding": "embedding-cosine"}[recommender]
    assert products[20].pk not in {pid for _c, _r, pid in lists(after)}
    assert not run.rows.filter(customer=people[1], product=products[2]).exists()


def test_the_hybrid_is_fitted_on_the_lines_before_the_cutoff_only(shop, settings):
    settings.ELM_RECOMMENDER = "hybrid"
    run = ReplayRun.objects.get(pk=_run_replay_job().result["replay_run_id"])
    before = Purchase.objects.filter(occurred_at__lt=CUTOFF, kind="sale", product__is_merchandise=True)
    assert run.params["fitted_on"]["lines"] == before.count() == 6 * 4 + 1
    assert not replay.model_dir(run.pk).exists()  # the fitted model is dropped once the rows are written


def test_a_horizon_past_the_end_of_the_data_is_refused(shop):
    with pytest.raises(replay.ReplayNotPossible, match="after the last purchase"):
        replay.replay_run_start(cutoff=CUTOFF, horizon_days=200)
    with pytest.raises(replay.ReplayNotPossible, match="no purchases before"):
        replay.replay_run_start(cutoff=CUTOFF - dt.timedelta(days=400))


def test_the_cutoff_is_midnight_local_time():
    assert timezone.localtime(replay.cutoff_datetime("2011-09-01")).isoformat() == "2011-09-01T00:00:00+01:00"
    assert replay.cutoff_datetime(None) == replay.cutoff_datetime("2011-09-01")


def test_replay_deal_kpis_count_every_replayed_recommendation_as_pitched(shop):
    _products, people = shop
    run = ReplayRun.objects.get(pk=_run_replay_job().result["replay_run_id"])
    top = run.rows.get(customer=people[4], rank=1)
    ReplayRecommendation.objects.filter(pk=top.pk).update(won=True, won_at=CUTOFF + dt.timedelta(days=3))
    manager = UserFactory(username="replay-manager", groups=["manager"])
    # When
    kpis = selectors.replay_deal_kpis(user=manager, filters=selectors.Filters(), run=run)
    # Then
    n = settings.ELM_RECOMMENDATIONS_PER_CUSTOMER
    assert kpis.shown == kpis.pitched == 6 * n and (kpis.won, kpis.lost) == (1, 6 * n - 1)
    assert kpis.customers == 6 and kpis.customers_won == 1
    assert sum(a.pitched for a in kpis.arms.values()) == 6 * n
    assert kpis.ranks[0] == (1, 6, 1)
    assert [(w.week.isoformat(), w.values) for w in kpis.weeks] == [("2011-08-29", {"won": 1})]
    # And re-orders (bought before the cutoff) and new products are counted apart, adding up to the totals
    reorders = run.rows.filter(times_bought__gt=0).count()
    assert [(k.kind, k.shown) for k in kpis.kinds] == [("reorder", reorders), ("new", 6 * n - reorders)]
    assert sum(k.won for k in kpis.kinds) == 1
    for row in run.rows.all():  # as of the cutoff: sale days before it
        before = Purchase.objects.filter(
            customer_id=row.customer_id, product_id=row.product_id, kind="sale", occurred_at__lt=CUTOFF
        )
        assert row.times_bought == len({timezone.localdate(p.occurred_at) for p in before})
