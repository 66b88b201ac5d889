"""The customer description's review state machine: the whole (from, to) table."""

from __future__ import annotations

import pytest

from explanations.models import CustomerDescription
from tests import fsm_table

D = CustomerDescription.Status
ALLOWED = {
    (D.PENDING_REVIEW, D.APPROVED): "approve",
    (D.PENDING_REVIEW, D.REJECTED): "reject",
    (D.APPROVED, D.PENDING_REVIEW): "resubmit",
    (D.REJECTED, D.PENDING_REVIEW): "resubmit",
}


@pytest.mark.parametrize(("source", "target"), fsm_table.all_pairs(CustomerDescription))
def test_every_pair_of_states_is_allowed_or_forbidden_as_the_table_says(source, target):
    fsm_table.check_pair(CustomerDescription, ALLOWED, source, target)


@pytest.mark.parametrize("source", fsm_table.states(CustomerDescription))
def test_forbidden_transitions_raise_and_leave_the_state(source):
    fsm_table.check_calls(CustomerDescription, ALLOWED, source)


def test_the_table_names_only_real_states_and_every_transition():
    fsm_table.check_table_is_honest(CustomerDescription, ALLOWED)


def test_the_status_cannot_be_assigned_directly():
    fsm_table.check_protected(CustomerDescription, D.PENDING_REVIEW, D.APPROVED)
