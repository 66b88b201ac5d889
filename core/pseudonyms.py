"""Keyed pseudonyms: HMAC-SHA256 of the source customer id; the raw id is never stored."""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings

from elmsite.keys import read_secret

PSEUDONYM_LENGTH = 16  # hex chars = 64 bits; collision-free in practice up to millions of customers


class InvalidSourceId(ValueError):
    pass


def pseudonym_key() -> bytes:
    """Return the key from ELM_PSEUDONYM_KEY or the 0600 key file under var/."""
    key = read_secret(
        env="ELM_PSEUDONYM_KEY",
        key_file=settings.ELM_PSEUDONYM_KEY_FILE,
        create=settings.ELM_CREATE_KEY_FILES,
        purpose="Keep it safe: pseudonyms cannot be recomputed (e.g. for erasure) without it.",
    )
    return key.encode()


def normalize_source_id(raw: str) -> str:
    """Return the canonical text of a source customer id ('17850.0' and ' 17850' -> '17850')."""
    text = raw.strip()
    if text.endswith(".0"):
        text = text[:-2]
    if not text.isdigit():
        raise InvalidSourceId("customer id must be a whole number")
    return str(int(text))


def pseudonymize(source_id: str, *, key: bytes) -> str:
    """Return the pseudonym of a source customer id under ``key``."""
    canonical = normalize_source_id(source_id)
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()[:PSEUDONYM_LENGTH]
