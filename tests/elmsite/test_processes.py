"""Tests for stopping the demo's child processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from elmsite import processes

# A child that says when its SIGTERM handler is installed; on SIGTERM it exits 3 ("warm") or ignores it.
CHILD = """
import signal, sys, time
if sys.argv[1] == "warm":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(3))
else:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("ready", flush=True)
time.sleep(120)
"""


def _child(tmp_path, name: str, behaviour: str) -> processes.Child:
    proc = subprocess.Popen([sys.executable, "-c", CHILD, behaviour], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return processes.Child(name=name, proc=proc, log=tmp_path / f"{name}.log")


def test_stop_all_stops_warm_children_and_kills_stuck_ones(tmp_path):
    """Give every child SIGTERM, then kill only those still running when the time is up."""
    # given two children that stop on SIGTERM and one that ignores it (a worker busy with its task)
    warm = [_child(tmp_path, f"warm{i}", "warm") for i in range(2)]
    stuck = _child(tmp_path, "stuck", "stuck")
    # when
    processes.stop_all([*warm, stuck], timeout=1)
    # then the warm ones exited by themselves, the stuck one was killed
    assert [c.proc.returncode for c in warm] == [3, 3]
    assert stuck.proc.returncode == -9


def test_a_second_interrupt_kills_every_child_left(tmp_path, monkeypatch):
    """Kill all remaining children, not only the one being waited on, when Ctrl-C comes again."""
    # given three children that ignore SIGTERM, and a Ctrl-C while waiting for the first
    children = [_child(tmp_path, f"stuck{i}", "stuck") for i in range(3)]

    real_wait = children[0].proc.wait
    calls = []

    def interrupted_once(timeout=None):
        calls.append(timeout)
        if len(calls) == 1:
            raise KeyboardInterrupt
        return real_wait(timeout)

    monkeypatch.setattr(children[0].proc, "wait", interrupted_once)
    # when (a long timeout: only the interrupt can end the wait early)
    processes.stop_all(children, timeout=600)
    # then every child is gone
    monkeypatch.undo()
    for child in children:
        assert child.proc.wait(5) == -9


@pytest.mark.parametrize("count", [0, 1])
def test_stop_all_ignores_children_that_already_exited(tmp_path, count):
    """Leave children that already ended alone."""
    children = [_child(tmp_path, f"warm{i}", "warm") for i in range(count)]
    for child in children:
        child.proc.kill()
        child.proc.wait()
    processes.stop_all(children, timeout=1)
    assert all(c.proc.returncode == -9 for c in children)
