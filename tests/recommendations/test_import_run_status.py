"""ImportRun.status is a state machine: running -> succeeded | failed, nothing else, never set directly."""

from __future__ import annotations

import pytest
from django.utils import timezone
from django_fsm import TransitionNotAllowed

from recommendations.models import ImportRun

pytestmark = pytest.mark.django_db

S = ImportRun.Status
ALLOWED = {(S.RUNNING, "succeed"): S.SUCCEEDED, (S.RUNNING, "fail"): S.FAILED}
ACTIONS = {"succeed": {}, "fail": {"error": "boom"}}


@pytest.mark.parametrize(("source", "action"), [(s, a) for s in S.values for a in ACTIONS])
def test_transitions_are_exactly_the_allowed_ones(source, action):
    """Allow running -> succeeded | failed; refuse every other move."""
    # Given a run in ``source``
    run = ImportRun.objects.create(file_name="f.csv", file_sha256="", status=source)
    move = getattr(run, action)
    # When the action is taken
    if (source, action) in ALLOWED:
        move(finished_at=timezone.now(), **ACTIONS[action])
        run.save()
        # Then the run reaches its target and records when (and why) it ended
        stored = ImportRun.objects.get(pk=run.pk)
        assert stored.status == ALLOWED[source, action]
        assert stored.finished_at is not None
        assert stored.error == ACTIONS[action].get("error", "")
    else:
        with pytest.raises(TransitionNotAllowed):
            move(finished_at=timezone.now(), **ACTIONS[action])


def test_the_status_cannot_be_assigned_directly():
    """The field is protected: only a transition changes it."""
    run = ImportRun.objects.create(file_name="f.csv", file_sha256="")
    with pytest.raises(AttributeError):
        run.status = S.SUCCEEDED
