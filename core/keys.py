"""Secrets come from the environment or from a 0600 key file under ``var/``; never from code."""

from __future__ import annotations

import os
import secrets
import stat
import sys
from pathlib import Path


class MissingSecret(RuntimeError):
    pass


def read_secret(*, env: str, key_file: Path, create: bool, purpose: str = "") -> str:
    """Return the secret from ``env``, else from ``key_file`` (created 0600 when ``create``)."""
    value = os.environ.get(env)
    if value:
        return value
    if key_file.exists():
        mode = stat.S_IMODE(key_file.stat().st_mode)
        if mode & 0o077:
            raise MissingSecret(f"{key_file} must not be readable by others (chmod 600 {key_file}).")
        return key_file.read_text().strip()
    if not create:
        raise MissingSecret(f"Set {env} or create {key_file} (mode 0600).")
    key_file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_hex(32))
    print(f"WARNING: {env} is not set; created a local key in {key_file}. {purpose}".rstrip(), file=sys.stderr)
    return key_file.read_text().strip()
