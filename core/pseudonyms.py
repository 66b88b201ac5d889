"""Keyed pseudonyms: HMAC-SHA256 under the deployment's secret key; no source identifier is ever stored.

* customers: ``pseudonymize(source_id)``, the HMAC of the canonical CustomerID (shown as the account's name);
* every other identifier that comes from the source file goes through ``pseudonymize_value`` with a
  purpose of its own, so that one kind of pseudonym cannot be matched against another: invoice numbers
  (``pseudonymize_invoice``), the natural key of a purchase line (``line_key``) and the keyed tombstone
  of an erased customer (``tombstone``). Whoever holds the public source file but not the key cannot
  recompute any of them; the key holder can, which is what makes re-imports idempotent and erasure
  possible, so the key is a secret like the database password.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings

from core.keys import read_secret

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


@lru_cache(maxsize=64)
def purpose_key(key: bytes, purpose: str) -> bytes:
    """Return the sub-key of ``key`` for one purpose ("invoice", "line", "tombstone")."""
    if not purpose:
        raise ValueError("a purpose is required: the bare key makes customer pseudonyms")
    return hmac.digest(key, b"elm-purpose\x1f" + purpose.encode(), "sha256")


def pseudonymize_value(value: str, *, key: bytes, purpose: str, length: int = 32) -> str:
    """Return the keyed pseudonym (lower-case hex) of any source value for ``purpose``."""
    return hmac.digest(purpose_key(key, purpose), value.encode(), "sha256").hex()[:length]


INVOICE_PSEUDONYM_LENGTH = 14  # hex chars = 56 bits: collision-free in practice for millions of invoices


def pseudonymize_invoice(invoice: str, *, key: bytes) -> str:
    """Return the pseudonym of a canonical invoice number ("536365" -> "3f0c9a...", "C536379" -> "C3f0c9a...").

    The letter prefix (C = cancellation) stays, since the stored line's kind says it anyway, and the
    number is keyed without it: a return written as "C" + its sale's number still matches that sale.
    """
    prefix = invoice[:1] if invoice[:1].isalpha() else ""
    number = invoice[len(prefix) :]
    return prefix + pseudonymize_value(number, key=key, purpose="invoice", length=INVOICE_PSEUDONYM_LENGTH)


def line_key(fields: tuple[str, ...], *, key: bytes) -> str:
    """Return the natural key of a purchase line: keyed over its canonical source values and pseudonyms."""
    return pseudonymize_value("\x1f".join(fields), key=key, purpose="line")


def tombstone(pseudonym: str, *, key: bytes) -> str:
    """Return the keyed tombstone of an erased customer (never the pseudonym itself, never the source id)."""
    return pseudonymize_value(pseudonym, key=key, purpose="tombstone")
