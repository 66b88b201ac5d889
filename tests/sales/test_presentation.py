"""The recommendation card: what each viewer sees of an explanation, and the page and the API agreeing on it."""

from __future__ import annotations

import dataclasses
import datetime as dt
import pickle
import re

import pytest
from django.conf import settings
from django.urls import reverse

from explanations.models import Explanation
from outcomes.models import Exposure
from sales.presentation import Card, Viewer, recommendation_card, recommendation_cards, viewer_for
from tests.factories import (
    CustomerFactory,
    ExplanationFactory,
    ExposureFactory,
    RecommendationBatchFactory,
    RecommendationFactory,
    UserFactory,
    assign,
)

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

S = Explanation.Status
REASON = "A vintage lantern that goes with their heart-shaped T-light holders."
TEMPLATE = "White metal lantern goes with what this customer already buys, such as white hanging heart t-light holder."
FLAG = {
    "code": "hallucinated_entity",
    "message": "“vintage” is not in the evidence for this recommendation.",
    "start": 2,
    "end": 9,
    "text": "vintage",
    "severity": "warning",
}
SALES = Viewer(reviewer=False, sales_only=True)
NO_ROLE = Viewer(reviewer=False, sales_only=False)
REVIEWER = Viewer(reviewer=True, sales_only=False)  # reviewers, managers and admins hold the same card rights


def explanation_in(status: str, **kwargs) -> Explanation:
    kwargs = {"reason_text": REASON, "template_text": TEMPLATE, "flags": [FLAG], **kwargs}
    return ExplanationFactory(status=status, **kwargs)


def card_of(explanation: Explanation, viewer: Viewer, *, control: bool = False) -> Card:
    return recommendation_card(
        recommendation=explanation.recommendation, explanation=explanation, viewer=viewer, control=control
    )


def shown(card: Card) -> tuple:
    """(reason status, reason, template text, flag codes, consistency) of a card."""
    panel = card.explanation
    codes = None if panel.flags is None else [f["code"] for f in panel.flags]
    return panel.reason_status, panel.reason, panel.template_text, codes, panel.consistency


# --------------------------------------------------------------------------- each role x each status

ALL_STATUSES = [S.GENERATED, S.PENDING_REVIEW, S.APPROVED, S.REJECTED, S.CHANGES_REQUESTED, S.WITHDRAWN, S.FAILED]
VISIBLE_WITH_FLAGS = ("visible", REASON, TEMPLATE, ["hallucinated_entity"], 0.71)
VISIBLE = ("visible", REASON, TEMPLATE, None, 0.71)
UNDER_REVIEW = ("under_review", None, TEMPLATE, None, None)
FROM_EVIDENCE = ("from_evidence", None, TEMPLATE, None, None)
NOT_SHOWN = ("not_shown", None, None, None, None)
REFUSED = (S.REJECTED, S.WITHDRAWN)


@pytest.mark.parametrize("status", ALL_STATUSES)
@pytest.mark.parametrize(
    ("viewer", "control", "approved", "otherwise", "refused"),
    [
        # Reviewers, managers and admins read every reason with its flags, in either arm.
        (REVIEWER, False, VISIBLE_WITH_FLAGS, VISIBLE_WITH_FLAGS, VISIBLE_WITH_FLAGS),
        (REVIEWER, True, VISIBLE_WITH_FLAGS, VISIBLE_WITH_FLAGS, VISIBLE_WITH_FLAGS),
        # Sales and users without a role read approved reasons only; the template reason stands in,
        # and is the reason itself once the written one was refused.
        (SALES, False, VISIBLE, UNDER_REVIEW, FROM_EVIDENCE),
        (NO_ROLE, False, VISIBLE, UNDER_REVIEW, FROM_EVIDENCE),
        (NO_ROLE, True, VISIBLE, UNDER_REVIEW, FROM_EVIDENCE),  # the A/B arm applies to sales people only
        # Sales in the A/B control arm get no reason at all, not even the template's.
        (SALES, True, NOT_SHOWN, NOT_SHOWN, NOT_SHOWN),
    ],
)
def test_what_each_viewer_sees_of_each_explanation_state(viewer, control, approved, otherwise, refused, status):
    """Reason only when approved (or for reviewers), template reason otherwise, flags only for reviewers."""
    # given
    explanation = explanation_in(status)
    # when
    card = card_of(explanation, viewer, control=control)
    # then
    expected = approved if status == S.APPROVED else (refused if status in REFUSED else otherwise)
    assert shown(card) == expected
    assert card.explanation.failed is (status == S.FAILED)
    assert card.explanation.status == status


@pytest.mark.parametrize("viewer", [REVIEWER, SALES, NO_ROLE])
@pytest.mark.parametrize("control", [False, True])
def test_every_viewer_sees_evidence_necessity_concepts_words_and_confidence(viewer, control):
    """The measured parts are never hidden: evidence lines, necessity, concepts, word highlights, confidence."""
    # given: a recommendation scored 0.5 whose evidence rows share 0.15, 0.10 and 0.25 of it
    explanation = explanation_in(S.PENDING_REVIEW, recommendation__score=0.5)
    # when
    panel = card_of(explanation, viewer, control=control).explanation
    # then
    assert [round(line.percent, 1) for line in panel.evidence] == [30.0, 20.0, 50.0]
    assert [line.line_kind for line in panel.evidence] == ["purchase", "purchase", "rest"]
    assert (panel.necessity.removed, panel.necessity.new_rank) == ((9001, 9002), explanation.recommendation.rank)
    assert [c["concept"] for c in panel.shared_concepts] == ["Home décor"]
    assert [w.word for w in panel.evidence_words] == ["WHITE", "HANGING", "HEART", "T-LIGHT", "HOLDER"]
    assert panel.product_words and panel.confidence == pytest.approx(0.12)


def test_the_control_arm_is_labelled_for_viewers_who_are_not_sales_only():
    """Managers and reviewers see that a recommendation is in the control arm; sales are not told."""
    # given
    explanation = explanation_in(S.APPROVED)
    # when / then
    assert card_of(explanation, REVIEWER, control=True).control_badge is True
    assert card_of(explanation, SALES, control=True).control_badge is False
    assert card_of(explanation, REVIEWER, control=False).control_badge is False


def test_flags_mark_the_reason_where_their_offsets_match():
    """Split the reason at the flagged span for reviewers; sales, who cannot read it, get no segments."""
    # given
    explanation = explanation_in(S.PENDING_REVIEW)
    # when
    segments = card_of(explanation, REVIEWER).explanation.reason_segments
    # then
    assert [(s.text, bool(s.flag)) for s in segments] == [("A ", False), ("vintage", True), (REASON[9:], False)]
    assert segments[1].flag["label"] == "Not in the evidence"
    assert card_of(explanation, SALES).explanation.reason_segments == ()


# --------------------------------------------------------------------------- necessity


@pytest.mark.parametrize(
    ("necessity", "expected"),
    [
        ({"removed": [1, 2, 3], "drops_out": True, "new_rank": None, "counterfactual_score": None}, (3, True, None)),
        ({"removed": [1], "drops_out": False, "new_rank": 4, "counterfactual_score": 0.3}, (1, False, 4)),
        # Nothing was left out: there is no counterfactual to describe (the API used to describe one).
        ({"removed": [], "drops_out": False, "new_rank": 2, "counterfactual_score": 0.5}, None),
        ({"removed": [1]}, None),  # not computed
        ({}, None),
    ],
)
def test_necessity_is_shown_only_when_purchases_were_left_out(necessity, expected):
    """Describe the counterfactual only when it removed purchases, with the batch's list length."""
    # given
    explanation = explanation_in(
        S.APPROVED, necessity=necessity, recommendation__batch=RecommendationBatchFactory(params={"top_n": 5})
    )
    # when
    found = card_of(explanation, SALES).explanation.necessity
    # then
    if expected is None:
        assert found is None
    else:
        assert (found.removed_count, found.drops_out, found.new_rank, found.top_n) == (*expected, 5)


def test_malformed_word_attributions_are_not_shown():
    """Drop words and shares of different lengths rather than show them misaligned."""
    # given
    explanation = explanation_in(S.APPROVED, word_attributions={"product": {"words": ["A", "B"], "normalized": [1.0]}})
    # when
    panel = card_of(explanation, REVIEWER).explanation
    # then
    assert panel.product_words == () and panel.evidence_words == ()


# --------------------------------------------------------------------------- plain data, for caching


def _leaves(value):
    """Yield every value nested in dataclasses, tuples, lists and dicts."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            yield from _leaves(getattr(value, f.name))
    elif isinstance(value, (tuple, list)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(key)
            yield from _leaves(item)
    else:
        yield value


def test_a_card_is_plain_data_that_survives_a_cache_round_trip():
    """Hold only strings, numbers, booleans, dates and None: no model instances or querysets to cache."""
    # given
    explanation = explanation_in(S.APPROVED)
    card = card_of(explanation, REVIEWER, control=True)
    # when
    leaves = list(_leaves(card))
    copy = pickle.loads(pickle.dumps(card))  # noqa: S301  (our own bytes, as a cache would hold them)
    # then
    allowed = (str, int, float, bool, type(None), dt.datetime)
    assert [v for v in leaves if not isinstance(v, allowed) and type(v).__name__ != "__proxy__"] == []
    assert copy == card


def test_a_viewer_is_reduced_to_roles():
    """Two sales people get the same Viewer (and cache key); a manager another."""
    # given
    ann, bob, meg = UserFactory(groups=["sales"]), UserFactory(groups=["sales"]), UserFactory(groups=["manager"])
    # when / then
    assert viewer_for(ann) == viewer_for(bob) == SALES
    assert viewer_for(meg) == REVIEWER
    assert viewer_for(ann).cache_key != viewer_for(meg).cache_key


def test_cards_ask_for_the_viewer_only_when_one_depends_on_it():
    """A list without explanations or control items never needs the viewer's roles."""
    # given
    recommendations = [RecommendationFactory(rank=1), RecommendationFactory(rank=2)]
    asked = []

    def viewer():
        asked.append(True)
        return SALES

    # when
    plain = recommendation_cards(recommendations=recommendations, viewer=viewer)
    control = recommendation_cards(recommendations=recommendations, viewer=viewer, control_ids={recommendations[0].pk})
    # then
    assert [c.explanation for c in plain] == [None, None]
    assert len(asked) == 1  # the control list asked once, the plain list never
    assert control[0].control_badge is False  # sales are not told


# --------------------------------------------------------------------------- the page and the API agree


def _article(html: str) -> str:
    match = re.search(r'<article id="rec-1".*?</article>', html, flags=re.S)
    assert match, "no card for rank 1"
    return match.group(0)


def page_facts(html: str) -> dict:
    """What the customer page shows of the rank-1 card."""
    card = _article(html)
    return {
        "reason": "lantern that goes with their heart-shaped" in card,
        "template": TEMPLATE in card,
        "under_review": "Reason under review" in card,
        "from_evidence": "no written reason was approved" in card,
        "reason_section": 'class="rec-card__reason"' in card,
        "flags": card.count('<li class="flag '),
        "evidence": card.count('<li class="evidence__row'),
        "necessity": 'class="necessity' in card,
        "confidence": "chance of purchase within 90 days" in card,
        "consistency": "Semantic consistency" in card,
        "shared_concepts": card.count('class="chip chip--shared"'),
        "words": card.count('class="word word--'),
    }


def api_facts(item: dict) -> dict:
    """What the customers API gives of the same card."""
    words = item["word_attributions"]
    return {
        "reason": item["reason"] == REASON,
        "template": item["template_text"] == TEMPLATE,
        "under_review": item["reason_status"] == "under_review",
        "from_evidence": item["reason_status"] == "from_evidence",
        "reason_section": item["reason_status"] != "not_shown",
        "flags": len(item["flags"] or []),
        "evidence": len(item["evidence"]),
        "necessity": item["necessity"] is not None,
        "confidence": item["confidence"] is not None,
        "consistency": item["consistency"] is not None,
        "shared_concepts": sum(1 for c in item["concepts"] if c["shared"]),
        "words": sum(len((words[k] or {}).get("words", [])) for k in ("product", "evidence")),
    }


ROLES = {
    "sales": {"groups": ["sales"]},
    "no role": {},
    "reviewer": {"groups": ["reviewer"]},
    "manager": {"groups": ["manager"]},
    "admin": {"is_superuser": True},
}


@pytest.mark.parametrize("role", list(ROLES))
@pytest.mark.parametrize("arm", [Exposure.Arm.EXPLAINED, Exposure.Arm.CONTROL])
@pytest.mark.parametrize(
    ("status", "necessity"),
    [
        (S.PENDING_REVIEW, None),
        (S.APPROVED, None),
        (S.REJECTED, None),
        # The case they disagreed on: a counterfactual that removed nothing (the API showed it).
        (S.APPROVED, {"removed": [], "drops_out": False, "new_rank": 1, "counterfactual_score": 0.5}),
    ],
)
def test_the_page_and_the_api_show_the_same_card(client, api_client, role, arm, status, necessity):
    """For each role, arm and state, the customer page and the customers API show the same parts."""
    # given
    user = UserFactory(**ROLES[role])
    customer = CustomerFactory()
    assign(user, customer)
    extra = {"necessity": necessity} if necessity is not None else {}
    explanation = explanation_in(
        status, recommendation=RecommendationFactory(customer=customer, rank=1, score=0.5), **extra
    )
    ExposureFactory(recommendation=explanation.recommendation, arm=arm)
    client.force_login(user)
    api_client.force_authenticate(user)
    # when
    html = client.get(reverse("customer-detail", args=[customer.pseudonym])).content.decode()
    item = api_client.get(reverse("api-customer-recommendations", args=[customer.pseudonym])).json()[0]
    # then
    assert page_facts(html) == api_facts(item["explanation"])
    assert page_facts(html)["necessity"] is (necessity is None)


@pytest.mark.parametrize("role", list(ROLES))
def test_the_page_and_the_api_agree_on_a_failed_or_pending_explanation(client, api_client, role):
    """A failed explanation is reported as such by both; a missing one is pending on the page and null in the API."""
    # given
    user = UserFactory(**ROLES[role])
    customer = CustomerFactory()
    assign(user, customer)
    explanation_in(S.FAILED, recommendation=RecommendationFactory(customer=customer, rank=1))
    RecommendationFactory(customer=customer, rank=2)
    client.force_login(user)
    api_client.force_authenticate(user)
    # when
    html = client.get(reverse("customer-detail", args=[customer.pseudonym])).content.decode()
    body = api_client.get(reverse("api-customer-recommendations", args=[customer.pseudonym])).json()
    # then
    # (the factory's explanation has numbers: the page says the reason failed and still shows them)
    assert "could not be written" in _article(html)
    assert body[0]["explanation"]["status"] == "failed"
    assert html.count("Explanation pending") == 1
    assert body[1]["explanation"] is None


def test_the_template_reason_is_not_repeated_when_it_is_the_reason():
    """When the language model failed, the reason is the template reason: show it once."""
    # given
    explanation = ExplanationFactory(status=S.APPROVED, reason_text=TEMPLATE, template_text=TEMPLATE)
    # when
    panel = card_of(explanation, SALES).explanation
    # then
    assert (panel.reason, panel.template_text) == (TEMPLATE, None)


@pytest.mark.parametrize("status", [S.REJECTED, S.WITHDRAWN])
def test_a_refused_reason_without_a_template_says_plainly_that_none_is_available(client, api_client, status):
    """No "under review" for a text no one reviews: without a template reason, none is available."""
    # given a sales person's customer whose written reason was refused and who has no template reason
    user = UserFactory(groups=["sales"])
    customer = CustomerFactory()
    assign(user, customer)
    explanation_in(status, template_text="", recommendation=RecommendationFactory(customer=customer, rank=1))
    client.force_login(user)
    api_client.force_authenticate(user)
    # when
    card = _article(client.get(reverse("customer-detail", args=[customer.pseudonym])).content.decode())
    item = api_client.get(reverse("api-customer-recommendations", args=[customer.pseudonym])).json()[0]
    # then
    assert "No reason is available for this recommendation." in card
    assert "Reason under review" not in card and "vintage lantern" not in card
    panel = item["explanation"]
    assert (panel["reason_status"], panel["reason"], panel["template_text"]) == ("unavailable", None, None)


# --------------------------------------------------------------------------- query counts

# role -> (page explained, page unexplained, API explained, API unexplained), the first view (the card
# cache is empty; repeated views: tests/sales/test_cache.py). The page: the session (from the shared
# cache under cached_db, else one query), the user with its roles, customer with the versions,
# recommendations with explanations and exposures, customer description, recent purchases, outcomes,
# counts and concepts; + the exposures' show count (sales); + the running explain job when something is
# unexplained. The API (force_authenticate: a user without its roles read): customer, recommendations,
# and the user's roles (none asked for an admin), which the cache key needs.
_SESSION = 0 if settings.SESSION_ENGINE.endswith("cached_db") else 1
QUERIES = {
    "sales": (8 + _SESSION, 9 + _SESSION, 3, 3),
    "no role": (7 + _SESSION, 8 + _SESSION, 3, 3),
    "reviewer": (7 + _SESSION, 8 + _SESSION, 3, 3),
    "manager": (7 + _SESSION, 8 + _SESSION, 3, 3),
    "admin": (7 + _SESSION, 8 + _SESSION, 2, 2),
}


@pytest.mark.parametrize("role", list(QUERIES))
@pytest.mark.parametrize("explained", [True, False])
@pytest.mark.parametrize("n_items", [1, 8])
def test_the_page_and_the_api_take_a_fixed_number_of_queries(
    client, api_client, django_assert_num_queries, role, explained, n_items
):
    """Pin the queries of the customer page and the recommendations API for each role, whatever the list size."""
    # given: a customer whose recommendations were shown before (their exposures exist)
    user = UserFactory(**ROLES[role])
    customer = CustomerFactory()
    assign(user, customer)
    for rank in range(1, n_items + 1):
        rec = RecommendationFactory(customer=customer, rank=rank)
        if explained:
            explanation_in(S.PENDING_REVIEW, recommendation=rec)
        ExposureFactory(recommendation=rec, arm=Exposure.Arm.EXPLAINED)
    page_url = reverse("customer-detail", args=[customer.pseudonym])
    api_url = reverse("api-customer-recommendations", args=[customer.pseudonym])
    client.force_login(user)
    page_explained, page_unexplained, api_explained, api_unexplained = QUERIES[role]
    page_queries = page_explained if explained else page_unexplained
    api_queries = api_explained if explained else api_unexplained
    # when / then
    with django_assert_num_queries(page_queries):
        response = client.get(page_url)
    api_client.force_authenticate(type(user).objects.get(pk=user.pk))  # a fresh user: no roles cached
    with django_assert_num_queries(api_queries):
        body = api_client.get(api_url).json()
    assert response.content.decode().count('<meter class="score__bar"') == len(body) == n_items


GROUPS = {
    "lines": [
        {"kind": "self", "product_id": 1, "stock_code": "21001", "description": "WHITE METAL LANTERN", "count": 1,
         "share": 0.2, "family": ""},
        {"kind": "family", "product_id": 2, "stock_code": "85123A", "description": "WHITE HANGING HEART T-LIGHT HOLDER",
         "count": 7, "share": 0.15, "family": "heart", "co_buyers_rate": 0.62, "co_buyers": 50},
        {"kind": "rest", "product_id": None, "count": 30, "share": 0.1, "description": "other purchases"},
        {"kind": "popularity", "product_id": None, "share": 0.05, "description": "popular with all customers"},
    ],
    "personal": 0.45,
    "coverage": 0.78,
}  # fmt: skip


def test_the_card_shows_the_concise_lines_when_the_numbers_pass_wrote_them():
    """Show families, the item bought before and co-purchase facts instead of single purchases, same shares."""
    # given an explanation with grouped lines summing to the score
    explanation = explanation_in(S.APPROVED, recommendation=RecommendationFactory(score=0.5), evidence_groups=GROUPS)
    # when a sales person's card is built
    lines = card_of(explanation, SALES).explanation.evidence
    # then the card shows the four lines, in order, with their shares of the score
    assert [line.line_kind for line in lines] == ["self", "family", "rest", "popularity"]
    assert [round(line.percent) for line in lines] == [40, 30, 20, 10]
    assert lines[1].others == 6 and lines[1].co_buyers_percent == pytest.approx(62)


def test_the_page_and_the_api_show_the_same_concise_lines(client, api_client):
    """The customer page and the API render the same grouped lines and the co-purchase fact."""
    user = UserFactory(groups=["sales"])
    customer = CustomerFactory()
    assign(user, customer)
    explanation_in(
        S.APPROVED, recommendation=RecommendationFactory(customer=customer, rank=1, score=0.5), evidence_groups=GROUPS
    )
    client.force_login(user)
    api_client.force_authenticate(user)
    html = _article(client.get(reverse("customer-detail", args=[customer.pseudonym])).content.decode())
    item = api_client.get(reverse("api-customer-recommendations", args=[customer.pseudonym])).json()[0]
    assert html.count('<li class="evidence__row') == len(item["explanation"]["evidence"]) == 4
    assert "Bought this product before" in html and "and 6 similar purchases" in html
    assert "62% of its 50 buyers also bought this product" in html
    assert [row["kind"] for row in item["explanation"]["evidence"]] == ["self", "family", "rest", "popularity"]
    assert item["explanation"]["evidence"][1]["co_buyers_rate"] == pytest.approx(0.62)
