"""The explain job feeds the review queue; edited texts get their consistency from the worker job."""

from __future__ import annotations

import numpy as np
import pytest
from django.test import override_settings

from explanations.models import Explanation, LocalizedReason, ReasonVersion, ReviewEvent
from explanations.services import explain, review
from recommendations.models import Recommendation
from tests.factories import UserFactory
from tests.shop import build_shop, embed_and_recommend

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

S = Explanation.Status


@pytest.fixture
def explained():
    """One explained recommendation of the small shop (template reason, no LM), as the job writes it."""
    explain.catalogue_vocabulary.cache_clear()
    _, customers = build_shop()
    batch = embed_and_recommend()
    rec = Recommendation.objects.get(batch=batch, customer=customers[0], rank=1)
    with override_settings(ELM_SIG_STEPS=4):
        explain.explanations_generate(recommendation_ids=[rec.pk], use_lm=False)
    yield Explanation.objects.select_related("recommendation").get(recommendation=rec)
    explain.catalogue_vocabulary.cache_clear()


def test_the_job_queues_the_text_and_a_redelivered_shard_keeps_the_review(explained):
    """Generated -> pending_review in the job's transaction; the same text again leaves an approval alone."""
    # given the job's output is waiting for review
    assert explained.status == S.PENDING_REVIEW
    assert explained.review_requested_at is not None
    # when a reviewer approves it and the shard runs again (a redelivered task)
    review.explanation_approve(user=UserFactory(groups=["reviewer"]), explanation_id=explained.pk)
    with override_settings(ELM_SIG_STEPS=4):
        explain.explanations_generate(recommendation_ids=[explained.recommendation_id], use_lm=False)
    # then the approval stands, with one version and two events
    explained.refresh_from_db()
    assert explained.status == S.APPROVED
    assert ReasonVersion.objects.filter(explanation=explained, language="en").count() == 1
    assert list(ReviewEvent.objects.filter(explanation=explained, language="en").values_list("action", flat=True)) == [
        "submit",
        "approve",
    ]


def test_the_job_writes_the_japanese_template_reason_for_its_own_review(explained):
    """The Japanese text is the template built in Japanese from the same facts, queued and versioned on its own."""
    # given the job's output
    japanese = LocalizedReason.objects.get(explanation=explained)
    # then it is the template reason built with Japanese active, pending its own review
    assert japanese.language == "ja"
    assert japanese.reason_text == japanese.template_text != ""
    assert japanese.status == S.PENDING_REVIEW and japanese.review_requested_at is not None
    versions = ReasonVersion.objects.filter(explanation=explained, language="ja")
    assert list(versions.values_list("text", "source")) == [(japanese.reason_text, "generated")]
    assert list(ReviewEvent.objects.filter(explanation=explained, language="ja").values_list("action", flat=True)) == [
        "submit"
    ]
    # when a reviewer approves the English text only and the shard runs again
    review.explanation_approve(user=UserFactory(groups=["reviewer"]), explanation_id=explained.pk)
    with override_settings(ELM_SIG_STEPS=4):
        explain.explanations_generate(recommendation_ids=[explained.recommendation_id], use_lm=False)
    # then each language keeps its own state: English approved, Japanese still pending, nothing duplicated
    japanese.refresh_from_db()
    explained.refresh_from_db()
    assert (explained.status, japanese.status) == (S.APPROVED, S.PENDING_REVIEW)
    assert versions.count() == 1 and LocalizedReason.objects.filter(explanation=explained).count() == 1


def test_rescoring_measures_the_edited_text_like_the_job(explained):
    """The worker's re-score of an edit equals cosine(encode(text), normalized customer + product vector)."""
    from recommendations.ml.encoder import encode

    # given a reviewer's edit (consistency cleared)
    generated_sc = explained.consistency
    text = "A lantern for the customer who keeps reordering white heart t-light holders."
    review.explanation_edit(user=UserFactory(groups=["reviewer"]), explanation_id=explained.pk, text=text)
    explained.refresh_from_db()
    assert explained.consistency is None
    # when the worker's shard runs
    assert review.reasons_rescore(explanation_ids=[explained.pk]) == 1
    # then the consistency is the cosine of the new text with the pair, as at generation
    explained.refresh_from_db()
    rec = explained.recommendation
    pair = np.asarray(rec.customer.embedding, dtype=np.float64) + np.asarray(rec.product.embedding, dtype=np.float64)
    pair /= np.linalg.norm(pair)
    assert explained.consistency == pytest.approx(float(np.dot(encode([text])[0], pair)), abs=1e-5)
    assert explained.consistency != pytest.approx(generated_sc, abs=1e-6)
    # and a second run changes nothing (idempotent)
    assert review.reasons_rescore(explanation_ids=[explained.pk]) == 0
