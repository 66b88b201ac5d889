"""Write audit records: the one service every app calls to leave an append-only trace."""

from __future__ import annotations

from contextlib import contextmanager

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection, transaction

from core.models import AuditEvent

UserLike = AbstractBaseUser | AnonymousUser | None


def audit_record(
    *, actor: UserLike, action: str, object_type: str, object_ref: str | int = "", detail: dict | None = None
) -> AuditEvent:
    """Append an audit event; call it inside the transaction of the change it records."""
    # Anonymous actors (failed sign-ins, system jobs) are stored as no actor.
    stored_actor = actor if actor is not None and getattr(actor, "is_authenticated", False) else None
    return AuditEvent.objects.create(
        actor=stored_actor,
        action=action,
        object_type=object_type,
        object_ref=str(object_ref),
        detail=detail or {},
    )


@contextmanager
def audit_redaction():
    """Allow redacting object references in audit rows for the current transaction (erasure only).

    The database trigger refuses every UPDATE of ``core_auditevent`` except unlinking a deleted
    actor, unless the transaction set ``elm.audit_redact``; ``SET LOCAL`` ends with the transaction.
    """
    if not connection.in_atomic_block:
        raise transaction.TransactionManagementError("audit_redaction() must run inside transaction.atomic()")
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL elm.audit_redact = 'on'")
    yield
    # On an exception the transaction rolls back and SET LOCAL ends with it; otherwise switch it off now.
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL elm.audit_redact = 'off'")
