"""Erasure: ``erase_customer SOURCE_ID`` leaves nothing that references the customer."""

import io

import pytest
from django.apps import apps
from django.core.management import CommandError, call_command
from django.db import connection, models

from core.audit import audit_record
from core.models import AuditEvent
from core.pseudonyms import pseudonym_key, pseudonymize
from explanations.models import Explanation
from recommendations.models import Customer, Purchase, Recommendation
from tests.factories import (
    CustomerConceptFactory,
    CustomerFactory,
    ExplanationFactory,
    ExposureFactory,
    OutcomeFactory,
    PurchaseFactory,
    RecommendationFactory,
    UserFactory,
    assign,
)

pytestmark = pytest.mark.django_db

SOURCE_ID = "17850"


def _references(targets: dict[type[models.Model], set[int]]) -> list[str]:
    """Return 'model.field -> ids' for every foreign key in the project that points at one of ``targets``."""
    found = []
    for model in apps.get_models():
        for f in model._meta.get_fields():
            if not (f.concrete and f.is_relation and (f.many_to_one or f.one_to_one)):
                continue
            target = f.related_model
            if targets.get(target):
                hits = model._base_manager.filter(**{f"{f.attname}__in": targets[target]})
                if hits.exists():
                    found.append(f"{model._meta.label}.{f.name} -> {sorted(hits.values_list(f.attname, flat=True))}")
    return found


def _text_columns_containing(needle: str) -> list[str]:
    """Return 'table.column' for every text or JSON column of the database that contains ``needle``."""
    leaks = []
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = current_schema()
              AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb')
            """
        )
        for table, column in cursor.fetchall():
            cursor.execute(
                f'SELECT count(*) FROM "{table}" WHERE strpos("{column}"::text, %s) > 0',  # noqa: S608 - catalog names
                [needle],
            )
            if cursor.fetchone()[0]:
                leaks.append(f"{table}.{column}")
    return leaks


@pytest.fixture
def customer():
    """A customer (source id 17850) with every kind of data the site derives from a customer."""
    customer = CustomerFactory(pseudonym=pseudonymize(SOURCE_ID, key=pseudonym_key()))
    Customer.objects.filter(pk=customer.pk).update(embedding=[0.1] * 384)
    PurchaseFactory.create_batch(3, customer=customer)
    for rank in (1, 2):
        explanation = ExplanationFactory(recommendation=RecommendationFactory(customer=customer, rank=rank))
        ExposureFactory(recommendation=explanation.recommendation)
        OutcomeFactory(recommendation=explanation.recommendation)
    CustomerConceptFactory(customer=customer)
    assign(UserFactory(groups=["sales"]), customer)
    audit_record(actor=None, action="customer.view", object_type="customer", object_ref=customer.pseudonym)
    audit_record(actor=None, action="export", object_type="csv", detail={"customers": [customer.pseudonym]})
    return customer


@pytest.fixture
def bystander():
    """Another customer with the same kinds of data, which erasure must not touch."""
    other = CustomerFactory()
    PurchaseFactory(customer=other)
    ExplanationFactory(recommendation=RecommendationFactory(customer=other, rank=1))
    CustomerConceptFactory(customer=other)
    return other


def test_erase_customer_leaves_nothing_that_references_the_customer(customer, bystander):
    """Delete the customer and everything derived from it; detach its purchases; audit without the id."""
    # Given the ids of everything derived from the customer
    rec_ids = set(Recommendation.objects.filter(customer=customer).values_list("pk", flat=True))
    exp_ids = set(Explanation.objects.filter(recommendation_id__in=rec_ids).values_list("pk", flat=True))
    purchase_ids = set(Purchase.objects.filter(customer=customer).values_list("pk", flat=True))
    old_keys = set(Purchase.objects.filter(pk__in=purchase_ids).values_list("line_key", flat=True))
    targets = {Customer: {customer.pk}, Recommendation: rec_ids, Explanation: exp_ids}
    assert len(_references(targets)) >= 6  # the fixture really built the links this test looks for
    out = io.StringIO()

    # When the customer is erased by source id
    call_command("erase_customer", SOURCE_ID, stdout=out)

    # Then no foreign key anywhere in the project points at the customer, its recommendations or explanations
    assert _references(targets) == []
    assert not Customer.objects.filter(pk=customer.pk).exists()
    # And the purchases stay for product statistics, without the customer and with new, random keys
    kept = Purchase.objects.filter(pk__in=purchase_ids)
    assert kept.count() == 3
    assert set(kept.values_list("customer_id", flat=True)) == {None}
    assert not old_keys & set(kept.values_list("line_key", flat=True))
    # And no text or JSON column holds the pseudonym any more (audit rows that named it are redacted)
    assert _text_columns_containing(customer.pseudonym) == []
    # And the erasure is audited with counts only: no source id, no pseudonym
    event = AuditEvent.objects.get(action="customer.erase")
    assert event.object_ref == ""
    assert event.detail["deleted"]["recommendations.Customer"] == 1
    assert event.detail["deleted"]["recommendations.Recommendation"] == 2
    assert event.detail["purchases_detached"] == 3
    assert SOURCE_ID not in str(event.detail)
    assert SOURCE_ID not in out.getvalue()
    # And the other customer keeps all of its data
    assert Recommendation.objects.filter(customer=bystander).count() == 1
    assert Purchase.objects.filter(customer=bystander).count() == 1
    assert bystander.concepts.count() == 1


def test_erasing_twice_or_an_unknown_id_fails_without_echoing_it(customer):
    """Say that there is no such customer (without the id) when it was erased already or never existed."""
    call_command("erase_customer", SOURCE_ID, stdout=io.StringIO())
    with pytest.raises(CommandError) as again:
        call_command("erase_customer", SOURCE_ID, stdout=io.StringIO())
    assert SOURCE_ID not in str(again.value)
    with pytest.raises(CommandError):
        call_command("erase_customer", "not-a-number")
    assert AuditEvent.objects.filter(action="customer.erase").count() == 1


def test_dry_run_erases_nothing(customer):
    out = io.StringIO()
    call_command("erase_customer", SOURCE_ID, "--dry-run", stdout=out)
    assert Customer.objects.filter(pk=customer.pk).exists()
    assert "nothing erased" in out.getvalue()
    assert not AuditEvent.objects.filter(action="customer.erase").exists()


def test_source_ids_are_normalized_like_the_importer(customer):
    """Find the customer from the id as spreadsheets write it ('17850.0', padded)."""
    call_command("erase_customer", " 17850.0 ", stdout=io.StringIO())
    assert not Customer.objects.filter(pk=customer.pk).exists()
