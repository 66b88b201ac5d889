"""Recording outcomes (permissions, validation, idempotency) and the A/B exposure assignment."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from outcomes.models import COMMENT_MAX_LENGTH, Exposure, Outcome
from outcomes.services import ab_arm_for, exposure_for, exposures_mark_shown, outcome_record
from recommendations.models import RecommendationBatch
from tests.factories import (
    CustomerFactory,
    ExposureFactory,
    ProductFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
    UserFactory,
    assign,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def rec(sales_user):
    recommendation = RecommendationFactory()
    assign(sales_user, recommendation.customer)
    return recommendation


def test_outcome_record_stores_who_what_and_the_arm(sales_user, rec):
    """Store the outcome with the user, the customer, the product and the arm it was shown in."""
    # given a recommendation in the control arm
    ExposureFactory(recommendation=rec, arm=Exposure.Arm.CONTROL)
    # when
    outcome = outcome_record(user=sales_user, recommendation=rec, kind="won", comment="  Big order  ")
    # then
    stored = Outcome.objects.get()
    assert stored.pk == outcome.pk
    assert (stored.user, stored.customer, stored.product, stored.recommendation) == (
        sales_user,
        rec.customer,
        rec.product,
        rec,
    )
    assert stored.kind == "won"
    assert stored.comment == "Big order"
    assert stored.explained is False


def test_outcome_record_assigns_the_arm_when_no_exposure_exists(sales_user, rec, settings):
    """Assign (and store) the arm on first use, so the outcome always carries one."""
    # given every recommendation goes to the explained arm
    settings.ELM_AB_CONTROL_SHARE = 0.0
    # when
    outcome = outcome_record(user=sales_user, recommendation=rec, kind="pitched")
    # then
    assert outcome.explained is True
    assert Exposure.objects.get(recommendation=rec).arm == Exposure.Arm.EXPLAINED


@pytest.mark.parametrize("kind", ["", "sold", "PITCHED", "pitched "])
def test_outcome_record_rejects_unknown_kinds(sales_user, rec, kind):
    """Refuse kinds outside pitched / won / lost / not relevant."""
    with pytest.raises(ValidationError) as excinfo:
        outcome_record(user=sales_user, recommendation=rec, kind=kind)
    assert "kind" in excinfo.value.message_dict
    assert not Outcome.objects.exists()


def test_outcome_record_limits_the_comment_length(sales_user, rec):
    """Accept a comment of the maximum length and refuse one character more."""
    outcome_record(user=sales_user, recommendation=rec, kind="lost", comment="x" * COMMENT_MAX_LENGTH)
    with pytest.raises(ValidationError) as excinfo:
        outcome_record(user=sales_user, recommendation=rec, kind="lost", comment="x" * (COMMENT_MAX_LENGTH + 1))
    assert "comment" in excinfo.value.message_dict
    assert Outcome.objects.count() == 1


def test_outcome_record_refuses_customers_outside_the_users_book(sales_user):
    """Refuse a recommendation of a customer that is not assigned to the sales person."""
    # given a recommendation of somebody else's customer
    other = RecommendationFactory()
    assign(UserFactory(groups=["sales"]), other.customer)
    # when / then
    with pytest.raises(PermissionDenied):
        outcome_record(user=sales_user, recommendation=other, kind="pitched")
    assert not Outcome.objects.exists()


@pytest.mark.parametrize("groups", [["manager"], ["reviewer"], []])
def test_outcome_record_is_for_sales_people_only(rec, groups):
    """Refuse managers, reviewers and users without a role: they read, they do not record."""
    user = UserFactory(groups=groups)
    with pytest.raises(PermissionDenied):
        outcome_record(user=user, recommendation=rec, kind="pitched")
    assert not Outcome.objects.exists()


def test_outcome_record_refuses_recommendations_never_shown(sales_user):
    """Refuse recommendations of a running batch (nobody was shown them)."""
    running = RecommendationBatchFactory(status=RecommendationBatch.Status.RUNNING)
    rec = RecommendationFactory(batch=running)
    assign(sales_user, rec.customer)
    with pytest.raises(ValidationError):
        outcome_record(user=sales_user, recommendation=rec, kind="pitched")


def test_outcome_record_with_the_same_token_creates_one_row(sales_user, rec):
    """Return the first row when the same submission (token) arrives twice."""
    token = uuid.uuid4()
    first = outcome_record(user=sales_user, recommendation=rec, kind="pitched", client_token=token)
    second = outcome_record(user=sales_user, recommendation=rec, kind="pitched", client_token=str(token))
    assert second.pk == first.pk
    assert getattr(second, "duplicate", False) is True
    assert Outcome.objects.count() == 1


def test_outcome_record_without_a_token_records_every_call(sales_user, rec):
    """Record a second, deliberate outcome (no token): repeated pitches are real events."""
    outcome_record(user=sales_user, recommendation=rec, kind="pitched")
    outcome_record(user=sales_user, recommendation=rec, kind="pitched")
    assert Outcome.objects.count() == 2


def test_outcome_record_refuses_a_token_reused_for_another_outcome(sales_user, rec):
    """Refuse a token that already recorded a different outcome instead of silently returning it."""
    token = uuid.uuid4()
    outcome_record(user=sales_user, recommendation=rec, kind="pitched", client_token=token)
    with pytest.raises(ValidationError):
        outcome_record(user=sales_user, recommendation=rec, kind="won", client_token=token)
    assert Outcome.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_double_submit_creates_one_row():
    """Two requests with the same token at the same time still leave exactly one row."""
    # given
    sales_user = UserFactory(username="sam-concurrent", groups=["sales"])
    rec = RecommendationFactory()
    assign(sales_user, rec.customer)
    exposure_for(recommendation=rec)
    token = uuid.uuid4()

    def submit(_):
        try:
            return outcome_record(user=sales_user, recommendation=rec, kind="won", client_token=token).pk
        finally:
            connection.close()

    # when
    with ThreadPoolExecutor(max_workers=4) as pool:
        pks = list(pool.map(submit, range(8)))
    # then
    assert len(set(pks)) == 1
    assert Outcome.objects.count() == 1


# --------------------------------------------------------------------------- A/B exposure


def test_arm_assignment_is_deterministic_and_follows_the_share(settings):
    """Give the same pair the same arm every time; about the configured share lands in control."""
    settings.ELM_AB_CONTROL_SHARE = 0.2
    arms = [ab_arm_for(customer_id=c, product_id=p) for c in range(100) for p in range(50)]
    again = [ab_arm_for(customer_id=c, product_id=p) for c in range(100) for p in range(50)]
    assert arms == again
    control = arms.count(Exposure.Arm.CONTROL) / len(arms)
    assert 0.18 < control < 0.22
    assert ab_arm_for(customer_id=1, product_id=1, control_share=0.0) == Exposure.Arm.EXPLAINED
    assert ab_arm_for(customer_id=1, product_id=1, control_share=1.0) == Exposure.Arm.CONTROL


def test_exposure_is_stored_once_and_kept_when_the_share_changes(settings):
    """Store the arm on first use; later changes of the share do not move existing recommendations."""
    rec = RecommendationFactory()
    settings.ELM_AB_CONTROL_SHARE = 1.0
    first = exposure_for(recommendation=rec)
    settings.ELM_AB_CONTROL_SHARE = 0.0
    second = exposure_for(recommendation=rec)
    assert first.arm == second.arm == Exposure.Arm.CONTROL
    assert Exposure.objects.count() == 1


def test_the_same_pair_keeps_its_arm_in_the_next_batch(settings):
    """Keep a customer-product pair in its arm when the nightly batch recommends it again."""
    settings.ELM_AB_CONTROL_SHARE = 0.5
    customer, product = CustomerFactory(), ProductFactory()
    old = RecommendationFactory(
        customer=customer, product=product, batch=RecommendationBatchFactory(status="superseded")
    )
    new = RecommendationFactory(customer=customer, product=product)
    assert exposure_for(recommendation=old).arm == exposure_for(recommendation=new).arm


def test_exposures_mark_shown_counts_each_showing(django_assert_max_num_queries):
    """Count showings and keep the first time; a page of ten costs a constant number of queries."""
    recs = [RecommendationFactory(rank=i + 1) for i in range(10)]
    with django_assert_max_num_queries(7):
        exposures_mark_shown(recommendations=recs)
    exposures_mark_shown(recommendations=recs[:3])
    stored = {e.recommendation_id: e for e in Exposure.objects.all()}
    assert [stored[r.pk].show_count for r in recs] == [2, 2, 2] + [1] * 7
    assert all(e.first_shown_at <= e.last_shown_at for e in stored.values())
