"""The numbers pass over a whole batch: every recommendation explained by numbers, exactly, once."""

import zlib

import numpy as np
import pytest

from explanations.ml.sig import sig_word_attributions
from explanations.models import Explanation, MaskedText
from explanations.selectors import recommendations_to_explain, recommendations_without_numbers
from explanations.services import explain, reasons
from explanations.services.numbers import explanation_numbers_compute
from recommendations.models import Recommendation
from tests.shop import build_shop, embed_and_recommend

pytestmark = pytest.mark.django_db


@pytest.fixture
def batch():
    build_shop()
    return embed_and_recommend()


def test_every_recommendation_of_the_batch_gets_exact_numbers(batch):
    """Cover the whole batch: evidence summing to the score, at most five concise lines, words, necessity."""
    # Given a batch whose recommendations have no numbers yet
    ids = recommendations_without_numbers()
    assert len(ids) == Recommendation.objects.filter(batch=batch).count() > 0
    # When the numbers pass runs over all of it
    assert explanation_numbers_compute(recommendation_ids=ids) == len(ids)
    # Then every recommendation has its explanation row, waiting for its reason, with the template available
    assert recommendations_without_numbers() == []
    for exp in Explanation.objects.filter(recommendation_id__in=ids).select_related("recommendation__product"):
        rec = exp.recommendation
        assert exp.status == Explanation.Status.GENERATED and exp.reason_text == "" and exp.template_text
        # And the evidence shares add up to the stored score (float32 vectors in the database)
        assert abs(sum(row["share"] for row in exp.evidence) - rec.score) < 1e-5
        assert abs(exp.evidence_residual) < 1e-5
        # And the concise lines are at most five and still sum to the score
        lines = exp.evidence_groups["lines"]
        assert 0 < len(lines) <= 5
        assert abs(sum(line["share"] for line in lines) - rec.score) < 1e-5
        # And the necessity check ran, and words were attributed
        assert set(exp.necessity) >= {"removed", "drops_out", "new_rank"}
        assert exp.word_attributions["product"]["words"] == rec.product.description.split()
        assert exp.confidence is None  # nothing calibrated in this database
    assert set(recommendations_to_explain()) >= set(ids)  # the words step still has all of them to do


def test_rerunning_skips_what_is_done(batch):
    """Rerun the pass (a redelivered shard): nothing is computed twice, no row duplicated."""
    ids = recommendations_without_numbers()
    explanation_numbers_compute(recommendation_ids=ids[:3])
    before = dict(Explanation.objects.values_list("recommendation_id", "generated_at"))
    cached = MaskedText.objects.count()
    assert explanation_numbers_compute(recommendation_ids=ids) == len(ids) - 3
    assert explanation_numbers_compute(recommendation_ids=ids) == 0
    assert Explanation.objects.count() == len(ids)
    after = dict(Explanation.objects.values_list("recommendation_id", "generated_at"))
    assert {k: after[k] for k in before} == before
    assert MaskedText.objects.count() >= cached > 0


def test_word_attributions_equal_the_closed_form(batch):
    """Give each customer's word attributions as dot products with cached encodings, equal to SIG's closed form."""
    rec = Recommendation.objects.filter(batch=batch).select_related("customer", "product").order_by("pk").first()
    explanation_numbers_compute(recommendation_ids=[rec.pk])
    stored = Explanation.objects.get(recommendation=rec).word_attributions
    product = np.asarray(rec.product.embedding, dtype=np.float64)
    expected = sig_word_attributions(rec.product.description, np.asarray(rec.customer.embedding))
    assert stored["product"]["attributions"] == pytest.approx(expected.attributions.tolist(), abs=1e-6)
    assert stored["product"]["score"] == pytest.approx(expected.score, abs=1e-6)
    top = stored["evidence"]
    expected = sig_word_attributions(top["text"], product)
    assert top["attributions"] == pytest.approx(expected.attributions.tolist(), abs=1e-6)
    assert top["normalized"] == pytest.approx(expected.normalized.tolist(), abs=1e-6)


def test_batch_numbers_match_the_one_recommendation_path(batch):
    """Agree with explanation_facts (one recommendation at a time) on evidence, necessity and concepts."""
    recs = list(Recommendation.objects.filter(batch=batch).select_related("customer", "product", "batch")[:6])
    explanation_numbers_compute(recommendation_ids=[r.pk for r in recs])
    for rec in recs:
        facts = explain.explanation_facts(recommendation=rec)
        exp = Explanation.objects.get(recommendation=rec)
        assert [r["product_id"] for r in exp.evidence] == [r["product_id"] for r in facts.evidence_rows]
        assert [r["share"] for r in exp.evidence] == pytest.approx([r["share"] for r in facts.evidence_rows], abs=1e-6)
        assert exp.necessity["removed"] == facts.necessity["removed"]
        assert exp.necessity["new_rank"] == facts.necessity["new_rank"]
        assert exp.concepts == facts.concepts


def test_the_pass_stores_each_fact_sheet_and_its_english_template(batch):
    """Store the sheet reason_sheet builds for the recommendation, and the English template written from it."""
    # Given recommendations whose numbers are computed by the batch pass
    recs = list(Recommendation.objects.filter(batch=batch).select_related("customer", "product", "batch")[:6])
    explanation_numbers_compute(recommendation_ids=[r.pk for r in recs])
    for rec in recs:
        # When the one-recommendation path builds its sheet over the stored evidence and concepts
        exp = Explanation.objects.get(recommendation=rec)
        facts = explain.explanation_facts(recommendation=rec)
        facts.evidence_rows, facts.concepts = exp.evidence, exp.concepts
        # Then the stored sheet is that sheet, and the template is its English text in the record's variant
        assert exp.reason_facts == reasons.reason_sheet(facts)
        variant = zlib.crc32(str(rec.pk).encode())
        assert exp.template_text == reasons.template_text(exp.reason_facts, lang="en", variant=variant)


def test_the_words_step_writes_reasons_over_the_stored_numbers(batch):
    """Explain after the numbers: the reason is added, the numbers stay as the numbers pass wrote them."""
    ids = list(Recommendation.objects.filter(batch=batch, rank=1).values_list("id", flat=True)[:2])
    explanation_numbers_compute(recommendation_ids=ids)
    evidence = dict(Explanation.objects.filter(recommendation_id__in=ids).values_list("recommendation_id", "evidence"))
    assert explain.explanations_generate(recommendation_ids=ids, use_lm=False) == 2
    for exp in Explanation.objects.filter(recommendation_id__in=ids):
        assert exp.reason_text == exp.template_text and exp.status == Explanation.Status.PENDING_REVIEW
        assert exp.evidence == evidence[exp.recommendation_id]
    assert not set(ids) & set(recommendations_to_explain())


def test_texts_another_shard_is_encoding_are_awaited_then_read(monkeypatch):
    """Skip a bucket whose lock another shard holds, do the rest, then wait for it: every text comes back once."""
    from explanations.services import word_cache

    real, tries = word_cache._bucket_lock, []

    def busy_at_first(bucket, version, *, wait):
        tries.append((bucket, wait))
        return real(bucket, version, wait=wait) if wait else False  # every bucket is taken on the first try

    monkeypatch.setattr(word_cache, "_bucket_lock", busy_at_first)
    texts = ["WHITE METAL LANTERN", "RED SPOT MUG", "JAM MAKING SET WITH JARS"]
    found = word_cache.masked_vectors_for(texts)
    assert sorted(found) == sorted(texts)
    assert MaskedText.objects.count() == 3
    assert {b for b, wait in tries if not wait} == {b for b, wait in tries if wait}
