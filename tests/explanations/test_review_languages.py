"""Each language's reason is reviewed on its own; sales read the approved text in their language."""

from __future__ import annotations

import pytest
from django.urls import reverse

from explanations import selectors
from explanations.models import Explanation, LocalizedReason, ReasonVersion, ReviewEvent
from explanations.services import review
from preferences.services import user_language_set
from tests import fsm_table
from tests.explanations.test_review_transitions import ALLOWED
from tests.factories import ExplanationFactory, ExposureFactory, UserFactory, assign

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

S = Explanation.Status
ENGLISH = "It goes with the heart-shaped T-light holders this customer reorders."
JAPANESE = "このお客様が繰り返し購入しているハート形のキャンドルホルダーと相性の良い商品です。"
JAPANESE_TEMPLATE = "このお客様がすでに購入している商品(ホワイト ハンギング ハート)と合う商品です。"
EDITED = "ハート形のキャンドルホルダーを何度も注文しているお客様に合うランタンです。"


def explained(*, english: str = S.PENDING_REVIEW, japanese: str = S.PENDING_REVIEW) -> Explanation:
    """An explanation of the explained arm with an English and a Japanese text in the given states."""
    explanation = ExplanationFactory(status=english, reason_text=ENGLISH)
    ExposureFactory(recommendation=explanation.recommendation, arm="explained")
    LocalizedReason.objects.create(
        explanation=explanation,
        language="ja",
        status=japanese,
        reason_text=JAPANESE,
        template_text=JAPANESE_TEMPLATE,
    )
    return explanation


def reader(client, *, language: str, groups=("sales",), explanation=None):
    user = UserFactory(groups=list(groups))
    user_language_set(user=user, language=language)
    if explanation is not None:
        assign(user, explanation.recommendation.customer)
    client.force_login(user)
    return user


def card(client, explanation) -> str:
    url = reverse("customer-detail", args=[explanation.recommendation.customer.pseudonym])
    return client.get(url).content.decode()


def api_item(client, explanation) -> dict:
    url = reverse("api-customer-recommendations", args=[explanation.recommendation.customer.pseudonym])
    return client.get(url).json()[0]["explanation"]


def test_japanese_sales_see_the_japanese_template_while_their_text_is_under_review(client):
    """English approved, Japanese pending: the Japanese reader gets "under review" and the Japanese template."""
    # given
    explanation = explained(english=S.APPROVED, japanese=S.PENDING_REVIEW)
    reader(client, language="ja", explanation=explanation)
    # when
    html, item = card(client, explanation), api_item(client, explanation)
    # then neither the English approval nor the pending Japanese text reaches them
    assert ENGLISH not in html and JAPANESE not in html
    assert JAPANESE_TEMPLATE in html and "理由はレビュー中です" in html
    assert (item["reason_status"], item["reason"], item["template_text"]) == (
        "under_review",
        None,
        JAPANESE_TEMPLATE,
    )


def test_english_sales_are_not_affected_by_the_japanese_review(client):
    explanation = explained(english=S.APPROVED, japanese=S.REJECTED)
    reader(client, language="en", explanation=explanation)
    assert api_item(client, explanation)["reason"] == ENGLISH


def test_a_reviewer_approves_the_japanese_text_and_japanese_sales_read_it(client):
    """Approve through the review page's form (language=ja): only the Japanese text changes state."""
    # given a pending Japanese text and an English one still under review
    explanation = explained(english=S.PENDING_REVIEW, japanese=S.PENDING_REVIEW)
    reader(client, language="ja", groups=["reviewer"])
    # when the reviewer approves the Japanese text
    client.post(reverse("review-action", args=[explanation.pk]), {"action": "approve", "language": "ja"})
    # then only the Japanese text is approved, with its own audit row
    japanese = explanation.localized_reasons.get()
    explanation.refresh_from_db()
    assert (explanation.status, japanese.status) == (S.PENDING_REVIEW, S.APPROVED)
    event = ReviewEvent.objects.get(explanation=explanation, action="approve")
    assert (event.language, event.to_status) == ("ja", S.APPROVED)
    # and a Japanese sales person reads it, page and API; an English one still waits
    reader(client, language="ja", explanation=explanation)
    assert JAPANESE in card(client, explanation)
    assert api_item(client, explanation)["reason"] == JAPANESE
    reader(client, language="en", explanation=explanation)
    assert api_item(client, explanation)["reason_status"] == "under_review"


def test_a_japanese_edit_needs_another_reviewer(client):
    """Four-eyes per language: the editor of the Japanese text cannot approve it; the other reviewer can."""
    # given
    explanation = explained(english=S.APPROVED, japanese=S.PENDING_REVIEW)
    editor, other = UserFactory(groups=["reviewer"]), UserFactory(groups=["reviewer"])
    # when one reviewer edits the Japanese text
    review.explanation_edit(user=editor, explanation_id=explanation.pk, text=EDITED, language="ja")
    # then it is pending again, authored by them, kept as a Japanese version; the English text is untouched
    japanese = explanation.localized_reasons.get()
    assert (japanese.status, japanese.reason_text, japanese.reason_edited_by) == (S.PENDING_REVIEW, EDITED, editor)
    version = ReasonVersion.objects.get(explanation=explanation, source=ReasonVersion.Source.EDITED)
    assert (version.language, version.text) == ("ja", EDITED)
    explanation.refresh_from_db()
    assert (explanation.status, explanation.reason_text) == (S.APPROVED, ENGLISH)
    # and the editor's approval is refused, the other reviewer's accepted
    with pytest.raises(review.ReviewError) as refused:
        review.explanation_approve(user=editor, explanation_id=explanation.pk, language="ja")
    assert refused.value.code == review.ReviewError.FOUR_EYES
    review.explanation_approve(user=other, explanation_id=explanation.pk, language="ja")
    japanese.refresh_from_db()
    assert japanese.status == S.APPROVED


def test_a_rejected_japanese_text_shows_the_japanese_template_as_the_reason(client):
    explanation = explained(english=S.APPROVED, japanese=S.PENDING_REVIEW)
    review.explanation_reject(
        user=UserFactory(groups=["reviewer"]), explanation_id=explanation.pk, comment="誤訳", language="ja"
    )
    reader(client, language="ja", explanation=explanation)
    item = api_item(client, explanation)
    assert (item["reason_status"], item["reason"], item["template_text"]) == ("from_evidence", None, JAPANESE_TEMPLATE)
    assert "理由はレビュー中です" not in card(client, explanation)


def test_an_unknown_language_is_refused():
    explanation = ExplanationFactory(status=S.PENDING_REVIEW)
    with pytest.raises(review.ReviewError) as refused:
        review.explanation_approve(user=UserFactory(groups=["reviewer"]), explanation_id=explanation.pk, language="ja")
    assert refused.value.code == review.ReviewError.NOT_FOUND


def test_the_review_pages_show_the_english_and_the_japanese_text(client):
    """The queue holds an explanation whose Japanese text waits, even when its English one is approved."""
    # given
    explanation = explained(english=S.APPROVED, japanese=S.PENDING_REVIEW)
    user = reader(client, language="en", groups=["reviewer"])
    # when
    queue = client.get(reverse("review-queue")).content.decode()
    detail = client.get(reverse("review-detail", args=[explanation.pk])).content.decode()
    # then both texts are there, each with its own state and actions
    for html in (queue, detail):
        assert f'aria-labelledby="review-{explanation.pk}-title"' in html
        assert ENGLISH in html and JAPANESE in html
        assert f'id="review-{explanation.pk}-ja-title"' in html
        assert '<input type="hidden" name="language" value="ja">' in html
    # and the queue's count says it waits
    assert selectors.review_summary(user=user)["pending"] == 1


def test_the_review_api_shows_and_acts_on_each_language(api_client):
    """The item lists the Japanese text with its state; language=ja in an action acts on it alone."""
    # given
    explanation = explained(english=S.PENDING_REVIEW, japanese=S.PENDING_REVIEW)
    api_client.force_authenticate(UserFactory(groups=["reviewer"]))
    detail = reverse("api-review-detail", args=[explanation.pk])
    # when
    before = api_client.get(detail).json()
    after = api_client.post(
        reverse("api-review-action", args=[explanation.pk, "approve"]), {"language": "ja"}, format="json"
    ).json()
    # then
    assert [(t["language"], t["status"], t["reason_text"]) for t in before["translations"]] == [
        ("ja", "pending_review", JAPANESE)
    ]
    assert (after["status"], after["translations"][0]["status"]) == ("pending_review", "approved")
    assert [(e["action"], e["language"]) for e in after["events"]] == [("approve", "ja")]


@pytest.mark.parametrize("source", fsm_table.states(LocalizedReason))
def test_a_text_in_another_language_has_the_same_state_machine(source):
    """One table for every language: the explanation's (English) transitions, each allowed pair and no other."""
    fsm_table.check_table_is_honest(LocalizedReason, ALLOWED)
    for target in fsm_table.states(LocalizedReason):
        fsm_table.check_pair(LocalizedReason, ALLOWED, source, target)
    fsm_table.check_calls(LocalizedReason, ALLOWED, source)


def test_the_admin_shows_the_texts_in_every_language_read_only(admin_client):
    explanation = explained()
    html = admin_client.get(reverse("admin:explanations_explanation_change", args=[explanation.pk])).content.decode()
    assert JAPANESE in html and ENGLISH in html
    assert 'name="localized_reasons-0-reason_text"' not in html  # shown, not editable


def test_approving_the_japanese_text_reaches_a_page_already_seen(client):
    """The cached card digests the texts in every language: the approval shows on the next read."""
    # given a Japanese sales person who already read the card while the Japanese text was under review
    explanation = explained(english=S.APPROVED, japanese=S.PENDING_REVIEW)
    reader(client, language="ja", explanation=explanation)
    assert JAPANESE not in card(client, explanation)
    assert api_item(client, explanation)["reason"] is None
    # when a reviewer approves the Japanese text
    review.explanation_approve(user=UserFactory(groups=["reviewer"]), explanation_id=explanation.pk, language="ja")
    # then the page and the API show it
    assert JAPANESE in card(client, explanation)
    assert api_item(client, explanation)["reason"] == JAPANESE
