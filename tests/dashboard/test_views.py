"""The dashboard page: who may see it, live/replay, CSV exports and a bounded number of queries."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from dashboard.models import ReplayRecommendation, ReplayRun
from tests.dashboard.conftest import PERIOD_END, PERIOD_START, at, review_event
from tests.factories import (
    CustomerFactory,
    ExplanationFactory,
    ExposureFactory,
    OutcomeFactory,
    ProductFactory,
    RecommendationFactory,
    UserFactory,
)

URL = "/dashboard/"
PERIOD = {"date_from": PERIOD_START.isoformat(), "date_to": PERIOD_END.isoformat()}


def _csv(response) -> list[list[str]]:
    assert response["Content-Type"].startswith("text/csv")
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


def _replay_run(*, customers: int = 2, won: int = 1) -> ReplayRun:
    run = ReplayRun.objects.create(
        status=ReplayRun.Status.SUCCEEDED,
        cutoff=timezone.make_aware(dt.datetime(2011, 9, 1)),
        control_share=0.2,
        recommender="embedding-cosine",
        version="test",
        customers=customers,
    )
    for i in range(customers):
        customer = CustomerFactory(region="North")
        ReplayRecommendation.objects.create(
            run=run,
            customer=customer,
            product=ProductFactory(),
            rank=1,
            score=0.9,
            arm="explained" if i % 2 == 0 else "control",
            won=i < won,
            won_at=run.cutoff + dt.timedelta(days=10) if i < won else None,
        )
    return run


@pytest.mark.parametrize(("groups", "status"), [(["sales"], 403), (["reviewer"], 403), (["manager"], 200)])
def test_only_managers_and_admins_see_the_dashboard(client, db, groups, status):
    client.force_login(UserFactory(groups=groups))
    assert client.get(URL).status_code == status


def test_anonymous_visitors_are_sent_to_sign_in(client, db):
    response = client.get(URL)
    assert response.status_code == 302 and reverse("login") in response["Location"]


def test_admins_see_the_dashboard(admin_client):
    assert admin_client.get(URL).status_code == 200


def test_live_numbers_are_shown_for_the_filters(client, kpi_world):
    client.force_login(kpi_world.users["manager"])
    response = client.get(URL, {**PERIOD, "mode": "live"})
    assert response.status_code == 200
    deals = response.context["deals"]
    assert (deals.shown, deals.pitched, deals.won, deals.lost) == (4, 4, 1, 2)
    html = response.content.decode()
    assert "Win rate: explained vs control" in html and "<svg" in html and 'role="img"' in html
    assert "Replay of" not in html


def test_the_dashboard_defaults_to_the_replay_until_there_is_live_data(client, db):
    # Given: a replay, and no exposures or outcomes yet
    _replay_run()
    client.force_login(UserFactory(groups=["manager"]))
    # When
    response = client.get(URL)
    # Then
    assert response.context["mode"] == "replay"
    html = response.content.decode()
    assert "Replay of Sept. 1, 2011 (real purchases, simulated pitching)" in html
    assert response.context["deals"].pitched == 2
    # And the toggle switches to live data
    assert client.get(URL, {"mode": "live"}).context["mode"] == "live"


def test_live_data_makes_live_the_default(client, db):
    _replay_run()
    ExposureFactory(first_shown_at=timezone.now())
    client.force_login(UserFactory(groups=["manager"]))
    assert client.get(URL).context["mode"] == "live"


def test_without_a_replay_the_replay_mode_falls_back_to_live(client, db):
    client.force_login(UserFactory(groups=["manager"]))
    response = client.get(URL, {"mode": "replay"})
    assert response.context["mode"] == "live"


def test_csv_export_of_the_arm_table_has_the_exact_numbers(client, kpi_world):
    client.force_login(kpi_world.users["manager"])
    rows = _csv(client.get(URL, {**PERIOD, "mode": "live", "export": "deals-arms"}))
    assert rows[0] == ["Arm", "Shown", "Pitched", "Won", "Lost", "Rate", "95% low", "95% high"]
    assert rows[1][:6] == ["Explained (reason shown)", "3", "3", "1", "1", "0.5"]
    assert rows[2][:6] == ["Control (no reason)", "1", "1", "0", "1", "0.0"]
    assert float(rows[1][6]) == pytest.approx(0.0945, abs=1e-4)


def test_replay_exports_say_they_are_a_replay(client, db):
    _replay_run(customers=2, won=1)
    client.force_login(UserFactory(groups=["manager"]))
    response = client.get(URL, {"mode": "replay", "export": "deals-summary"})
    assert "dashboard-deals-summary-replay.csv" in response["Content-Disposition"]
    rows = _csv(response)
    assert rows[0][-1] == "Data"
    assert rows[1] == ["Recommendations shown", "2", "Replay of 2011-09-01 (real purchases, simulated pitching)"]


@pytest.mark.parametrize(
    ("key", "header", "rows"),
    [
        ("reviews-summary", ["Measure", "Value"], 14),
        ("reviews-weeks", ["Week starting", "Approved", "Rejected", "Changes requested"], 1),
        ("reviews-age", ["Waiting", "Explanations"], 4),
        ("quality-flags", ["Flag", "Explanations flagged", "Rate", "95% low", "95% high"], 2),
        ("quality-consistency", ["From", "To", "Explanations"], 9),
        ("quality-confidence", ["From", "To", "Explanations"], 8),
        ("fairness-regions", None, 2),
        ("drift-months", ["Month", "Customer–product pairs", "Shift from previous month", "Drift from first month"], 0),
        ("deals-weeks", None, 4),
        ("deals-regions", None, 2),
        ("deals-summary", ["Measure", "Count"], 6),
    ],
)
def test_every_table_exports(client, kpi_world, key, header, rows):
    # The explanations were generated today, outside the period: the whole time range is exported.
    client.force_login(kpi_world.users["manager"])
    exported = _csv(client.get(URL, {"mode": "live", "export": key}))
    if header:
        assert exported[0] == header
    assert len(exported) == 1 + rows


def test_review_summary_export_has_raw_values(client, kpi_world):
    client.force_login(kpi_world.users["manager"])
    rows = dict(_csv(client.get(URL, {**PERIOD, "mode": "live", "export": "reviews-summary"}))[1:])
    assert rows["Review decisions"] == "3" and rows["Texts edited by a reviewer"] == "1"
    assert rows["Marked not relevant by sales"] == "1"
    assert float(rows["Approval rate"]) == pytest.approx(1 / 3)
    assert float(rows["Median decision time (hours)"]) == pytest.approx(20)


def test_exported_region_names_cannot_run_as_formulas(client, db):
    customer = CustomerFactory(region="=HYPERLINK(1)")
    RecommendationFactory(customer=customer)
    client.force_login(UserFactory(groups=["manager"]))
    rows = _csv(client.get(URL, {"export": "fairness-regions"}))
    assert rows[1][0] == "'=HYPERLINK(1)"


def test_an_unknown_export_is_a_404(client, db):
    client.force_login(UserFactory(groups=["manager"]))
    assert client.get(URL, {"export": "nope"}).status_code == 404
    assert client.get(URL, {"export": "deals-nope"}).status_code == 404


def test_invalid_filters_are_reported_and_ignored(client, kpi_world):
    client.force_login(kpi_world.users["manager"])
    response = client.get(URL, {"date_from": "2026-03-10", "date_to": "2026-03-01", "mode": "live"})
    assert response.status_code == 200
    assert "The end date is before the start date." in response.content.decode()
    assert response.context["filters"].date_to is None


def _grow(n: int) -> None:
    """Add ``n`` customers, each with a shown, pitched, won and reviewed recommendation."""
    for i in range(n):
        customer = CustomerFactory(region=f"Region {i % 3}")
        rec = RecommendationFactory(customer=customer, rank=1)
        ExposureFactory(recommendation=rec, arm="explained", first_shown_at=at(1))
        OutcomeFactory(recommendation=rec, kind="pitched", created_at=at(2))
        OutcomeFactory(recommendation=rec, kind="won", created_at=at(3))
        explanation = ExplanationFactory(recommendation=rec, status="approved", flags=[{"code": f"kind{i}"}])
        review_event(explanation, action="submit", to_status="pending_review", when=at(1))
        review_event(explanation, action="approve", to_status="approved", when=at(2))


def _queries(client, params) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = client.get(URL, params)
    assert response.status_code == 200
    return len(ctx.captured_queries)


@pytest.mark.parametrize("mode", ["live", "replay"])
def test_the_number_of_queries_does_not_grow_with_the_data(client, db, mode):
    # Given: a manager and a replay; the cache is warm for drift (its query count differs when cold)
    _replay_run(customers=3)
    client.force_login(UserFactory(groups=["manager"]))
    params = {**PERIOD, "mode": mode}
    _grow(2)
    _queries(client, params)
    small = _queries(client, params)
    # When: ten times more of everything
    _grow(20)
    _queries(client, params)
    large = _queries(client, params)
    # Then
    assert large == small
    assert large <= 40


def test_the_latest_evaluation_run_is_shown_with_intervals_and_exported(client, db):
    from recommendations.models import EvaluationRun

    metrics = {
        "popularity": {"baseline": True, "test": {"ndcg@10": {"mean": 0.05, "ci95": [0.04, 0.06]},
                                                   "recall@10": {"mean": 0.07, "ci95": [0.06, 0.08]}}},
        "hybrid": {"baseline": False, "test": {"ndcg@10": {"mean": 0.08, "ci95": [0.07, 0.09]},
                                               "recall@10": {"mean": 0.11, "ci95": [0.1, 0.12]}}},
    }  # fmt: skip
    EvaluationRun.objects.create(status="succeeded", source="db", metrics=metrics, chosen_model="hybrid")
    EvaluationRun.objects.create(status="failed", source="db", metrics={})
    client.force_login(UserFactory(groups=["manager"]))
    html = client.get(URL).content.decode()
    assert "No evaluation run yet." not in html and "Chosen for production: hybrid." in html
    rows = _csv(client.get(URL, {"export": "evaluation-models"}))
    assert rows[0] == ["Model", "Role", "NDCG@10 95% low", "NDCG@10 95% high", "ndcg@10", "recall@10"]
    assert rows[1] == ["hybrid", "production", "0.07", "0.09", "0.08", "0.11"]
    assert rows[2] == ["popularity", "baseline", "0.04", "0.06", "0.05", "0.07"]


def test_without_an_evaluation_run_the_page_says_so(client, db):
    client.force_login(UserFactory(groups=["manager"]))
    assert "No evaluation run yet." in client.get(URL).content.decode()
