"""The review state machine: every (from, to) pair, the audit trail, four-eyes and append-only rows."""

from __future__ import annotations

import itertools

import pytest
from django.db import IntegrityError, connection, transaction
from django_fsm import TransitionNotAllowed

from explanations.models import AppendOnlyError, Explanation, ReasonVersion, ReviewEvent
from explanations.services import review
from tests.factories import ExplanationFactory, UserFactory

pytestmark = pytest.mark.django_db

S = Explanation.Status
STATES = [value for value, _ in S.choices]
TRANSITIONS = ("submit", "fail", "regenerate", "approve", "reject", "request_changes", "edit", "withdraw")
# The whole table: (from, to) -> the transition that does it. Every other pair is forbidden.
ALLOWED = {
    (S.GENERATED, S.PENDING_REVIEW): "submit",
    (S.GENERATED, S.FAILED): "fail",
    (S.PENDING_REVIEW, S.GENERATED): "regenerate",
    (S.APPROVED, S.GENERATED): "regenerate",
    (S.REJECTED, S.GENERATED): "regenerate",
    (S.CHANGES_REQUESTED, S.GENERATED): "regenerate",
    (S.WITHDRAWN, S.GENERATED): "regenerate",
    (S.FAILED, S.GENERATED): "regenerate",
    (S.PENDING_REVIEW, S.APPROVED): "approve",
    (S.PENDING_REVIEW, S.REJECTED): "reject",
    (S.CHANGES_REQUESTED, S.REJECTED): "reject",
    (S.PENDING_REVIEW, S.CHANGES_REQUESTED): "request_changes",
    (S.PENDING_REVIEW, S.PENDING_REVIEW): "edit",
    (S.CHANGES_REQUESTED, S.PENDING_REVIEW): "edit",
    (S.WITHDRAWN, S.PENDING_REVIEW): "edit",
    (S.APPROVED, S.WITHDRAWN): "withdraw",
}


def _reachable(state: str) -> dict[str, str]:
    """Return {target: transition} of the transitions the model allows from ``state``."""
    explanation = Explanation(status=state)
    return {t.target: t.name for t in explanation.get_available_status_transitions()}


@pytest.mark.parametrize(("source", "target"), list(itertools.product(STATES, STATES)))
def test_every_pair_of_states_is_allowed_or_forbidden_as_the_table_says(source, target):
    """Enumerate all 49 (from, to) pairs: the model's transitions are exactly the table."""
    # given an explanation in ``source``
    reachable = _reachable(source)
    # then ``target`` is reachable exactly when the table allows it, by the named transition
    assert reachable.get(target) == ALLOWED.get((source, target))


@pytest.mark.parametrize("source", STATES)
def test_forbidden_transitions_raise_and_leave_the_state(source):
    """Calling a transition the state does not allow raises TransitionNotAllowed and changes nothing."""
    for name in TRANSITIONS:
        explanation = Explanation(status=source)
        allowed = any(ALLOWED.get((source, t)) == name for t in STATES)
        if allowed:
            getattr(explanation, name)()
            assert (source, explanation.status) in ALLOWED
        else:
            with pytest.raises(TransitionNotAllowed):
                getattr(explanation, name)()
            assert explanation.status == source


def test_the_table_names_only_real_states_and_transitions():
    """Keep the test's table honest: every state and transition it names exists on the model."""
    assert {s for pair in ALLOWED for s in pair} <= set(STATES)
    assert set(ALLOWED.values()) == set(TRANSITIONS)


# --------------------------------------------------------------------------- services and the audit trail


@pytest.fixture
def reviewer():
    return UserFactory(groups=["reviewer"])


def pending(**kwargs) -> Explanation:
    return ExplanationFactory(status=S.PENDING_REVIEW, **kwargs)


def test_approve_writes_one_event_with_who_from_to_and_the_text_hash(reviewer):
    """Approve: the status changes and one event records actor, states, comment and the text's SHA-256."""
    # given a pending explanation
    explanation = pending()
    # when a reviewer approves it
    review.explanation_approve(user=reviewer, explanation_id=explanation.pk, comment="fine")
    # then it is approved and the event says so
    explanation.refresh_from_db()
    assert explanation.status == S.APPROVED
    event = ReviewEvent.objects.get(explanation=explanation)
    assert (event.actor, event.actor_name, event.action) == (reviewer, reviewer.username, "approve")
    assert (event.from_status, event.to_status, event.comment) == (S.PENDING_REVIEW, S.APPROVED, "fine")
    assert event.text_sha256 == review.text_sha256(explanation.reason_text)
    assert len(event.text_sha256) == 64


@pytest.mark.parametrize(
    ("action", "source", "target"),
    [
        ("reject", S.PENDING_REVIEW, S.REJECTED),
        ("reject", S.CHANGES_REQUESTED, S.REJECTED),
        ("request_changes", S.PENDING_REVIEW, S.CHANGES_REQUESTED),
        ("withdraw", S.APPROVED, S.WITHDRAWN),
    ],
)
def test_commented_actions_change_the_state_and_record_the_comment(reviewer, action, source, target):
    """Reject, request changes and withdraw take a comment and record it."""
    explanation = ExplanationFactory(status=source)
    review.ACTIONS[action](user=reviewer, explanation_id=explanation.pk, comment="  see policy 4.2 ")
    explanation.refresh_from_db()
    assert explanation.status == target
    assert ReviewEvent.objects.get(explanation=explanation).comment == "see policy 4.2"


@pytest.mark.parametrize(
    ("action", "source"),
    [("reject", S.PENDING_REVIEW), ("request_changes", S.PENDING_REVIEW), ("withdraw", S.APPROVED)],
)
def test_commented_actions_refuse_an_empty_comment(reviewer, action, source):
    """Without a comment the action is refused and nothing is written."""
    explanation = ExplanationFactory(status=source)
    with pytest.raises(review.ReviewError) as err:
        review.ACTIONS[action](user=reviewer, explanation_id=explanation.pk, comment="   ")
    assert err.value.code == review.ReviewError.COMMENT_REQUIRED
    explanation.refresh_from_db()
    assert explanation.status == source
    assert not ReviewEvent.objects.exists()


@pytest.mark.parametrize("source", [S.GENERATED, S.APPROVED, S.REJECTED, S.WITHDRAWN, S.FAILED, S.CHANGES_REQUESTED])
def test_approve_is_refused_outside_pending_review_and_writes_nothing(reviewer, source):
    """A transition the state does not allow is refused (not_allowed) and leaves no event."""
    explanation = ExplanationFactory(status=source)
    with pytest.raises(review.ReviewError) as err:
        review.explanation_approve(user=reviewer, explanation_id=explanation.pk)
    assert err.value.code == review.ReviewError.NOT_ALLOWED
    explanation.refresh_from_db()
    assert explanation.status == source
    assert not ReviewEvent.objects.exists()


def test_a_failing_audit_write_rolls_the_transition_back(reviewer, monkeypatch):
    """The event is written in the transition's transaction: if it fails, the status change is undone."""
    # given a pending explanation, and an audit write that fails
    explanation = pending()

    def broken(*args, **kwargs):
        raise IntegrityError("audit table unavailable")

    monkeypatch.setattr(ReviewEvent.objects, "create", broken)
    # when a reviewer approves it
    with pytest.raises(IntegrityError):
        review.explanation_approve(user=reviewer, explanation_id=explanation.pk)
    # then it is still pending and there is no event
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW
    assert not ReviewEvent.objects.exists()


@pytest.mark.parametrize("groups", [["sales"], ["manager"], []])
def test_only_reviewers_and_admins_may_act(groups):
    """Sales, managers and users without a role are refused by the service itself."""
    explanation = pending()
    with pytest.raises(review.ReviewError) as err:
        review.explanation_approve(user=UserFactory(groups=groups), explanation_id=explanation.pk)
    assert err.value.code == review.ReviewError.FORBIDDEN
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW


def test_admins_may_act():
    """A superuser holds every role."""
    explanation = pending()
    review.explanation_approve(user=UserFactory(is_superuser=True), explanation_id=explanation.pk)
    explanation.refresh_from_db()
    assert explanation.status == S.APPROVED


def test_four_eyes_the_editor_of_the_current_text_cannot_approve_it(reviewer):
    """Whoever wrote the current text is refused; a second reviewer may approve."""
    # given a text edited by ``reviewer``
    explanation = pending(reason_edited_by=reviewer)
    # when the editor approves it / then it is refused
    with pytest.raises(review.ReviewError) as err:
        review.explanation_approve(user=reviewer, explanation_id=explanation.pk, comment="mine")
    assert err.value.code == review.ReviewError.FOUR_EYES
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW
    # and another reviewer may
    other = UserFactory(groups=["reviewer"])
    review.explanation_approve(user=other, explanation_id=explanation.pk)
    explanation.refresh_from_db()
    assert explanation.status == S.APPROVED


ERROR_FLAG = {"code": "pii:email", "message": "E-mail", "start": 0, "end": 5, "text": "It go", "severity": "error"}
WARNING_FLAG = {**ERROR_FLAG, "code": "too_long", "severity": "warning"}


def test_approving_a_text_with_an_error_flag_needs_a_comment(reviewer):
    """An error finding (PII, sensitive attribute) is approved only with a comment saying why it does not apply."""
    explanation = pending(flags=[ERROR_FLAG])
    with pytest.raises(review.ReviewError) as err:
        review.explanation_approve(user=reviewer, explanation_id=explanation.pk)
    assert err.value.code == review.ReviewError.COMMENT_REQUIRED
    review.explanation_approve(user=reviewer, explanation_id=explanation.pk, comment="product name, not a person")
    explanation.refresh_from_db()
    assert explanation.status == S.APPROVED


def test_approving_a_text_with_only_warnings_needs_no_comment(reviewer):
    explanation = pending(flags=[WARNING_FLAG])
    review.explanation_approve(user=reviewer, explanation_id=explanation.pk)
    explanation.refresh_from_db()
    assert explanation.status == S.APPROVED


def test_bulk_approve_takes_only_unflagged_texts_the_user_did_not_write(reviewer):
    """Bulk approval skips flagged texts and the user's own edits, each with a reason; the rest are approved."""
    # given three clean, one flagged, one edited by the reviewer, one already approved
    clean = [pending() for _ in range(3)]
    flagged = pending(flags=[WARNING_FLAG])
    own = pending(reason_edited_by=reviewer)
    approved = ExplanationFactory(status=S.APPROVED)
    ids = [e.pk for e in clean] + [flagged.pk, own.pk, approved.pk]
    # when the reviewer bulk-approves all of them
    result = review.explanations_bulk(user=reviewer, action="approve", explanation_ids=ids)
    # then the clean ones are approved, each with its own event
    assert result.done == [e.pk for e in clean]
    assert set(Explanation.objects.filter(status=S.APPROVED).values_list("pk", flat=True)) == {
        *result.done,
        approved.pk,
    }
    assert ReviewEvent.objects.filter(action="approve").count() == 3
    # and the others are refused with a reason, unchanged
    refused = dict(result.refused)
    assert set(refused) == {flagged.pk, own.pk, approved.pk}
    assert "flags" in refused[flagged.pk]
    assert "another reviewer" in refused[own.pk]
    flagged.refresh_from_db()
    assert flagged.status == S.PENDING_REVIEW


def test_bulk_reject_needs_a_comment_and_takes_flagged_texts(reviewer):
    flagged = pending(flags=[ERROR_FLAG])
    with pytest.raises(review.ReviewError):
        review.explanations_bulk(user=reviewer, action="reject", explanation_ids=[flagged.pk])
    result = review.explanations_bulk(user=reviewer, action="reject", explanation_ids=[flagged.pk], comment="PII")
    assert result.done == [flagged.pk]
    flagged.refresh_from_db()
    assert flagged.status == S.REJECTED


def test_services_do_not_reach_explanations_of_customers_out_of_scope(reviewer):
    """A missing id is refused as not found (the services look up through the scoping selector)."""
    with pytest.raises(review.ReviewError) as err:
        review.explanation_approve(user=reviewer, explanation_id=987654321)
    assert err.value.code == review.ReviewError.NOT_FOUND


# --------------------------------------------------------------------------- generated texts


def test_a_new_generated_text_is_versioned_and_queued():
    """The explain job's hook: version 1 (machine), generated -> pending_review with an event."""
    explanation = ExplanationFactory(status=S.GENERATED, flags=[WARNING_FLAG])
    with transaction.atomic():
        review.explanation_record_generated(explanation=explanation)
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW
    assert explanation.review_requested_at is not None
    version = ReasonVersion.objects.get(explanation=explanation)
    assert (version.number, version.source, version.author, version.text) == (
        1,
        ReasonVersion.Source.GENERATED,
        None,
        explanation.reason_text,
    )
    assert version.flags == [WARNING_FLAG]
    event = ReviewEvent.objects.get(explanation=explanation)
    assert (event.actor, event.action, event.from_status, event.to_status) == (
        None,
        "submit",
        S.GENERATED,
        S.PENDING_REVIEW,
    )
    assert event.comment == "Automatic checks: 1 flag."


def test_the_same_generated_text_again_keeps_the_review(reviewer):
    """A redelivered shard writes the identical text: the approval stands, nothing is added."""
    explanation = ExplanationFactory(status=S.GENERATED)
    review.explanation_record_generated(explanation=explanation)
    review.explanation_approve(user=reviewer, explanation_id=explanation.pk)
    explanation.refresh_from_db()
    review.explanation_record_generated(explanation=explanation)
    explanation.refresh_from_db()
    assert explanation.status == S.APPROVED
    assert ReasonVersion.objects.filter(explanation=explanation).count() == 1


def test_a_different_generated_text_is_reviewed_again(reviewer):
    """A new machine text replaces an approved one: approved -> generated -> pending_review, version 2."""
    explanation = ExplanationFactory(status=S.GENERATED)
    review.explanation_record_generated(explanation=explanation)
    review.explanation_approve(user=reviewer, explanation_id=explanation.pk)
    explanation.refresh_from_db()
    original = explanation.reason_text
    Explanation.objects.filter(pk=explanation.pk).update(reason_text="A freshly generated reason.")
    explanation.refresh_from_db()
    review.explanation_record_generated(explanation=explanation)
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW
    assert list(ReasonVersion.objects.filter(explanation=explanation).values_list("number", "text")) == [
        (1, original),
        (2, "A freshly generated reason."),
    ]
    moves = list(ReviewEvent.objects.filter(explanation=explanation).values_list("from_status", "to_status"))
    assert moves == [
        (S.GENERATED, S.PENDING_REVIEW),
        (S.PENDING_REVIEW, S.APPROVED),
        (S.APPROVED, S.GENERATED),
        (S.GENERATED, S.PENDING_REVIEW),
    ]


# --------------------------------------------------------------------------- append-only


def test_review_events_cannot_be_changed_or_deleted_through_the_orm(reviewer):
    explanation = pending()
    review.explanation_approve(user=reviewer, explanation_id=explanation.pk)
    event = ReviewEvent.objects.get()
    event.comment = "rewritten history"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        ReviewEvent.objects.filter(pk=event.pk).update(comment="x")
    with pytest.raises(AppendOnlyError):
        ReviewEvent.objects.all().delete()
    assert ReviewEvent.objects.get().comment == ""


@pytest.mark.parametrize(
    ("table", "column"), [("explanations_reviewevent", "comment"), ("explanations_reasonversion", "text")]
)
def test_the_database_refuses_updates_of_audit_rows(reviewer, table, column):
    """The trigger refuses an UPDATE in SQL too (raw SQL, another client, a bug)."""
    explanation = ExplanationFactory(status=S.GENERATED)
    review.explanation_record_generated(explanation=explanation)
    with pytest.raises(IntegrityError), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = 'x'")  # noqa: S608 - fixed names


def test_deleting_a_user_keeps_their_events_with_the_name(reviewer):
    """ON DELETE SET NULL is the one update the trigger lets through; the name stays."""
    explanation = pending()
    review.explanation_approve(user=reviewer, explanation_id=explanation.pk)
    reviewer.delete()
    event = ReviewEvent.objects.get()
    assert (event.actor_id, event.actor_name) == (None, reviewer.username)


def test_erasing_the_explanation_removes_its_audit_rows(reviewer):
    """Erasure (deleting the customer) cascades through explanations: the audit rows go with them."""
    explanation = ExplanationFactory(status=S.GENERATED)
    review.explanation_record_generated(explanation=explanation)
    explanation.recommendation.customer.delete()
    assert not ReviewEvent.objects.exists()
    assert not ReasonVersion.objects.exists()
