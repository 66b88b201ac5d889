"""Tests for stopping the demo's child processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

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
    # then the warm ones exited by themselves, the stuck one ended by the cold shutdown's signal
    assert [c.proc.returncode for c in warm] == [3, 3]
    assert stuck.proc.returncode == -signal.SIGQUIT


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


# A supervisor like ``demo``: the handlers installed, a child busy with a task (it ignores the warm and the
# cold signal, and has a pool process of its own) and a warm child; it stops them when interrupted.
BUSY = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGQUIT, signal.SIG_IGN)
pool = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
print("pids", pool.pid, flush=True)
time.sleep(120)
"""
WARM = "import time; print('pids', flush=True); time.sleep(120)"
SUPERVISOR = """
import os, sys, time
from pathlib import Path
from elmsite import processes

processes.stop_on_signals()
log_dir = Path(sys.argv[1])
children = []
try:
    for name, code in (("busy", sys.argv[2]), ("warm", sys.argv[3])):
        cmd = [sys.executable, "-c", code]
        children.append(processes.spawn(name, cmd, log_dir=log_dir, env=dict(os.environ), cwd=log_dir))
    for child in children:
        processes.wait_for_log(child, b"pids", timeout=30)
    pool = (log_dir / "busy.log").read_text().split()[1]
    print("ready", " ".join([str(c.proc.pid) for c in children] + [pool]), flush=True)
    while True:
        time.sleep(1)
except KeyboardInterrupt:
    pass
finally:
    processes.stop_all(children)
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie waiting for a parent to reap it has stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # what a script's `cmd &` does to the command


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_supervisor_started_with_sigint_ignored_stops_everything_within_ten_seconds(tmp_path, signum):
    """Stop every child and grandchild within 10 s of Ctrl-C (or SIGTERM), as when a script started it with `&`."""
    # given: the supervisor started the way a script's background job is, with SIGINT ignored
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", SUPERVISOR, str(tmp_path), BUSY, WARM],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "ELM_STOP_WARM_SECONDS": "4", "ELM_STOP_COLD_SECONDS": "2"},
        stdout=subprocess.PIPE,
        text=True,
        preexec_fn=_ignore_sigint,
    )
    line = proc.stdout.readline().split()
    assert line[:1] == ["ready"], line
    pids = [int(pid) for pid in line[1:]]
    assert all(_running(pid) for pid in pids)
    # when
    started = time.monotonic()
    proc.send_signal(signum)
    # then: the supervisor and every process it started are gone within 10 s
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
    while any(_running(pid) for pid in pids) and time.monotonic() < started + 10:
        time.sleep(0.1)
    left = [pid for pid in pids if _running(pid)]
    for pid in left:
        os.kill(pid, signal.SIGKILL)
    assert left == []
    assert proc.returncode == 0
