"""Reason writing on a small real-catalogue shop: the fact sheet, the template in two languages, candidate
choice, the reviewer's check and the claim audit."""

import json
import re

import pytest
from django.core.management import call_command

from explanations.models import Explanation
from explanations.services import explain, reasons
from explanations.services.review import reason_check
from recommendations.models import Purchase, Recommendation
from tests.shop import build_shop, embed_and_recommend

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    products, customers = build_shop()
    batch = embed_and_recommend()
    return products, customers, batch


def _facts(batch, customer, rank=1):
    rec = Recommendation.objects.select_related("customer", "product", "batch").get(
        batch=batch, customer=customer, rank=rank
    )
    return explain.explanation_facts(recommendation=rec)


def test_the_sheet_holds_the_customers_own_order_counts(shop):
    """Each evidence line carries how often this customer ordered it, as the purchases say."""
    # Given the facts of a recommendation
    _, customers, batch = shop
    facts = _facts(batch, customers[0])
    # When its fact sheet is built
    sheet = reasons.reason_sheet(facts)
    # Then every evidence product's order count is the customer's distinct invoices of it
    assert sheet["evidence"]
    for row in sheet["evidence"]:
        invoices = Purchase.objects.filter(customer=customers[0], product_id=row["product_id"], kind="sale")
        assert row["orders"] == invoices.values("invoice").distinct().count()
    assert (
        sheet["customer_orders"] == Purchase.objects.filter(customer=customers[0]).values("invoice").distinct().count()
    )
    # And the recommended product is recorded as never bought (the shop recommends only new products)
    assert sheet["product"]["orders"] == 0


def test_the_template_names_the_top_evidence_and_passes_the_claim_check(shop):
    """The fact-sentence template states only what the sheet supports and names an evidence line."""
    _, customers, batch = shop
    for customer in customers[:3]:
        facts = _facts(batch, customer)
        text = reasons.template_reason(facts)
        sheet = reasons.reason_sheet(facts)
        assert reasons.evidence_named(text, sheet), text
        assert reasons.claim_flags(text, sheet) == [], text


def test_japanese_viewers_get_the_same_facts_in_japanese(shop):
    """The template goes through gettext: Japanese sentences with the same names and numbers filled in."""
    _, customers, batch = shop
    facts = _facts(batch, customers[1])
    english = reasons.template_reason(facts)
    japanese = reasons.template_reason(facts, lang="ja")
    assert re.search(r"[\u3040-\u30ff]", japanese)
    assert sorted(re.findall(r"\d+", english)) == sorted(re.findall(r"\d+", japanese))
    assert reasons.reason_sheet(facts)["evidence"][0]["name"] in japanese
    assert reasons.claim_flags(japanese, reasons.reason_sheet(facts)) == []


def test_a_candidate_with_an_invented_claim_is_not_chosen(shop):
    """Of the candidates, one with an unsupported attribute is dropped and the supported one kept."""
    _, customers, batch = shop
    facts = _facts(batch, customers[2])
    product = reasons.title(facts.recommendation.product.description)
    evidence = reasons.reason_sheet(facts)["evidence"][0]["name"]
    invented = f"{product} is praised for its durability, like the {evidence} they buy regularly."
    supported = f"{product} goes with {evidence}, which this account has ordered before."
    chosen, record = reasons.choose_candidate([invented, supported], facts)
    assert chosen == supported
    assert [c["passed"] for c in record["candidates"]] == [False, True]
    # And when no candidate passes, none is chosen (the template serves)
    assert reasons.choose_candidate([invented, "Use only the facts above."], facts)[0] == ""


def test_a_reviewer_edit_with_a_false_claim_is_flagged(shop):
    """The reviewer's check reads the stored fact sheet: an edit claiming a never-bought product is flagged."""
    _, customers, batch = shop
    ids = list(Recommendation.objects.filter(batch=batch, customer=customers[3], rank=1).values_list("id", flat=True))
    explain.explanations_generate(recommendation_ids=ids, use_lm=False)
    exp = Explanation.objects.select_related("recommendation__product", "recommendation__customer").get(
        recommendation_id=ids[0]
    )
    assert exp.reason_facts["product"]["name"]
    product = reasons.title(exp.recommendation.product.description)
    flags = reason_check(explanation=exp, text=f"They are a frequent buyer of {product}.")
    assert "unsupported_claim:frequency" in {f["code"] for f in flags}
    assert not [f for f in reason_check(explanation=exp, text=exp.template_text) if f["code"].startswith("unsup")]


def test_audit_claims_reports_unsupported_claims_per_reason(shop, tmp_path):
    """The audit finds the one stored reason with a false claim and leaves the template reasons alone."""
    # Given stored template reasons, one of them edited to a false claim
    _, customers, batch = shop
    ids = list(
        Recommendation.objects.filter(batch=batch, customer__in=customers[:2], rank=1).values_list("id", flat=True)
    )
    explain.explanations_generate(recommendation_ids=ids, use_lm=False)
    bad = Explanation.objects.select_related("recommendation__product").get(recommendation_id=ids[0])
    product = reasons.title(bad.recommendation.product.description)
    Explanation.objects.filter(pk=bad.pk).update(reason_text=f"They have ordered {product} again and again.")
    # And an older reason stored without a fact sheet
    Explanation.objects.filter(recommendation_id=ids[1]).update(reason_facts={})
    # When the audit runs
    out = tmp_path / "audit.json"
    call_command("audit_claims", "--out", str(out))
    report = json.loads(out.read_text())
    # Then exactly the edited reason is reported, with its claim, and the missing sheet was rebuilt
    assert report["summary"]["audited"] == 2
    assert [r["explanation_id"] for r in report["reasons"]] == [bad.pk]
    assert "unsupported_claim:frequency" in {c["code"] for c in report["reasons"][0]["claims"]}
    assert report["summary"]["sheets_rebuilt"] == 1
