"""Review rules: who reads a reason, and four-eyes approval (explanations.review)."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from core.permissions import user_is_reviewer
from explanations.review import can_approve, reason_visible_to
from tests.factories import ExplanationFactory, UserFactory

pytestmark = pytest.mark.django_db


# --------------------------------------------------------------------------- explanations


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, False),
        ({"groups": ["sales"]}, False),
        ({"groups": ["reviewer"]}, True),
        ({"groups": ["manager"]}, True),
        ({"groups": ["sales", "reviewer"]}, True),
        ({"is_staff": True}, False),  # the staff flag is not a role
        ({"is_superuser": True}, True),
    ],
)
def test_reason_visible_to_reviewers_managers_and_staff_only(kwargs, expected):
    """Show unapproved reasons to admins and the reviewer and manager groups; hide them from everyone else."""
    # given
    user = UserFactory(**kwargs)
    explanation = ExplanationFactory()
    # when / then
    assert reason_visible_to(user, explanation) is expected
    assert user_is_reviewer(user=user) is expected


def test_reason_is_hidden_from_anonymous_users():
    """Never show a reason to an anonymous user."""
    # given
    explanation = ExplanationFactory()
    # when / then
    assert reason_visible_to(AnonymousUser(), explanation) is False


def test_role_checks_ask_for_the_groups_once_per_user(django_assert_num_queries):
    """Cache the user's role groups so that many explanations cost one query."""
    # given
    user = UserFactory(groups=["sales"])
    explanations = ExplanationFactory.create_batch(3)
    # when / then
    with django_assert_num_queries(1):
        visible = [reason_visible_to(user, e) for e in explanations]
        reviewer = user_is_reviewer(user=user)
    assert visible == [False, False, False]
    assert reviewer is False


def test_whoever_wrote_the_current_text_cannot_approve_it():
    """Four-eyes: the editor of the current text may not approve it; another reviewer and the machine's text may."""
    # given
    editor, other = UserFactory(groups=["reviewer"]), UserFactory(groups=["reviewer"])
    edited = ExplanationFactory(reason_edited_by=editor)
    generated = ExplanationFactory(reason_edited_by=None)
    # when / then
    assert can_approve(explanation=edited, user=editor) is False
    assert can_approve(explanation=edited, user=other) is True
    assert can_approve(explanation=generated, user=editor) is True
    assert can_approve(explanation=generated, user=AnonymousUser()) is True  # roles are the service's check
