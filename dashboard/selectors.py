"""Reads for the manager dashboard: KPIs of deals and reviews (explanation quality, fairness, drift and the
offline evaluation are in ``dashboard.model_selectors``).

Every selector takes the viewer and the filters, starts from ``customer_queryset_for`` (the scoping
hook), and runs a fixed number of aggregate queries whatever the amount of data; folding of a few
rows per deal or review happens in Python. Definitions (also in docs/dashboard.md):

- *deal*: a (customer, product) pair with at least one outcome in the period;
- *pitched*: a deal with a pitched, won or lost outcome; *won*/*lost*: its latest won-or-lost outcome;
- *win rate*: won ÷ (won + lost), per A/B arm (the arm of the deal's latest outcome), Wilson 95% intervals,
  explained − control with Newcombe's interval;
- *acceptance*: pitched ÷ (pitched + not relevant): of the deals sales reacted to, the share they pitched;
- *approval rate*: approved ÷ review decisions (approved, rejected, changes requested);
- *decision time*: from the explanation's latest entry into review to the decision.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.db.models.functions import TruncWeek
from django.utils import timezone

from accounts.models import AccountAssignment
from accounts.selectors import customer_queryset_for
from core.permissions import UserLike
from dashboard.models import ReplayRecommendation, ReplayRun
from dashboard.stats import Difference, Rate, quantile
from explanations.models import Explanation
from outcomes.models import Exposure, Outcome
from recommendations.models import Customer
from recommendations.selectors import NEW, REORDER

EXPLAINED, CONTROL = Exposure.Arm.EXPLAINED.value, Exposure.Arm.CONTROL.value
ARMS = (EXPLAINED, CONTROL)
DECISIONS = ("approved", "rejected", "changes_requested")
PENDING = "pending_review"


def review_sla_hours() -> float:
    return float(getattr(settings, "ELM_REVIEW_SLA_HOURS", 48))


# --------------------------------------------------------------------------- filters


@dataclass(frozen=True)
class Filters:
    """The dashboard's filters; the dates are whole local days, both inclusive."""

    date_from: dt.date | None = None
    date_to: dt.date | None = None
    region: str | None = None
    sales_user_id: int | None = None

    @property
    def start(self) -> dt.datetime | None:
        return timezone.make_aware(dt.datetime.combine(self.date_from, dt.time.min)) if self.date_from else None

    @property
    def end(self) -> dt.datetime | None:
        """Return the exclusive end: midnight after ``date_to``."""
        if not self.date_to:
            return None
        return timezone.make_aware(dt.datetime.combine(self.date_to + dt.timedelta(days=1), dt.time.min))

    def in_period(self, field_name: str) -> Q:
        q = Q()
        if self.start:
            q &= Q(**{f"{field_name}__gte": self.start})
        if self.end:
            q &= Q(**{f"{field_name}__lt": self.end})
        return q

    @property
    def cache_key(self) -> str:
        return f"{self.date_from}|{self.date_to}|{self.region}|{self.sales_user_id}"


def scoped_customers(*, user: UserLike, filters: Filters) -> QuerySet[Customer]:
    """Return the customers the viewer may see, narrowed by the region and sales-person filters."""
    qs = customer_queryset_for(user)
    if filters.region:
        qs = qs.filter(region=filters.region)
    if filters.sales_user_id:
        qs = qs.filter(pk__in=AccountAssignment.objects.filter(user_id=filters.sales_user_id).values("customer_id"))
    return qs


def region_choices(*, user: UserLike) -> list[str]:
    return list(customer_queryset_for(user).order_by("region").values_list("region", flat=True).distinct())


# --------------------------------------------------------------------------- deals (live)


@dataclass(frozen=True)
class ArmKpis:
    arm: str
    shown: int
    pitched: int
    won: int
    lost: int

    @property
    def win_rate(self) -> Rate:
        return Rate(self.won, self.won + self.lost)


@dataclass(frozen=True)
class KindDeals:
    """Deals of one kind of recommendation: re-orders (bought before) or products new to the customer."""

    kind: str  # recommendations.selectors.REORDER or NEW
    shown: int
    pitched: int
    won: int
    lost: int

    @property
    def win_rate(self) -> Rate:
        return Rate(self.won, self.won + self.lost)


@dataclass(frozen=True)
class WeekPoint:
    week: dt.date
    values: dict[str, int]


@dataclass(frozen=True)
class RegionDeals:
    region: str
    pitched: int
    won: int
    lost: int

    @property
    def win_rate(self) -> Rate:
        return Rate(self.won, self.won + self.lost)


@dataclass
class DealKpis:
    """Recommendations shown and what sales did with them, overall and per A/B arm."""

    shown: int = 0
    pitched: int = 0
    won: int = 0
    lost: int = 0
    not_relevant: int = 0
    arms: dict[str, ArmKpis] = field(default_factory=dict)
    weeks: list[WeekPoint] = field(default_factory=list)
    regions: list[RegionDeals] = field(default_factory=list)
    kinds: list[KindDeals] = field(default_factory=list)  # re-orders, then new products
    # Per rank (replay only): rank -> (recommendations, won)
    ranks: list[tuple[int, int, int]] = field(default_factory=list)
    replay: ReplayRun | None = None
    customers: int = 0
    customers_won: int = 0

    @property
    def open(self) -> int:
        return self.pitched - self.won - self.lost

    @property
    def win_rate(self) -> Rate:
        return Rate(self.won, self.won + self.lost)

    @property
    def acceptance(self) -> Rate:
        return Rate(self.pitched, self.pitched + self.not_relevant)

    @property
    def pitch_rate(self) -> Rate:
        return Rate(self.pitched, self.shown)

    @property
    def difference(self) -> Difference:
        empty = ArmKpis("", 0, 0, 0, 0)
        return Difference(self.arms.get(EXPLAINED, empty).win_rate, self.arms.get(CONTROL, empty).win_rate)


@dataclass
class _Deal:
    region: str
    pitched: bool = False
    decision: str | None = None  # "won" / "lost": the latest decisive outcome
    not_relevant: bool = False
    explained: bool = True
    kind: str = NEW


def _kind(times_bought: int | None) -> str:
    return REORDER if times_bought else NEW


def _week(value: dt.datetime | dt.date) -> dt.date:
    return value.date() if isinstance(value, dt.datetime) else value


def deal_kpis(*, user: UserLike, filters: Filters) -> DealKpis:
    """Return the live deal KPIs: exposures in the period and the outcomes recorded in it (4 queries)."""
    customers = scoped_customers(user=user, filters=filters)
    exposures = Exposure.objects.filter(
        filters.in_period("first_shown_at"), first_shown_at__isnull=False, recommendation__customer__in=customers
    )
    shown = list(
        exposures.order_by()
        .values_list("arm")
        .annotate(n=Count("pk"), reorders=Count("pk", filter=Q(recommendation__times_bought__gt=0)))
    )
    shown_by_arm = {arm: n for arm, n, _ in shown}
    shown_reorders = sum(r for _, _, r in shown)
    outcomes = Outcome.objects.filter(filters.in_period("created_at"), customer__in=customers)
    deals: dict[tuple[int, int], _Deal] = {}
    rows = outcomes.order_by("created_at", "pk").values_list(
        "customer_id", "product_id", "kind", "explained", "customer__region", "recommendation__times_bought"
    )
    for customer_id, product_id, kind, explained, region, times_bought in rows:
        deal = deals.setdefault((customer_id, product_id), _Deal(region=region, kind=_kind(times_bought)))
        deal.explained = explained
        if kind == Outcome.Kind.NOT_RELEVANT:
            deal.not_relevant = True
            continue
        deal.pitched = True
        if kind in (Outcome.Kind.WON, Outcome.Kind.LOST):
            deal.decision = kind
    kpis = DealKpis(shown=sum(shown_by_arm.values()))
    per_arm: dict[str, Counter] = {arm: Counter() for arm in ARMS}
    per_region: dict[str, Counter] = defaultdict(Counter)
    per_kind: dict[str, Counter] = {
        REORDER: Counter(shown=shown_reorders),
        NEW: Counter(shown=kpis.shown - shown_reorders),
    }
    for deal in deals.values():
        arm = EXPLAINED if deal.explained else CONTROL
        if deal.pitched:
            kpis.pitched += 1
            for counter in (per_arm[arm], per_region[deal.region], per_kind[deal.kind]):
                counter["pitched"] += 1
                if deal.decision:
                    counter[deal.decision] += 1
            if deal.decision:
                setattr(kpis, deal.decision, getattr(kpis, deal.decision) + 1)
        elif deal.not_relevant:
            kpis.not_relevant += 1
    kpis.arms = {
        arm: ArmKpis(arm, shown_by_arm.get(arm, 0), c["pitched"], c["won"], c["lost"]) for arm, c in per_arm.items()
    }
    kpis.regions = [RegionDeals(region, c["pitched"], c["won"], c["lost"]) for region, c in sorted(per_region.items())]
    kpis.kinds = [KindDeals(kind, c["shown"], c["pitched"], c["won"], c["lost"]) for kind, c in per_kind.items()]
    weekly: dict[dt.date, Counter] = defaultdict(Counter)
    for week, kind, n in (
        outcomes.annotate(week=TruncWeek("created_at")).order_by().values_list("week", "kind").annotate(n=Count("pk"))
    ):
        weekly[_week(week)][kind] += n
    for week, n in (
        exposures.annotate(week=TruncWeek("first_shown_at")).order_by().values_list("week").annotate(n=Count("pk"))
    ):
        weekly[_week(week)]["shown"] += n
    kpis.weeks = [WeekPoint(week, dict(weekly[week])) for week in sorted(weekly)]
    return kpis


# --------------------------------------------------------------------------- deals (replay)


def replay_run_latest() -> ReplayRun | None:
    return ReplayRun.objects.filter(status=ReplayRun.Status.SUCCEEDED).order_by("-created_at").first()


def replay_deal_kpis(*, user: UserLike, filters: Filters, run: ReplayRun) -> DealKpis:
    """Return the deal KPIs of a replay: every replayed recommendation counts as shown and pitched (5 queries).

    The date filter does not apply: a replay's window is fixed (the horizon after its cutoff).
    """
    customers = scoped_customers(user=user, filters=filters)
    rows = ReplayRecommendation.objects.filter(run=run, customer__in=customers)
    kpis = DealKpis(replay=run)
    arms = {arm: (n, won) for arm, n, won in rows.order_by().values_list("arm").annotate(n=Count("pk"), won=_won())}
    for arm in ARMS:
        n, won = arms.get(arm, (0, 0))
        kpis.arms[arm] = ArmKpis(arm, n, n, won, n - won)
    kpis.shown = kpis.pitched = sum(n for n, _ in arms.values())
    kpis.won = sum(won for _, won in arms.values())
    kpis.lost = kpis.pitched - kpis.won
    kpis.regions = [
        RegionDeals(region, n, won, n - won)
        for region, n, won in rows.order_by("customer__region")
        .values_list("customer__region")
        .annotate(n=Count("pk"), won=_won())
    ]
    kpis.ranks = list(rows.order_by("rank").values_list("rank").annotate(n=Count("pk"), won=_won()))
    totals = rows.aggregate(
        customers=Count("customer_id", distinct=True),
        customers_won=Count("customer_id", Q(won=True), distinct=True),
        reorders=Count("pk", filter=Q(times_bought__gt=0)),
        reorders_won=Count("pk", filter=Q(times_bought__gt=0, won=True)),
    )
    kpis.customers, kpis.customers_won = totals["customers"], totals["customers_won"]
    reorders, reorders_won = totals["reorders"], totals["reorders_won"]
    new, new_won = kpis.shown - reorders, kpis.won - reorders_won
    kpis.kinds = [
        KindDeals(REORDER, reorders, reorders, reorders_won, reorders - reorders_won),
        KindDeals(NEW, new, new, new_won, new - new_won),
    ]
    kpis.weeks = [
        WeekPoint(_week(week), {"won": n})
        for week, n in rows.filter(won=True, won_at__isnull=False)
        .annotate(week=TruncWeek("won_at"))
        .order_by("week")
        .values_list("week")
        .annotate(n=Count("pk"))
    ]
    return kpis


def _won() -> Count:
    return Count("pk", filter=Q(won=True))


# --------------------------------------------------------------------------- reviews


@dataclass
class ReviewKpis:
    approved: int = 0
    rejected: int = 0
    changes_requested: int = 0
    edits: int = 0
    withdrawn: int = 0
    decision_hours: list[float] = field(default_factory=list)
    pending: int = 0
    pending_ages: list[float] = field(default_factory=list)  # hours, oldest first
    weeks: list[WeekPoint] = field(default_factory=list)
    sla_hours: float = 48.0

    @property
    def decisions(self) -> int:
        return self.approved + self.rejected + self.changes_requested

    @property
    def approval_rate(self) -> Rate:
        return Rate(self.approved, self.decisions)

    @property
    def within_sla(self) -> Rate:
        return Rate(sum(1 for h in self.decision_hours if h <= self.sla_hours), len(self.decision_hours))

    @property
    def median_hours(self) -> float | None:
        return quantile(sorted(self.decision_hours), 0.5)

    @property
    def p90_hours(self) -> float | None:
        return quantile(sorted(self.decision_hours), 0.9)

    @property
    def overdue(self) -> int:
        return sum(1 for h in self.pending_ages if h > self.sla_hours)

    @property
    def oldest_pending_hours(self) -> float | None:
        return max(self.pending_ages, default=None)

    @property
    def age_buckets(self) -> list[tuple[str, int]]:
        """Return the pending queue by age: under a day, 1–2 days, 2–7 days, older."""
        edges = [(0, 24), (24, 48), (48, 168), (168, float("inf"))]
        return [
            (key, sum(1 for h in self.pending_ages if lo <= h < hi))
            for key, (lo, hi) in zip(AGE_KEYS, edges, strict=True)
        ]


AGE_KEYS = ("under_1d", "1_2d", "2_7d", "over_7d")


def review_kpis(*, user: UserLike, filters: Filters, now: dt.datetime | None = None) -> ReviewKpis:
    """Return review decisions and edits in the period, their decision times and the pending queue (4 queries)."""
    from explanations.models import ReviewEvent

    now = now or timezone.now()
    customers = scoped_customers(user=user, filters=filters)
    kpis = ReviewKpis(sla_hours=review_sla_hours())
    events = ReviewEvent.objects.filter(explanation__recommendation__customer__in=customers)
    in_period = events.filter(filters.in_period("created_at"))
    # Decision times need the step that put the text into review, which may precede the period.
    # Each language's text is reviewed on its own: its decision time runs from its own submission.
    rows = events.filter(explanation_id__in=in_period.values("explanation_id")).order_by(
        "explanation_id", "language", "created_at", "pk"
    )
    current, entered_review = None, None
    start, end = filters.start, filters.end
    for explanation_id, language, action, to_status, created_at in rows.values_list(
        "explanation_id", "language", "action", "to_status", "created_at"
    ):
        if (explanation_id, language) != current:
            current, entered_review = (explanation_id, language), None
        counted = (start is None or created_at >= start) and (end is None or created_at < end)
        if counted and action == "edit":
            kpis.edits += 1
        if counted and action == "withdraw":
            kpis.withdrawn += 1
        if to_status == PENDING:
            entered_review = created_at
        elif to_status in DECISIONS and counted:
            setattr(kpis, to_status, getattr(kpis, to_status) + 1)
            if entered_review is not None:
                kpis.decision_hours.append((created_at - entered_review).total_seconds() / 3600)
    weekly: dict[dt.date, Counter] = defaultdict(Counter)
    for week, status, n in (
        in_period.filter(to_status__in=DECISIONS)
        .annotate(week=TruncWeek("created_at"))
        .order_by()
        .values_list("week", "to_status")
        .annotate(n=Count("pk"))
    ):
        weekly[_week(week)][status] += n
    kpis.weeks = [WeekPoint(week, dict(weekly[week])) for week in sorted(weekly)]
    pending = Explanation.objects.filter(status=PENDING, recommendation__customer__in=customers).values_list(
        "review_requested_at", "generated_at"
    )
    ages = [(now - (since or generated)).total_seconds() / 3600 for since, generated in pending]
    kpis.pending = len(ages)
    kpis.pending_ages = sorted(ages, reverse=True)
    return kpis
