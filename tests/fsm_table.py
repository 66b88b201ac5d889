"""Check a model's status machine against a test's table of allowed (from, to) moves.

Each state-machine test lists the whole table ``{(source, target): transition name}``; every pair of
states not in it is forbidden. These helpers read the transitions the model declares (django-fsm),
so a transition added, dropped or widened on the model fails the test until the table says so.
"""

from __future__ import annotations

import itertools

import pytest
from django_fsm import TransitionNotAllowed


def states(model) -> list[str]:
    return [value for value, _ in model.Status.choices]


def all_pairs(model) -> list[tuple[str, str]]:
    return list(itertools.product(states(model), states(model)))


def declared(model) -> set[str]:
    """Return the names of every transition the model declares on ``status``."""
    return {t.name for t in model._meta.get_field("status").get_all_transitions(model)}


def moves_from(model, state: str) -> set[tuple[str, str]]:
    """Return {(target, transition)} of what the model allows from ``state``."""
    return {(t.target, t.name) for t in model(status=state).get_available_status_transitions()}


def check_pair(model, allowed: dict, source: str, target: str) -> None:
    """``target`` is reachable from ``source`` exactly when the table says so, by the named transition."""
    reachable = {name for to, name in moves_from(model, source) if to == target}
    expected = {allowed[(source, target)]} if (source, target) in allowed else set()
    assert reachable == expected, f"{model.__name__}: {source} -> {target}"


def check_calls(model, allowed: dict, source: str) -> None:
    """Calling each transition from ``source``: allowed ones land on the table's target, others raise."""
    for name in declared(model):
        obj = model(status=source)
        targets = [to for (frm, to), t in allowed.items() if frm == source and t == name]
        if targets:
            getattr(obj, name)()
            assert obj.status == targets[0], f"{model.__name__}.{name} from {source}"
        else:
            with pytest.raises(TransitionNotAllowed):
                getattr(obj, name)()
            assert obj.status == source, f"{model.__name__}.{name} from {source} changed the state"


def check_table_is_honest(model, allowed: dict) -> None:
    """Every state and transition the table names exists on the model, and every transition is listed."""
    assert {s for pair in allowed for s in pair} <= set(states(model))
    assert set(allowed.values()) == declared(model)


def check_protected(model, state: str, other: str) -> None:
    """The status cannot be assigned directly once the object exists: only transitions change it."""
    obj = model(status=state)
    with pytest.raises(AttributeError):
        obj.status = other
    assert obj.status == state
