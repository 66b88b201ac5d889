"""Account assignments (who looks after which customer) and erasure of a customer's personal data."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Count, QuerySet

from accounts.models import AccountAssignment
from core.audit import audit_record, audit_redaction
from core.models import AuditEvent
from core.permissions import SALES, user_has_role
from core.pseudonyms import INVOICE_PSEUDONYM_LENGTH, pseudonym_key, pseudonymize, tombstone
from recommendations.models import Customer, CustomerTombstone, ImportRun, Purchase
from recommendations.services.importer import rejected_rows_erase
from recommendations.services.regions import customer_regions_generalize

logger = logging.getLogger(__name__)

ERASED_REF = "[erased]"


def _check_sales_user(user: AbstractBaseUser) -> None:
    if not user.is_active or not user_has_role(user, SALES):
        raise ValidationError("Accounts can only be assigned to active users with the sales role.")


@transaction.atomic
def assignment_create(
    *, customer: Customer, user: AbstractBaseUser, assigned_by: AbstractBaseUser | None = None
) -> AccountAssignment:
    """Put ``customer`` into ``user``'s book (no-op if it already is); return the assignment."""
    _check_sales_user(user)
    assignment, created = AccountAssignment.objects.get_or_create(
        customer=customer, user=user, defaults={"assigned_by": assigned_by}
    )
    if created:
        audit_record(
            actor=assigned_by,
            action="account.assign",
            object_type="user",
            object_ref=user.pk,
            detail={"customers": 1},
        )
    return assignment


@transaction.atomic
def assignment_bulk(
    *,
    customers: QuerySet[Customer] | Iterable[Customer],
    user: AbstractBaseUser,
    assigned_by: AbstractBaseUser | None = None,
    detail: dict | None = None,
) -> int:
    """Put every one of ``customers`` into ``user``'s book; return how many were newly assigned."""
    _check_sales_user(user)
    ids = set(customers.values_list("pk", flat=True)) if isinstance(customers, QuerySet) else {c.pk for c in customers}
    ids -= set(AccountAssignment.objects.filter(user=user, customer_id__in=ids).values_list("customer_id", flat=True))
    AccountAssignment.objects.bulk_create(
        [AccountAssignment(customer_id=pk, user=user, assigned_by=assigned_by) for pk in sorted(ids)],
        ignore_conflicts=True,  # a concurrent assignment of the same pair is not an error
        batch_size=1000,
    )
    if ids:
        audit_record(
            actor=assigned_by,
            action="account.assign",
            object_type="user",
            object_ref=user.pk,
            detail={"customers": len(ids), **(detail or {})},
        )
    return len(ids)


def assignment_bulk_by_region(
    *, region: str, user: AbstractBaseUser, assigned_by: AbstractBaseUser | None = None
) -> int:
    """Assign every customer of ``region`` to ``user``; return how many were newly assigned."""
    return assignment_bulk(
        customers=Customer.objects.filter(region=region), user=user, assigned_by=assigned_by, detail={"region": region}
    )


@transaction.atomic
def assignment_delete(*, assignments: QuerySet[AccountAssignment], actor: AbstractBaseUser | None = None) -> int:
    """Take the given assignments out of their users' books; return how many were removed."""
    per_user = dict(assignments.order_by().values_list("user_id").annotate(n=Count("pk")))
    deleted, _ = assignments.delete()
    for user_id, n in sorted(per_user.items()):
        audit_record(
            actor=actor, action="account.unassign", object_type="user", object_ref=user_id, detail={"customers": n}
        )
    return deleted


@transaction.atomic
def assignment_demo_books(*, users: Sequence[AbstractBaseUser], per_user: int = 300) -> dict[str, int]:
    """Give each of ``users`` a realistic book of about ``per_user`` customers; return the book sizes.

    Territories: the smaller regions go whole to the user with the smallest book so far; then every
    book is topped up from the largest region, most active customers first, dealt in turn so each
    user also gets some of the accounts the demo explains first. Users who already have a book keep
    it (re-running the demo changes nothing). Books do not overlap; the rest of the largest region
    stays unassigned (house accounts, seen by reviewers and managers).
    """
    sizes = {u.username: AccountAssignment.objects.filter(user=u).count() for u in users}
    new_users = [u for u in users if sizes[u.username] == 0]
    if not new_users:
        return sizes
    taken = set(AccountAssignment.objects.values_list("customer_id", flat=True))
    free = Customer.objects.exclude(pk__in=taken)
    regions = list(free.order_by().values_list("region").annotate(n=Count("pk")).order_by("-n", "region"))
    if not regions:
        return sizes
    books: dict[int, set[int]] = {u.pk: set() for u in new_users}
    largest, *others = regions
    for region, n in others:
        smallest = min(new_users, key=lambda u: (len(books[u.pk]), u.pk))
        if len(books[smallest.pk]) + n > per_user:
            continue  # a territory that would overfill the book stays with the house
        books[smallest.pk] |= set(free.filter(region=region).values_list("pk", flat=True))
    wanted = sum(max(0, per_user - len(b)) for b in books.values())
    pool = list(free.filter(region=largest[0]).order_by("-order_count", "pk").values_list("pk", flat=True)[:wanted])
    for turn, pk in enumerate(pool):
        open_books = [u for u in new_users if len(books[u.pk]) < per_user]
        if not open_books:
            break
        books[open_books[turn % len(open_books)].pk].add(pk)
    for user in new_users:
        sizes[user.username] = assignment_bulk(
            customers=Customer.objects.filter(pk__in=books[user.pk]), user=user, detail={"demo": True}
        )
    return sizes


# --------------------------------------------------------------------------- erasure


def _detach_purchases(customer_id: int) -> int:
    """Unlink the customer's purchase lines and give them random keys and invoices; return how many lines."""
    # Line keys and invoice pseudonyms are keyed: with the key and a source id one could find the person's
    # lines again, so both are replaced by random values. A random invoice value per invoice keeps the lines
    # of one basket together (co-purchase statistics); a cancellation keeps its C, as its kind says anyway.
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            WITH invoices AS (
                SELECT invoice, CASE WHEN invoice LIKE 'C%%' THEN 'C' ELSE '' END
                                || substr(md5(gen_random_uuid()::text), 1, %s) AS random_invoice
                FROM (SELECT DISTINCT invoice FROM {Purchase._meta.db_table} WHERE customer_id = %s) d
            )
            UPDATE {Purchase._meta.db_table} p
            SET customer_id = NULL, line_key = replace(gen_random_uuid()::text, '-', ''), invoice = i.random_invoice
            FROM invoices i
            WHERE p.customer_id = %s AND p.invoice = i.invoice
            """,  # noqa: S608 - our table name
            [INVOICE_PSEUDONYM_LENGTH, customer_id, customer_id],
        )
        return cursor.rowcount


def _rewrite_rejected_rows(*, pseudonym: str, customer_id: int) -> int:
    """Remove the customer's rows from every import's rejected-rows report; return how many rows went."""
    invoices = set(Purchase.objects.filter(customer_id=customer_id).values_list("invoice", flat=True).distinct())
    files = ImportRun.objects.exclude(rejected_rows_file="").values_list("rejected_rows_file", flat=True)
    return rejected_rows_erase(files=list(files), pseudonym=pseudonym, invoices=invoices)


def _redact_audit_references(pseudonym: str) -> int:
    """Replace the customer's pseudonym in earlier audit rows; return how many rows were redacted."""
    refs = AuditEvent.objects.filter(object_ref=pseudonym)
    mentions = AuditEvent.objects.filter(detail__icontains=pseudonym)  # JSON text search; rare, small table
    ids = set(refs.values_list("pk", flat=True)) | set(mentions.values_list("pk", flat=True))
    if not ids:
        return 0
    with audit_redaction(), connection.cursor() as cursor:
        table = AuditEvent._meta.db_table
        cursor.execute(
            f"UPDATE {table} SET object_ref = %s WHERE id = ANY(%s) AND object_ref = %s",  # noqa: S608
            [ERASED_REF, sorted(ids), pseudonym],
        )
        cursor.execute(
            f"""UPDATE {table} SET detail = jsonb_build_object('redacted', true)
                WHERE id = ANY(%s) AND detail::text LIKE %s""",  # noqa: S608
            [sorted(ids), f"%{pseudonym}%"],
        )
    return len(ids)


@transaction.atomic
def customer_erase(*, customer: Customer, actor: AbstractBaseUser | None = None) -> dict:
    """Erase one customer: delete the account and everything derived from it, detach its purchases.

    Deleted: the customer row (with its embedding), recommendations, their explanations and
    everything hanging off them (outcomes, exposures, review records), concept scores and account
    assignments; the customer's rows in the imports' rejected-rows reports. Purchase lines stay for the
    product statistics, without the customer link. A keyed tombstone (``core.pseudonyms.tombstone``)
    keeps a re-import of an old file from bringing the customer back. Regions are regeneralized, so
    none drops below k. The audit log records counts only: neither the source id nor the pseudonym.
    """
    pseudonym = customer.pseudonym
    # The reports first: a failure here rolls the whole erasure back, and the files are replaced atomically.
    rejected_rows = _rewrite_rejected_rows(pseudonym=pseudonym, customer_id=customer.pk)
    purchases = _detach_purchases(customer.pk)
    _, deleted = Customer.objects.filter(pk=customer.pk).delete()
    CustomerTombstone.objects.get_or_create(tombstone=tombstone(pseudonym, key=pseudonym_key()))
    redacted = _redact_audit_references(pseudonym)
    region_k = customer_regions_generalize()
    summary = {
        "deleted": {label: n for label, n in sorted(deleted.items()) if n},
        "purchases_detached": purchases,
        "rejected_rows_removed": rejected_rows,
        "audit_rows_redacted": redacted,
        "region_k": region_k,
    }
    audit_record(actor=actor, action="customer.erase", object_type="customer", object_ref="", detail=summary)
    logger.info("erased one customer: %s", summary)
    return summary


def customer_erase_by_source_id(*, source_id: str, actor: AbstractBaseUser | None = None) -> dict:
    """Erase the customer whose source id is ``source_id``; raise Customer.DoesNotExist if there is none."""
    pseudonym = pseudonymize(source_id, key=pseudonym_key())
    customer = Customer.objects.get(pseudonym=pseudonym)
    return customer_erase(customer=customer, actor=actor)


def customers_erase(*, customers: QuerySet[Customer], actor: AbstractBaseUser | None = None) -> int:
    """Erase each of ``customers`` (one transaction each); return how many were erased."""
    erased = 0
    for customer in customers.only("pk", "pseudonym"):
        customer_erase(customer=customer, actor=actor)
        erased += 1
    return erased
