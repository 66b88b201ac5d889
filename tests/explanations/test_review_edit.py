"""Reviewer edits (checked again, versioned, four-eyes) and the admin-edited policy term list."""

from __future__ import annotations

import pytest
from django.contrib.admin.sites import site
from django.test import RequestFactory

from explanations.checks.policy import DEFAULT_TERMS
from explanations.models import Explanation, PolicyTerm, ReasonVersion, ReviewEvent
from explanations.selectors import policy_term_list
from explanations.services import explain, review
from jobs.models import Job
from tests.factories import ExplanationFactory, UserFactory

pytestmark = pytest.mark.django_db

S = Explanation.Status


@pytest.fixture(autouse=True)
def fresh_vocabulary():
    """The catalogue vocabulary is cached per process; build it from this test's products."""
    explain.catalogue_vocabulary.cache_clear()
    yield
    explain.catalogue_vocabulary.cache_clear()


@pytest.fixture
def editor():
    return UserFactory(groups=["reviewer"])


def queued(**kwargs) -> Explanation:
    """Return a generated explanation recorded like the explain job does (version 1, pending review)."""
    explanation = ExplanationFactory(status=S.GENERATED, **kwargs)
    return review.explanation_record_generated(explanation=explanation)


def codes(flags: list[dict]) -> list[str]:
    return [f["code"] for f in flags]


def test_an_edit_that_adds_an_email_address_is_flagged_and_kept_as_a_new_version(editor):
    """The edited text goes through the same checks: an e-mail address becomes a pii:email flag with its span."""
    # given a queued, unflagged explanation
    explanation = queued()
    original = explanation.reason_text
    # when a reviewer edits in an e-mail address
    text = "It goes with the heart T-light holders; ask buyer@shop-example.co.uk about the reorder."
    review.explanation_edit(user=editor, explanation_id=explanation.pk, text=text, comment="more context")
    # then the text is replaced, flagged at the address, and waits for review again
    explanation.refresh_from_db()
    assert explanation.reason_text == text
    assert explanation.status == S.PENDING_REVIEW
    email = next(f for f in explanation.flags if f["code"] == "pii:email")
    assert text[email["start"] : email["end"]] == "buyer@shop-example.co.uk"
    assert email["severity"] == "error"
    # and both versions are kept, the edit with its author, hash and flags
    versions = list(ReasonVersion.objects.filter(explanation=explanation).order_by("number"))
    assert [(v.number, v.source, v.text) for v in versions] == [(1, "generated", original), (2, "edited", text)]
    assert versions[1].author == editor
    assert versions[1].sha256 == review.text_sha256(text)
    assert "pii:email" in codes(versions[1].flags)
    # and the edit is an event from pending_review back to pending_review
    event = ReviewEvent.objects.filter(explanation=explanation).latest("pk")
    assert (event.action, event.from_status, event.to_status, event.actor) == (
        "edit",
        S.PENDING_REVIEW,
        S.PENDING_REVIEW,
        editor,
    )
    assert event.text_sha256 == review.text_sha256(text)
    assert event.comment == "more context"


def test_an_edit_that_removes_the_problem_clears_the_flags(editor):
    """Flags are those of the current text: a clean edit of a flagged text has none."""
    explanation = queued(reason_text="Call Mrs Patel on 020 7946 0958 about the heart T-light holders.")
    explanation.flags = review.reason_check(explanation=explanation, text=explanation.reason_text)
    assert {"pii:person", "pii:phone"} <= set(codes(explanation.flags))
    review.explanation_edit(
        user=editor,
        explanation_id=explanation.pk,
        text="It goes with the white hanging heart t-light holder this customer already buys.",
    )
    explanation.refresh_from_db()
    assert explanation.flags == []


def test_an_edit_flags_the_customers_own_source_id(editor, settings):
    """The customer's source id is found by its keyed pseudonym, as at generation."""
    from core.pseudonyms import pseudonym_key, pseudonymize

    explanation = queued()
    customer = explanation.recommendation.customer
    customer.pseudonym = pseudonymize("17850", key=pseudonym_key())
    customer.save(update_fields=["pseudonym"])
    review.explanation_edit(user=editor, explanation_id=explanation.pk, text="Customer 17850 reorders heart holders.")
    explanation.refresh_from_db()
    assert "pii:source_id" in codes(explanation.flags)


def test_an_edit_clears_the_consistency_and_queues_its_rescoring(editor):
    """The encoder runs in a worker: consistency is null until the job measured the new text."""
    explanation = queued()
    review.explanation_edit(user=editor, explanation_id=explanation.pk, text="A shorter, plain reason.")
    explanation.refresh_from_db()
    assert explanation.consistency is None
    job = Job.objects.get(kind=review.RESCORE_JOB_KIND)
    assert job.params == {"ids": [explanation.pk]}
    assert job.created_by == editor


def test_four_eyes_after_an_edit(editor):
    """The editor cannot approve their text; another reviewer can."""
    explanation = queued()
    review.explanation_edit(user=editor, explanation_id=explanation.pk, text="A shorter, plain reason.")
    with pytest.raises(review.ReviewError) as err:
        review.explanation_approve(user=editor, explanation_id=explanation.pk)
    assert err.value.code == review.ReviewError.FOUR_EYES
    review.explanation_approve(user=UserFactory(groups=["reviewer"]), explanation_id=explanation.pk)
    explanation.refresh_from_db()
    assert explanation.status == S.APPROVED


def test_changes_requested_then_edited_goes_back_to_pending_review(editor):
    explanation = queued()
    review.explanation_request_changes(
        user=UserFactory(groups=["reviewer"]), explanation_id=explanation.pk, comment="Name the product."
    )
    review.explanation_edit(user=editor, explanation_id=explanation.pk, text="The lantern suits their décor range.")
    explanation.refresh_from_db()
    assert explanation.status == S.PENDING_REVIEW
    assert explanation.reason_edited_by == editor


@pytest.mark.parametrize("source", [S.APPROVED, S.REJECTED, S.GENERATED, S.FAILED])
def test_edits_are_refused_where_the_state_machine_forbids_them(editor, source):
    explanation = ExplanationFactory(status=source)
    with pytest.raises(review.ReviewError) as err:
        review.explanation_edit(user=editor, explanation_id=explanation.pk, text="Another text.")
    assert err.value.code == review.ReviewError.NOT_ALLOWED
    explanation.refresh_from_db()
    assert explanation.reason_text != "Another text."
    assert not ReasonVersion.objects.filter(explanation=explanation).exists()


@pytest.mark.parametrize("text", ["", "   ", "x" * (review.MAX_REASON_CHARS + 1)])
def test_empty_or_oversized_edits_are_refused(editor, text):
    explanation = queued()
    with pytest.raises(review.ReviewError) as err:
        review.explanation_edit(user=editor, explanation_id=explanation.pk, text=text)
    assert err.value.code == review.ReviewError.INVALID_TEXT


def test_an_unchanged_edit_is_refused(editor):
    explanation = queued()
    with pytest.raises(review.ReviewError):
        review.explanation_edit(user=editor, explanation_id=explanation.pk, text=f"  {explanation.reason_text} ")
    assert ReasonVersion.objects.filter(explanation=explanation).count() == 1


# --------------------------------------------------------------------------- policy terms


def test_the_migration_seeded_every_default_term():
    """The admin list starts as the checks' defaults, all active."""
    seeded = set(PolicyTerm.objects.filter(is_active=True).values_list("category", "term", "is_regex"))
    assert seeded == set(DEFAULT_TERMS)


def test_an_admin_added_term_flags_new_texts(editor):
    """A term added in the admin flags the next checked text (the cached list is refreshed)."""
    # given a checked text without findings (the cache is warm)
    explanation = queued()
    text = "A reliable bestseller that suits their heart décor range."
    assert "risky_claim:guarantee" not in codes(review.reason_check(explanation=explanation, text=text))
    # when an admin adds "bestseller" as a guarantee term
    PolicyTerm.objects.create(category="guarantee", term="bestseller")
    # then an edit with it is flagged at the word
    review.explanation_edit(user=editor, explanation_id=explanation.pk, text=text)
    explanation.refresh_from_db()
    flag = next(f for f in explanation.flags if f["code"] == "risky_claim:guarantee")
    assert text[flag["start"] : flag["end"]] == "bestseller"


def test_a_deactivated_default_term_no_longer_flags():
    explanation = queued()
    text = "They always reorder heart holders."
    assert "risky_claim:guarantee" in codes(review.reason_check(explanation=explanation, text=text))
    term = PolicyTerm.objects.get(category="guarantee", term="always")
    term.is_active = False
    term.save()
    assert "risky_claim:guarantee" not in codes(review.reason_check(explanation=explanation, text=text))


def test_generated_texts_use_the_admin_list_too():
    """The explain job's checks read the same list (explain.text_checks)."""
    PolicyTerm.objects.create(category="causal", term="flies off the shelf")
    assert "flies off the shelf" in {t.pattern for t in policy_term_list().terms}
    import inspect

    assert "policy_term_list()" in inspect.getsource(explain.text_checks)


def test_the_term_list_is_cached_until_the_table_changes(django_assert_num_queries):
    """An unchanged table costs one small aggregate query, not a rebuild."""
    first = policy_term_list()
    with django_assert_num_queries(1):
        assert policy_term_list() is first
    PolicyTerm.objects.filter(term="always").delete()
    assert policy_term_list() is not first


def test_a_change_in_another_process_is_noticed_without_the_signal():
    """Another process's save (no signal here) changes the table's fingerprint, so the list is rebuilt."""
    first = policy_term_list()
    # a raw insert, as another process's save looks to this one (no post_save here)
    PolicyTerm.objects.bulk_create([PolicyTerm(category="guarantee", term="can't miss")])
    assert any(t.pattern == "can't miss" for t in policy_term_list().terms)
    assert policy_term_list() is not first


def test_the_admin_refuses_an_invalid_regex():
    """The model's clean() validates terms with the checks' validator (bad regex, empty, unknown category)."""
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        PolicyTerm(category="guarantee", term="(unclosed", is_regex=True).full_clean()
    PolicyTerm(category="guarantee", term="sure thing").full_clean()


def test_the_admin_deactivate_action_saves_each_term():
    """The bulk action uses save(), so the cache notices it."""
    admin = UserFactory(is_superuser=True, is_staff=True)
    model_admin = site._registry[PolicyTerm]
    request = RequestFactory().post("/")
    request.user = admin
    request._messages = type("M", (), {"add": lambda *a, **k: None})()
    explanation = queued()
    assert "risky_claim:guarantee" in codes(review.reason_check(explanation=explanation, text="Always a hit."))
    model_admin.deactivate(request, PolicyTerm.objects.filter(category="guarantee"))
    assert "risky_claim:guarantee" not in codes(review.reason_check(explanation=explanation, text="Always a hit."))


def test_audit_rows_are_read_only_in_the_admin():
    admin = UserFactory(is_superuser=True, is_staff=True)
    request = RequestFactory().get("/")
    request.user = admin
    for model in (ReviewEvent, ReasonVersion):
        model_admin = site._registry[model]
        assert not model_admin.has_add_permission(request)
        assert not model_admin.has_change_permission(request)
        assert not model_admin.has_delete_permission(request)
        assert model_admin.has_view_permission(request)
