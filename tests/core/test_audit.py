"""The audit log is append-only, in the ORM and in the database."""

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import IntegrityError, InternalError, ProgrammingError, connection, transaction

from core.audit import audit_record, audit_redaction
from core.models import AppendOnlyError, AuditEvent
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

DB_REFUSALS = (InternalError, ProgrammingError, IntegrityError)


@pytest.fixture
def event():
    return audit_record(
        actor=UserFactory(), action="explanation.approve", object_type="explanation", object_ref=42, detail={"n": 1}
    )


def test_audit_record_stores_who_did_what():
    actor = UserFactory()
    event = audit_record(actor=actor, action="account.assign", object_type="user", object_ref=7, detail={"n": 2})
    stored = AuditEvent.objects.get(pk=event.pk)
    assert (stored.actor, stored.action, stored.object_type, stored.object_ref, stored.detail) == (
        actor,
        "account.assign",
        "user",
        "7",
        {"n": 2},
    )
    assert stored.created_at is not None


def test_anonymous_actors_are_stored_as_no_actor():
    assert audit_record(actor=AnonymousUser(), action="login.failed", object_type="user").actor is None


def test_the_orm_refuses_to_change_or_delete_audit_events(event):
    event.action = "something.else"
    with pytest.raises(AppendOnlyError):
        event.save()
    with pytest.raises(AppendOnlyError):
        event.delete()
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).update(action="x")
    with pytest.raises(AppendOnlyError):
        AuditEvent.objects.filter(pk=event.pk).delete()


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE core_auditevent SET action = 'forged' WHERE id = %s",
        "UPDATE core_auditevent SET object_ref = 'other' WHERE id = %s",
        "UPDATE core_auditevent SET created_at = now() - interval '1 day' WHERE id = %s",
        "DELETE FROM core_auditevent WHERE id = %s",
    ],
)
def test_the_database_refuses_to_change_or_delete_audit_events(event, sql):
    """Refuse raw SQL changes too (a trigger), so no code path can rewrite history."""
    with pytest.raises(DB_REFUSALS), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).action == "explanation.approve"


def test_deleting_the_actor_keeps_the_event(event):
    """Allow the one update a deleted user causes: the actor link becomes empty, the record stays."""
    event.actor.delete()
    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.actor is None
    assert stored.action == "explanation.approve"


def test_redaction_is_allowed_only_inside_an_erasure_transaction(event):
    """Let erasure redact object references (in its own transaction), nothing else."""
    with transaction.atomic(), audit_redaction(), connection.cursor() as cursor:
        cursor.execute("UPDATE core_auditevent SET object_ref = '[erased]' WHERE id = %s", [event.pk])
    assert AuditEvent.objects.get(pk=event.pk).object_ref == "[erased]"
    # The permission ends with the block: the same statement is refused afterwards
    with pytest.raises(DB_REFUSALS), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("UPDATE core_auditevent SET object_ref = 'again' WHERE id = %s", [event.pk])
    # Even redaction cannot forge who did what
    with pytest.raises(DB_REFUSALS), transaction.atomic(), audit_redaction(), connection.cursor() as cursor:
        cursor.execute("UPDATE core_auditevent SET action = 'forged' WHERE id = %s", [event.pk])
