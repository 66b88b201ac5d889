"""The embedded PostgreSQL and Valkey trust no local connection: owner-only sockets, a password each."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from contextlib import suppress
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings

from elmsite import embedded

pytestmark = pytest.mark.skipif(
    not (settings.EMBEDDED_DATABASE and settings.EMBEDDED_BROKER), reason="external servers are configured"
)
VAR = settings.VAR_DIR


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_sockets_and_secrets_are_the_owners_only():
    """Socket directory 0700, both sockets 0700, both password files 0600; no TCP listener."""
    # Given the servers the test session runs on
    sock_dir = embedded.pg_socket_dir(VAR)
    # Then only their owner may reach them, and read their passwords
    assert _mode(sock_dir) == 0o700
    assert _mode(sock_dir / ".s.PGSQL.5432") == 0o700
    assert _mode(embedded.valkey_socket(VAR)) == 0o700
    assert _mode(VAR / "pg-password.key") == _mode(VAR / "valkey-password.key") == 0o600
    assert embedded._pg_hba(VAR).read_text() == embedded.PG_HBA
    with psycopg.connect(embedded.pg_conninfo(VAR, "postgres")) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == ""
        assert conn.execute("SHOW password_encryption").fetchone()[0] == "scram-sha-256"


def test_a_connection_without_the_password_is_refused():
    """The server's own user without the password gets nothing from either server."""
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(f"host={embedded.pg_socket_dir(VAR)} user=postgres dbname=postgres", connect_timeout=5)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            f"host={embedded.pg_socket_dir(VAR)} user=postgres dbname=postgres password=guess", connect_timeout=5
        )
    with pytest.raises(redis.RedisError, match=r"(?i)auth"):
        redis.Redis(unix_socket_path=str(embedded.valkey_socket(VAR))).ping()
    # While the password opens both
    assert redis.Redis(unix_socket_path=str(embedded.valkey_socket(VAR)), password=embedded.valkey_password(VAR)).ping()


PROBE = """
import socket, sys
for path in sys.argv[1:]:
    s = socket.socket(socket.AF_UNIX)
    try:
        s.connect(path)
        print("connected", path)
    except OSError as exc:
        print("refused", path, exc.errno)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="running a client as another user needs root")
def test_another_local_user_is_refused_by_both_servers():
    """A client running as ``nobody`` cannot even open either socket."""
    # Given a Python that user may run (the system one; the project's may sit under a private directory)
    python = shutil.which("python3", path="/usr/bin:/bin") or sys.executable
    sockets = [str(embedded.pg_socket_dir(VAR) / ".s.PGSQL.5432"), str(embedded.valkey_socket(VAR))]
    # When it connects to both sockets as nobody
    out = subprocess.run([python, "-c", PROBE, *sockets], user="nobody", capture_output=True, text=True, timeout=30)
    # Then both are refused by the operating system (EACCES) before any server sees it
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == [f"refused {path} 13" for path in sockets]


@pytest.fixture
def private_var():
    """A var/ directory of this test's own (the servers run as ``pgserver`` under root: world-readable parent)."""
    var_dir = Path(tempfile.mkdtemp(prefix="elm-embedded-"))
    var_dir.chmod(0o755)
    yield var_dir
    for stop in (embedded.valkey_stop, embedded.pg_stop):
        with suppress(Exception):
            stop(var_dir)
    shutil.rmtree(var_dir, ignore_errors=True)
    shutil.rmtree(embedded.pg_socket_dir(var_dir), ignore_errors=True)


@pytest.mark.slow
def test_servers_set_up_by_an_older_version_are_converted(private_var):
    """A data directory that trusts local connections, and a Valkey without a password, get their passwords."""
    # Given servers as an older version left them: PostgreSQL trusting every local connection, Valkey open
    embedded.pg_start(private_var)
    embedded._pg_write_hba(private_var, "local all all trust\n")
    embedded.valkey_start(private_var)
    sock = str(embedded.valkey_socket(private_var))
    redis.Redis(unix_socket_path=sock, password=embedded.valkey_password(private_var)).config_set("requirepass", "")
    assert redis.Redis(unix_socket_path=sock).ping()
    # When they are started again (they are running: the start converts them in place)
    embedded.pg_start(private_var)
    embedded.valkey_start(private_var)
    # Then both ask for the password in var/
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(f"host={embedded.pg_socket_dir(private_var)} user=postgres dbname=postgres")
    psycopg.connect(embedded.pg_conninfo(private_var)).close()
    with pytest.raises(redis.RedisError):
        redis.Redis(unix_socket_path=sock).ping()
    # And a lost password file is replaced by a new password on the next start
    (private_var / "pg-password.key").unlink()
    embedded.pg_start(private_var)
    psycopg.connect(embedded.pg_conninfo(private_var)).close()
