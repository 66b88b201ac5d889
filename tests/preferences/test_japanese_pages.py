"""The main pages, rendered for users whose language is Japanese, show no English UI label.

Two nets: every text of a page (text nodes and the attributes people read) that is a message of the
catalogue must come out translated, and none may be one of the English labels the code defines
outside templates (state-machine statuses, choices, job kinds, flag labels, concept names).
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from django.apps import apps
from django.conf import settings
from django.urls import reverse
from django.utils import translation

from explanations.models import Concept, CustomerDescription, Explanation, LocalizedReason
from explanations.presentation import FLAG_LABELS
from jobs import registry
from jobs.models import Job, JobShard
from preferences.services import user_language_set
from tests.factories import (
    ConceptFactory,
    CustomerConceptFactory,
    CustomerFactory,
    ExplanationFactory,
    PurchaseFactory,
    RecommendationFactory,
    UserFactory,
    assign,
)
from tests.preferences.test_translations import po_entries

pytestmark = [pytest.mark.django_db, pytest.mark.filterwarnings("ignore:No directory at:UserWarning")]

S = Explanation.Status
READ_ATTRIBUTES = ("title", "aria-label", "placeholder", "alt")
SKIPPED_ELEMENTS = ("script", "style", "pre", "code")  # data and machine text, not labels
# As the checks store them: English messages, rebuilt or translated for a Japanese reader.
FLAG = {
    "code": "hallucinated_entity",
    "message": "“It” is not in the evidence for this recommendation.",
    "start": 0,
    "end": 2,
    "text": "It",
    "severity": "warning",
}
PII_FLAG = {"code": "pii:email", "message": "Contains a e-mail address.", "start": 0, "end": 2, "text": "It",
            "severity": "error"}  # fmt: skip
POLICY_FLAG = {"code": "risky_claim:guarantee", "message": "Makes a guarantee or absolute claim.", "start": 3,
               "end": 8, "text": "goes ", "severity": "warning"}  # fmt: skip


class _Texts(HTMLParser):
    """Collects what a reader sees: text nodes and the readable attributes, whitespace collapsed."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.texts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        if tag in SKIPPED_ELEMENTS:
            self._skip += 1
        for name, value in attrs:
            if name in READ_ATTRIBUTES and value:
                self.texts.append(" ".join(value.split()))

    def handle_endtag(self, tag):
        if tag in SKIPPED_ELEMENTS and self._skip:
            self._skip -= 1

    def handle_data(self, data):
        text = " ".join(data.split())
        if text and not self._skip:
            self.texts.append(text)


def page_texts(html: str) -> list[str]:
    parser = _Texts()
    parser.feed(html)
    return parser.texts


def untranslated_messages() -> dict[str, str]:
    """Return the catalogue's plain messages (no placeholders) that read differently in Japanese."""
    return {m: s for m, s, _fuzzy in po_entries() if s and s != m and "%" not in m and "{" not in m and "\\" not in m}


APPS = ("explanations", "jobs", "recommendations", "dashboard", "outcomes", "accounts")


def product_kinds() -> dict:
    """The job kinds the apps register; kinds that other test modules register (``test_*``) are not the UI's."""
    return {name: kind for name, kind in registry.all_kinds().items() if not name.startswith("test_")}


def code_labels() -> set[str]:
    """Return the English labels the code defines outside templates: choices, job kinds, flag labels."""
    labels: set[str] = set()
    with translation.override("en"):
        for model in apps.get_models():
            if model.__module__.split(".")[0] not in APPS:
                continue
            for field in model._meta.get_fields():
                labels |= {str(label) for _value, label in getattr(field, "choices", None) or []}
        labels |= {str(kind.label) for kind in product_kinds().values()}
        labels |= {str(label) for label in FLAG_LABELS.values()}
    # Language names are written in their own language on purpose (the language switcher).
    return labels - {name for _code, name in settings.LANGUAGES}


def english_labels() -> set[str]:
    """Return the labels above and the English names and descriptions of concepts named in Japanese."""
    concepts = Concept.objects.exclude(name_ja="")
    return (
        code_labels()
        | set(concepts.values_list("name", flat=True))
        | set(concepts.exclude(description_ja="").values_list("description", flat=True))
    )


# Two lower-case English words in a row: a sentence or a composed label ("1 done, 1 failed"), not a
# product description (upper case in the catalogue), a pseudonym, a code or a number.
ENGLISH_WORDS = re.compile(r"\b[a-z]{3,}\b[\s,\d]+\b[a-z]{3,}\b")


def english_on(html: str, *, data: set[str] = frozenset()) -> list[str]:
    """Return the page's texts that are English where a Japanese reader should read Japanese.

    ``data`` are texts the data holds in English (generated reasons, descriptions): not labels.
    """
    messages, labels = untranslated_messages(), english_labels()
    texts = [t for t in page_texts(html) if not any(t in d for d in data)]
    return sorted({t for t in texts if t in messages or t in labels or ENGLISH_WORDS.search(t)})


def data_texts(world) -> set[str]:
    """The English texts of the world's data, which stay English until a Japanese text is written."""
    texts = {"Buys lanterns."}
    for e in world["explanations"]:
        texts |= {e.reason_text, e.template_text}
    return texts


def japanese_user(client, *groups: str):
    user = UserFactory(groups=list(groups))
    user_language_set(user=user, language="ja")
    client.force_login(user)
    return user


@pytest.fixture
def world():
    """A customer with concepts and explanations in several review states, and jobs in every state."""
    customer = CustomerFactory()
    for name in ("Home décor", "Lapsed", "Bulk buyer"):
        CustomerConceptFactory(customer=customer, concept=ConceptFactory(name=name), score=0.8, low=0.7, high=0.9)
    product = RecommendationFactory(customer=customer).product
    PurchaseFactory(customer=customer, product=product)
    concepts = [
        {"concept": "Home décor", "customer_score": 0.8, "low": 0.7, "high": 0.9, "sensitivity": 0.3, "shared": True},
        {"concept": "Lapsed", "customer_score": 0.8, "low": 0.7, "high": 0.9, "sensitivity": 0.2, "shared": True},
    ]
    explanations = [
        ExplanationFactory(
            status=status,
            flags=flags,
            concepts=concepts,
            recommendation=RecommendationFactory(customer=customer, rank=rank),
        )
        for rank, (status, flags) in enumerate(
            [(S.APPROVED, []), (S.PENDING_REVIEW, [FLAG, PII_FLAG, POLICY_FLAG]), (S.REJECTED, []), (S.FAILED, [])],
            start=2,
        )
    ]
    # The pending explanation's Japanese text, with a flag: the review pages show it beside the English.
    LocalizedReason.objects.create(
        explanation=explanations[1],
        language="ja",
        status=S.PENDING_REVIEW,
        reason_text="ハート形のキャンドルホルダーと合う商品です。",
        template_text="ハート形のキャンドルホルダーと合う商品です。",
        flags=[{**FLAG, "text": "ハー", "end": 2}],
    )
    parent = None
    for status in Job.Status.values:
        for kind in product_kinds():
            parent = Job.objects.create(kind=kind, status=status, parent=parent, then=["recommend"])
    for index, status in enumerate(JobShard.Status.values):
        JobShard.objects.create(job=parent, index=index, status=status)
    CustomerDescription.objects.create(
        customer=customer,
        text="Buys lanterns.",
        reference_text="Buys lanterns.",
        method=CustomerDescription.Method.TEMPLATE,
        generated_at=parent.created_at,
    )
    return {"customer": customer, "explanations": explanations, "job": parent}


def test_the_checks_catch_an_english_label(client, world):
    """The test can fail: an English status label and an untranslated message are both found."""
    html = "<p>Pending review</p><span title='Reason under review'>x</span><p>承認済み</p><i>1 done, 2 failed</i>"
    assert english_on(html) == ["1 done, 2 failed", "Pending review", "Reason under review"]
    # and data the world holds in English is not mistaken for a label
    assert english_on("<p>Buys lanterns.</p><p>WHITE HANGING HEART</p>", data=data_texts(world)) == []


def test_the_sales_pages_are_japanese(client, world):
    customer = world["customer"]
    user = japanese_user(client, "sales")
    assign(user, customer)
    for url in (reverse("customer-list"), reverse("customer-detail", args=[customer.pseudonym])):
        html = client.get(url).content.decode()
        assert '<html lang="ja">' in html
        assert english_on(html, data=data_texts(world)) == [], url
    # and the concepts are named in Japanese, on the customer and on the cards
    html = client.get(reverse("customer-detail", args=[customer.pseudonym])).content.decode()
    assert "インテリア雑貨" in html and "休眠" in html


def test_the_review_pages_are_japanese(client, world):
    japanese_user(client, "reviewer")
    pending = world["explanations"][1]
    for url in (reverse("review-queue"), reverse("review-detail", args=[pending.pk])):
        html = client.get(url).content.decode()
        assert english_on(html, data=data_texts(world)) == [], url
    # A reviewer also reads the customer page with every reason state and its flags.
    html = client.get(reverse("customer-detail", args=[world["customer"].pseudonym])).content.decode()
    assert english_on(html, data=data_texts(world)) == []


def test_the_manager_pages_are_japanese(client, world):
    japanese_user(client, "manager")
    for url in (
        reverse("job-list"),
        reverse("job-detail", args=[world["job"].pk]),
        reverse("dashboard"),
        reverse("quality"),
    ):
        html = client.get(url).content.decode()
        assert english_on(html, data=data_texts(world)) == [], url


def test_every_label_defined_in_code_has_a_japanese_translation():
    """Statuses, choices, job kinds and flag labels: each reads differently in Japanese."""
    with translation.override("ja"):
        missing = sorted(label for label in code_labels() if translation.gettext(label) == label)
    assert missing == []
