"""A hand-built KPI world whose every number is known (see the docstring of ``kpi_world``)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from unittest import mock

import pytest
from django.utils import timezone

from explanations.models import Explanation, ReviewEvent
from tests.factories import (
    AccountAssignmentFactory,
    CustomerFactory,
    ExplanationFactory,
    ExposureFactory,
    OutcomeFactory,
    RecommendationFactory,
    UserFactory,
)

S = Explanation.Status
# Every event of the world happens within the period [PERIOD_START, PERIOD_END] unless said otherwise.
PERIOD_START = dt.date(2026, 3, 2)  # a Monday
PERIOD_END = dt.date(2026, 3, 15)


def at(day: int, hour: int = 9) -> dt.datetime:
    """Return an aware time ``day`` days after the start of the period."""
    start = timezone.make_aware(dt.datetime.combine(PERIOD_START, dt.time(hour)))
    return start + dt.timedelta(days=day)


def review_event(explanation, *, action: str, to_status: str, when: dt.datetime, from_status: str = "") -> ReviewEvent:
    """Append a review event at a given time (created_at is auto_now_add, so the clock is set)."""
    with mock.patch("django.utils.timezone.now", return_value=when):
        return ReviewEvent.objects.create(
            explanation=explanation,
            action=action,
            from_status=from_status,
            to_status=to_status,
            text_sha256="0" * 64,
        )


@dataclass
class KpiWorld:
    users: dict
    customers: dict
    recs: dict
    explanations: dict


@pytest.fixture
def kpi_world(db) -> KpiWorld:
    """Three customers in two regions, six recommendations, their exposures, outcomes and reviews.

    Customers: c1, c2 in "North" (c1 in s1's book, c2 in s2's), c3 and c4 in "South" (c3 in s1's
    book; c4 has no recommendation). Recommendations and what happened to them:

    ====  ====  =========  ===============  =======================================  =================
    rec   cust  arm        first shown      outcomes (in order)                      deal
    ====  ====  =========  ===============  =======================================  =================
    r1    c1    explained  day 1            pitched d2, won d5                       won, explained
    r2    c1    control    day 1            pitched d2, lost d6                      lost, control
    r3    c2    explained  day 2            pitched d3                               open, explained
    r4    c3    explained  day 3            not relevant d4                          not relevant
    r5    c3    control    before period    won (before period)                      outside
    r6    c2    explained  never            pitched d3, won d4, lost d7              lost, explained
    ====  ====  =========  ===============  =======================================  =================

    Reviews: e1 (r1) submitted d1, approved 10 h later; e2 (r2) submitted d1, edited 5 h later
    (back into review), rejected 55 h after the edit; e3 (r3) submitted d1, changes requested
    20 h later; e4 (r4) waiting since 100 h before "now". Flags and consistency per explanation are
    set for the quality KPIs: e1 pii:email + pii:phone (0.15), e2 risky_claim (0.25), e3 none
    (0.35), e4 pii (1.0).
    """
    s1 = UserFactory(username="kpi-sales-1", groups=["sales"])
    s2 = UserFactory(username="kpi-sales-2", groups=["sales"])
    manager = UserFactory(username="kpi-manager", groups=["manager"])
    c1 = CustomerFactory(region="North")
    c2 = CustomerFactory(region="North")
    c3 = CustomerFactory(region="South")
    c4 = CustomerFactory(region="South")
    for customer, owner in ((c1, s1), (c2, s2), (c3, s1)):
        AccountAssignmentFactory(customer=customer, user=owner)
    recs = {
        "r1": RecommendationFactory(customer=c1, rank=1),
        "r2": RecommendationFactory(customer=c1, rank=2),
        "r3": RecommendationFactory(customer=c2, rank=1),
        "r4": RecommendationFactory(customer=c3, rank=1),
        "r5": RecommendationFactory(customer=c3, rank=2),
        "r6": RecommendationFactory(customer=c2, rank=2),
    }
    shown = {"r1": at(1), "r2": at(1), "r3": at(2), "r4": at(3), "r5": at(-10), "r6": None}
    arms = {
        "r1": "explained",
        "r2": "control",
        "r3": "explained",
        "r4": "explained",
        "r5": "control",
        "r6": "explained",
    }
    for key, rec in recs.items():
        ExposureFactory(recommendation=rec, arm=arms[key], first_shown_at=shown[key], show_count=1 if shown[key] else 0)
    outcomes = [
        ("r1", "pitched", 2), ("r1", "won", 5),
        ("r2", "pitched", 2), ("r2", "lost", 6),
        ("r3", "pitched", 3),
        ("r4", "not_relevant", 4),
        ("r5", "won", -5),
        ("r6", "pitched", 3), ("r6", "won", 4), ("r6", "lost", 7),
    ]  # fmt: skip
    for key, kind, day in outcomes:
        OutcomeFactory(
            recommendation=recs[key], user=s1, kind=kind, explained=arms[key] == "explained", created_at=at(day)
        )
    explanations = {
        "e1": ExplanationFactory(
            recommendation=recs["r1"],
            status=S.APPROVED,
            consistency=0.15,
            confidence=0.12,
            flags=[{"code": "pii:email"}, {"code": "pii:phone"}],
        ),
        "e2": ExplanationFactory(
            recommendation=recs["r2"], status=S.REJECTED, consistency=0.25, confidence=0.18,
            flags=[{"code": "risky_claim"}],
        ),
        "e3": ExplanationFactory(
            recommendation=recs["r3"], status=S.CHANGES_REQUESTED, consistency=0.35, confidence=0.31, flags=[]
        ),
        "e4": ExplanationFactory(
            recommendation=recs["r4"], status=S.PENDING_REVIEW, consistency=1.0, confidence=0.05,
            flags=[{"code": "pii"}], review_requested_at=timezone.now() - dt.timedelta(hours=100),
        ),
    }  # fmt: skip
    e1, e2, e3 = explanations["e1"], explanations["e2"], explanations["e3"]
    review_event(e1, action="submit", to_status=S.PENDING_REVIEW, when=at(1))
    review_event(e1, action="approve", to_status=S.APPROVED, when=at(1) + dt.timedelta(hours=10))
    review_event(e2, action="submit", to_status=S.PENDING_REVIEW, when=at(1))
    review_event(e2, action="edit", to_status=S.PENDING_REVIEW, when=at(1) + dt.timedelta(hours=5))
    review_event(e2, action="reject", to_status=S.REJECTED, when=at(1) + dt.timedelta(hours=60))
    review_event(e3, action="submit", to_status=S.PENDING_REVIEW, when=at(1))
    review_event(e3, action="request_changes", to_status=S.CHANGES_REQUESTED, when=at(1) + dt.timedelta(hours=20))
    return KpiWorld(
        users={"s1": s1, "s2": s2, "manager": manager},
        customers={"c1": c1, "c2": c2, "c3": c3, "c4": c4},
        recs=recs,
        explanations=explanations,
    )
