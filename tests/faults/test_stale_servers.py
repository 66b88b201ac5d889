"""Embedded servers left behind by a killed process are found and reused, or cleared, by the next start.

Each test runs its own PostgreSQL and Valkey in a temporary var dir (the shared ones are never touched).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
import pytest

from elmsite import embedded
from tests.faults.conftest import ROOT, record, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def _valkey_client(var_dir):
    import redis

    path, password = str(embedded.valkey_socket(var_dir)), embedded.valkey_password(var_dir)
    return redis.Redis(unix_socket_path=path, password=password)


def query(var_dir, sql: str):
    with psycopg.connect(embedded.pg_conninfo(var_dir), autocommit=True, connect_timeout=10) as conn:
        cur = conn.execute(sql)
        return cur.fetchone()[0] if cur.description else None


def start_in_a_process_that_is_then_killed(var_dir) -> int:
    """Start the servers from a child process (as ``manage.py services start`` or ``demo`` would) and SIGKILL it."""
    code = (
        "import sys; from pathlib import Path; from elmsite import embedded; "
        "embedded.start_all(Path(sys.argv[1])); print('started', flush=True); import time; time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(var_dir)], cwd=ROOT, stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"started"
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    return proc.returncode


def test_servers_left_running_by_a_killed_process_are_reused(private_var_dir):
    """Reuse the PostgreSQL and Valkey that a SIGKILLed process started; data written before is still there."""
    # Given servers started by a process that was then killed with SIGKILL
    assert start_in_a_process_that_is_then_killed(private_var_dir) == -signal.SIGKILL
    pg_pid = embedded.pg_status(private_var_dir).pid
    valkey_pid = embedded.valkey_status(private_var_dir).pid
    query(private_var_dir, "CREATE TABLE kept AS SELECT 42 AS answer")

    # When the next process starts the servers
    statuses = embedded.start_all(private_var_dir)

    # Then it found and reused both (same pids), with the data
    assert [s.pid for s in statuses] == [pg_pid, valkey_pid]
    assert query(private_var_dir, "SELECT answer FROM kept") == 42


def test_a_sigkilled_postmaster_leaves_a_stale_pid_file_that_the_next_start_clears(private_var_dir):
    """Start again after the postmaster itself was SIGKILLed (stale postmaster.pid, socket and shared memory)."""
    # Given a server with committed data whose postmaster is killed with SIGKILL
    embedded.pg_start(private_var_dir)
    query(private_var_dir, "CREATE TABLE kept AS SELECT 42 AS answer")
    old_pid = embedded.pg_pid(private_var_dir)
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: not embedded._pid_alive(old_pid), timeout=10, what="postmaster gone")
    assert (embedded.pg_data_dir(private_var_dir) / "postmaster.pid").exists()  # stale
    assert not embedded.pg_status(private_var_dir).running

    # When the next start runs (right away, while the old server's children may still be exiting)
    began = time.monotonic()
    status = embedded.pg_start(private_var_dir)
    seconds = time.monotonic() - began

    # Then a new server runs on the same data, which crash recovery kept
    assert status.running and status.pid != old_pid
    assert query(private_var_dir, "SELECT answer FROM kept") == 42
    record("stale_postgres[postmaster SIGKILL]", restart_seconds=round(seconds, 1), data_kept=True)


def test_a_stale_pid_file_naming_a_live_unrelated_process_is_not_taken_for_a_server(private_var_dir):
    """Do not mistake another process that reuses the old pid for PostgreSQL; start a real server."""
    # Given a stopped server whose postmaster.pid and socket are left behind, the pid now used by another process
    embedded.pg_start(private_var_dir)
    embedded.pg_stop(private_var_dir)
    impostor = subprocess.Popen(["sleep", "300"])
    try:
        pid_file = embedded.pg_data_dir(private_var_dir) / "postmaster.pid"
        pid_file.write_text(f"{impostor.pid}\n{embedded.pg_data_dir(private_var_dir)}\n")
        (embedded.pg_socket_dir(private_var_dir) / ".s.PGSQL.5432").touch()

        # When the status is read and the server started
        assert not embedded.pg_status(private_var_dir).running
        status = embedded.pg_start(private_var_dir)

        # Then a real server runs, and the impostor was left alone
        assert status.running and status.pid != impostor.pid
        assert query(private_var_dir, "SELECT 1") == 1
        assert impostor.poll() is None
    finally:
        impostor.kill()
        impostor.wait()


def test_a_sigkilled_valkey_is_started_again_with_its_queued_messages(private_var_dir):
    """Start Valkey again after SIGKILL (stale pid file and socket); append-only data written >1 s before survives."""
    # Given a Valkey holding a queued message, killed with SIGKILL after its once-a-second fsync
    embedded.valkey_start(private_var_dir)
    client = _valkey_client(private_var_dir)
    client.lpush("default", b"a queued task")
    time.sleep(2.5)  # appendfsync everysec
    old_pid = embedded.valkey_status(private_var_dir).pid
    os.kill(old_pid, signal.SIGKILL)
    wait_until(lambda: not embedded._pid_alive(old_pid), timeout=10, what="valkey gone")

    # When it is started again
    status = embedded.valkey_start(private_var_dir)

    # Then it runs and the message is still queued
    assert status.running and status.pid != old_pid
    client = _valkey_client(private_var_dir)
    assert client.lrange("default", 0, -1) == [b"a queued task"]
