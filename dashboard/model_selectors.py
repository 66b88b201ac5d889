"""Reads for the dashboard's model panels: explanation quality, fairness by region, embedding drift and the
offline evaluation. Like ``dashboard.selectors``, each takes the viewer and the filters and starts from the
scoping hook; the filters are ``dashboard.selectors.Filters``."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, QuerySet

from dashboard.selectors import DECISIONS, Filters, scoped_customers
from dashboard.stats import Bin, Rate, histogram_bins
from explanations.models import Explanation
from outcomes.models import Exposure
from recommendations.models import Customer, Product, Recommendation, RecommendationBatch
from recommendations.selectors import UserLike
from recommendations.vectors import fetch_vectors

# --------------------------------------------------------------------------- explanation quality


@dataclass
class QualityKpis:
    explanations: int = 0
    flagged: int = 0
    flag_counts: list[tuple[str, int]] = field(default_factory=list)  # (flag kind, explanations with it)
    consistency: list[Bin] = field(default_factory=list)
    confidence: list[Bin] = field(default_factory=list)
    consistency_median: float | None = None
    confidence_median: float | None = None

    @property
    def flag_rates(self) -> list[tuple[str, Rate]]:
        return [(kind, Rate(n, self.explanations)) for kind, n in self.flag_counts]

    @property
    def flagged_rate(self) -> Rate:
        return Rate(self.flagged, self.explanations)


def _explanations(*, user: UserLike, filters: Filters) -> QuerySet[Explanation]:
    customers = scoped_customers(user=user, filters=filters)
    # Every batch: a new nightly batch must not hide the quality history of the period.
    return Explanation.objects.filter(
        filters.in_period("generated_at"), recommendation__customer__in=customers
    ).exclude(status="failed")


def _sql(qs: QuerySet) -> tuple[str, tuple]:
    return qs.query.sql_with_params()


def _histogram(ids_sql: str, params: tuple, column: str, *, low: float, high: float) -> list[Bin]:
    bins = _bin_count(low, high)
    with connection.cursor() as cur:
        cur.execute(
            f"SELECT width_bucket({column}, %s, %s, %s) AS b, count(*) FROM explanations_explanation "  # noqa: S608
            f"WHERE {column} IS NOT NULL AND id IN ({ids_sql}) GROUP BY b",
            [low, high, bins, *params],
        )
        counts = dict(cur.fetchall())
    return histogram_bins(counts, low=low, high=high, bins=bins)


def _range(lo: float | None, hi: float | None, *, floor: float, ceiling: float) -> tuple[float, float]:
    """Return a histogram range rounded out to tenths and clipped to [floor, ceiling]."""
    if lo is None or hi is None:
        return floor, ceiling
    low = max(floor, math.floor(round(lo * 10, 9)) / 10)
    high = min(ceiling, math.ceil(round(hi * 10, 9)) / 10)
    if high - low < 0.1:
        high = min(ceiling, low + 0.1)
        low = round(high - 0.1, 9)
    return low, high


def _bin_count(low: float, high: float) -> int:
    """Return bins of width 0.1 for wide ranges, 0.05 for ranges under half a unit."""
    tenths = round((high - low) * 10)
    return tenths if tenths >= 5 else 2 * tenths


def quality_kpis(*, user: UserLike, filters: Filters) -> QualityKpis:
    """Return flag rates by kind and the consistency and confidence histograms (5 queries)."""
    qs = _explanations(user=user, filters=filters)
    stats = qs.aggregate(
        n=Count("pk"),
        flagged=Count("pk", filter=~Q(flags=[])),
        c_lo=Min("consistency"),
        c_hi=Max("consistency"),
        p_lo=Min("confidence"),
        p_hi=Max("confidence"),
    )
    kpis = QualityKpis(explanations=stats["n"], flagged=stats["flagged"])
    ids_sql, params = _sql(qs.values("pk"))
    with connection.cursor() as cur:
        # A flag code is "<kind>" or "<kind>:<detail>"; rates count explanations with at least one of a kind.
        cur.execute(
            "SELECT split_part(f->>'code', ':', 1) AS kind, count(DISTINCT e.id) "  # noqa: S608
            "FROM explanations_explanation e CROSS JOIN LATERAL jsonb_array_elements(e.flags) f "
            f"WHERE jsonb_typeof(e.flags) = 'array' AND e.id IN ({ids_sql}) GROUP BY kind ORDER BY 2 DESC, 1",
            params,
        )
        kpis.flag_counts = [(kind or "unknown", n) for kind, n in cur.fetchall()]
    low, high = _range(stats["c_lo"], stats["c_hi"], floor=-1.0, ceiling=1.0)
    kpis.consistency = _histogram(ids_sql, params, "consistency", low=low, high=high)
    low, high = _range(stats["p_lo"], stats["p_hi"], floor=0.0, ceiling=1.0)
    kpis.confidence = _histogram(ids_sql, params, "confidence", low=low, high=high)
    kpis.consistency_median = _median_of_bins(kpis.consistency)
    kpis.confidence_median = _median_of_bins(kpis.confidence)
    return kpis


def _median_of_bins(bins: list[Bin]) -> float | None:
    """Return the median estimated from a histogram (linear within the median bin)."""
    total = sum(b.count for b in bins)
    if not total:
        return None
    half, seen = total / 2, 0
    for b in bins:
        if seen + b.count >= half:
            return b.low + (b.high - b.low) * ((half - seen) / b.count if b.count else 0)
        seen += b.count
    return bins[-1].high


# --------------------------------------------------------------------------- fairness


@dataclass(frozen=True)
class RegionFairness:
    region: str
    customers: int
    recommended: int  # customers with at least one active recommendation
    shown: int  # exposures first shown in the period
    decisions: int
    approved: int

    @property
    def recommendation_rate(self) -> Rate:
        return Rate(self.recommended, self.customers)

    @property
    def approval_rate(self) -> Rate:
        return Rate(self.approved, self.decisions)


def fairness_by_region(*, user: UserLike, filters: Filters) -> list[RegionFairness]:
    """Return per region: customers, recommendation rate, recommendations shown and approval rate (3 queries)."""
    from explanations.models import ReviewEvent

    customers = scoped_customers(user=user, filters=filters)
    active = Recommendation.objects.filter(
        customer=OuterRef("pk"), batch__status=RecommendationBatch.Status.ACTIVE
    ).values("pk")[:1]
    base = {
        region: (n, recommended)
        for region, n, recommended in customers.order_by()
        .annotate(has_rec=Exists(active))
        .values_list("region")
        .annotate(n=Count("pk"), recommended=Count("pk", filter=Q(has_rec=True)))
    }
    shown = dict(
        Exposure.objects.filter(
            filters.in_period("first_shown_at"), first_shown_at__isnull=False, recommendation__customer__in=customers
        )
        .order_by()
        .values_list("recommendation__customer__region")
        .annotate(n=Count("pk"))
    )
    decisions = {
        region: (n, approved)
        for region, n, approved in ReviewEvent.objects.filter(
            filters.in_period("created_at"),
            to_status__in=DECISIONS,
            explanation__recommendation__customer__in=customers,
        )
        .order_by()
        .values_list("explanation__recommendation__customer__region")
        .annotate(n=Count("pk"), approved=Count("pk", filter=Q(to_status="approved")))
    }
    return [
        RegionFairness(
            region=region,
            customers=n,
            recommended=recommended,
            shown=shown.get(region, 0),
            decisions=decisions.get(region, (0, 0))[0],
            approved=decisions.get(region, (0, 0))[1],
        )
        for region, (n, recommended) in sorted(base.items())
    ]


# --------------------------------------------------------------------------- embedding drift


@dataclass(frozen=True)
class DriftPoint:
    month: dt.date
    pairs: int  # (customer, product) purchase pairs in the month
    shift: float | None  # 1 - cos(centroid of this month, centroid of the month before)
    from_first: float  # 1 - cos(centroid of this month, centroid of the first month)


def embedding_drift(*, user: UserLike, filters: Filters) -> list[DriftPoint]:
    """Return the month-by-month drift of the purchase-interest centroid in the product embedding space.

    A month's centroid is the mean product vector over the distinct (customer, product) pairs sold
    in it: where in the embedding space the customers' buying sits. Drift is one minus the cosine
    between consecutive centroids (and between each month and the first). Cached until the data
    or the product vectors change (3 queries when cached, 4 when not).
    """
    customers = scoped_customers(user=user, filters=filters)
    version = (
        Product.objects.aggregate(t=Max("embedded_at"), n=Count("embedding"))["t"],
        Customer.objects.aggregate(t=Max("updated_at"))["t"],
    )
    raw_key = f"{getattr(user, 'pk', None)}|{filters.cache_key}|{version}"
    key = "dashboard:drift:" + hashlib.sha256(raw_key.encode()).hexdigest()
    cached = cache.get(key)
    if cached is not None:
        return cached
    from recommendations.models import Purchase

    sales = Purchase.objects.filter(filters.in_period("occurred_at"), kind=Purchase.Kind.SALE, customer__in=customers)
    sql, params = _sql(sales.values("customer_id", "product_id", "occurred_at"))
    with connection.cursor() as cur:
        cur.execute(
            "SELECT date_trunc('month', s.occurred_at AT TIME ZONE %s)::date AS m, s.product_id, "  # noqa: S608
            f"count(DISTINCT s.customer_id) FROM ({sql}) s GROUP BY m, s.product_id ORDER BY m",
            [settings.TIME_ZONE, *params],
        )
        rows = cur.fetchall()
    vectors = fetch_vectors(Product._meta.db_table, {pid for _, pid, _ in rows})
    sums: dict[dt.date, np.ndarray] = {}
    pairs: Counter = Counter()
    for month, product_id, n in rows:
        vec = vectors.get(product_id)
        if vec is None:
            continue
        sums[month] = sums.get(month, 0) + n * vec.astype(np.float64)
        pairs[month] += n
    points: list[DriftPoint] = []
    first = prev = None
    for month in sorted(sums):
        centroid = sums[month] / (np.linalg.norm(sums[month]) or 1.0)
        first = centroid if first is None else first
        shift = None if prev is None else float(1 - np.dot(centroid, prev))
        points.append(DriftPoint(month, pairs[month], shift, float(1 - np.dot(centroid, first))))
        prev = centroid
    cache.set(key, points, 3600)
    return points


# --------------------------------------------------------------------------- offline evaluation


def evaluation_latest():
    """Return the latest succeeded offline evaluation, a full run before a reduced one (None if none ran)."""
    from recommendations.models import EvaluationRun

    runs = EvaluationRun.objects.filter(status=EvaluationRun.Status.SUCCEEDED)
    return runs.order_by("reduced", "-created_at").first()
