"""Reasons in the site's other languages (Japanese): written at generation, reviewed on their own.

No configured language model writes Japanese (SmolLM2-135M writes English), so a language's reason is
the template reason in that language: the same template function (``template_reason(facts, lang=)``),
from the same evidence, with the facts filled in by gettext. It is checked like any reason and goes to
the review queue as a ``LocalizedReason``; sales reading the language see it once a reviewer approved
it, and the template in their language until then (``sales.presentation``).
"""

from __future__ import annotations

from collections.abc import Mapping

from django.conf import settings

from explanations.models import Explanation, LocalizedReason
from explanations.services.review import explanation_record_generated, normalize_reason, reason_check


def other_languages() -> list[str]:
    """Return the site's languages other than its own (English): those with a LocalizedReason."""
    return [code for code, _name in settings.LANGUAGES if code != settings.LANGUAGE_CODE]


def localized_reasons_record(*, explanation: Explanation, templates: Mapping[str, str]) -> list[LocalizedReason]:
    """Write each language's template reason as its reason, check it and queue it for review.

    Call it inside the transaction that wrote the explanation (the explain job), after
    ``explanation_record_generated`` for the English text. A text equal to the one stored keeps its
    review state (a redelivered shard); a new one starts over, as for English.
    """
    rows = []
    for language, template in templates.items():
        text = normalize_reason(template)
        localized, _created = LocalizedReason.objects.select_for_update().get_or_create(
            explanation=explanation, language=language
        )
        if (localized.reason_text, localized.template_text) != (text, text):
            localized.reason_text = localized.template_text = text
            localized.flags = reason_check(explanation=explanation, text=text)
            localized.save(update_fields=["reason_text", "template_text", "flags", "generated_at"])
        explanation_record_generated(explanation=explanation, text=localized)
        rows.append(localized)
    return rows
