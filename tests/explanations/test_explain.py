"""The explanation pipeline on a small real-catalogue shop, with the real encoder (and the LM once)."""

import pytest
from django.test import override_settings

from core.pseudonyms import pseudonym_key, pseudonymize
from explanations.job_kinds import recommendations_to_explain
from explanations.models import Explanation
from explanations.services import explain
from recommendations.models import Customer, Recommendation
from tests.shop import build_shop, embed_and_recommend

pytestmark = pytest.mark.django_db


@pytest.fixture
def shop():
    products, customers = build_shop()
    batch = embed_and_recommend()
    return products, customers, batch


@override_settings(ELM_SIG_STEPS=8)
def test_explanations_hold_exact_evidence_and_word_attributions(shop):
    """Explain recommendations with evidence that sums to the score, SIG words and a template reason."""
    # Given the top-2 recommendations of the first customer
    _, customers, batch = shop
    ids = list(
        Recommendation.objects.filter(batch=batch, customer=customers[0], rank__lte=2).values_list("id", flat=True)
    )
    # When they are explained without the language model
    assert explain.explanations_generate(recommendation_ids=ids, use_lm=False) == 2
    for exp in Explanation.objects.filter(recommendation_id__in=ids).select_related("recommendation__product"):
        rec = exp.recommendation
        # Then the evidence shares add up to the stored score (float32 vectors in the database)
        assert abs(sum(row["share"] for row in exp.evidence) - rec.score) < 1e-5
        assert abs(exp.evidence_residual) < 1e-5
        # And the template names the top evidence purchase, and is the reason text without the LM
        top = exp.evidence[0]["description"]
        assert top.split()[0].lower() in exp.template_text.lower()
        assert exp.reason_text == exp.template_text
        # And the product words are attributed with SIG
        words = exp.word_attributions["product"]["words"]
        assert words == rec.product.description.split()
        assert abs(sum(abs(x) for x in exp.word_attributions["product"]["normalized"]) - 1) < 1e-6
        # And the counterfactual check ran, and the consistency was measured
        assert set(exp.necessity) >= {"removed", "drops_out", "new_rank"}
        assert -1 <= exp.consistency <= 1
        assert exp.versions["encoder"].startswith("all-MiniLM-L6-v2@")
        assert exp.confidence is None  # nothing calibrated in this database yet
        assert exp.status == Explanation.Status.GENERATED


def test_explaining_again_replaces_instead_of_duplicating(shop):
    """Re-run an explanation shard (a redelivered task): still one explanation per recommendation."""
    _, customers, batch = shop
    ids = list(Recommendation.objects.filter(batch=batch, customer=customers[1], rank=1).values_list("id", flat=True))
    with override_settings(ELM_SIG_STEPS=4):
        explain.explanations_generate(recommendation_ids=ids, use_lm=False)
        explain.explanations_generate(recommendation_ids=ids, use_lm=False)
    assert Explanation.objects.filter(recommendation_id__in=ids).count() == 1
    assert ids[0] not in recommendations_to_explain()


def test_source_id_in_text_is_flagged(shop):
    """Flag a number in a reason that is the customer's own source id (found through its pseudonym)."""
    # Given a customer whose pseudonym is that of source id 17850
    _, customers, batch = shop
    Customer.objects.filter(pk=customers[2].pk).update(pseudonym=pseudonymize("17850", key=pseudonym_key()))
    rec = Recommendation.objects.select_related("customer", "product", "batch").get(
        batch=batch, customer=customers[2], rank=1
    )
    facts = explain.explanation_facts(recommendation=rec)
    # When a text mentions 17850 (and another number)
    flags = explain.text_checks("Call account 17850 about order 12345.", facts, {}, template="")
    # Then exactly the source id is flagged as PII
    source = [f for f in flags if f["code"] == "pii:source_id"]
    assert [f["text"] for f in source] == ["17850"]


@pytest.mark.slow
@override_settings(ELM_SIG_STEPS=4, ELM_REASON_MAX_TOKENS=24)
def test_reason_is_generated_by_the_language_model(shop):
    """Write the reason with SmolLM2 from the evidence facts, then check and measure it."""
    _, customers, batch = shop
    ids = list(Recommendation.objects.filter(batch=batch, customer=customers[3], rank=1).values_list("id", flat=True))
    explain.explanations_generate(recommendation_ids=ids, use_lm=True)
    exp = Explanation.objects.get(recommendation_id=ids[0])
    assert exp.reason_text
    assert exp.versions["lm"]
    assert not exp.error
    assert -1 <= exp.consistency <= 1
    assert isinstance(exp.flags, list)
