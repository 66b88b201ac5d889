"""Every state of the state machines has a Japanese label (the jobs page, the admin, the quality page)."""

from __future__ import annotations

import pytest
from django.utils import translation

from dashboard.models import ReplayRun
from explanations.models import CustomerDescription
from jobs.models import Job, JobShard
from recommendations.models import EvaluationRun, RecommendationBatch, SegmentRun

MODELS = [Job, JobShard, RecommendationBatch, EvaluationRun, SegmentRun, ReplayRun, CustomerDescription]


@pytest.mark.parametrize(
    ("model", "value"), [(m, v) for m in MODELS for v in m.Status.values], ids=lambda x: getattr(x, "__name__", x)
)
def test_every_status_label_is_translated_to_japanese(model, value):
    with translation.override("en"):  # not the thread's language: an earlier request may have left "ja" active
        english = str(model.Status(value).label)
    with translation.override("ja"):
        japanese = str(model.Status(value).label)
    assert japanese != english, f"{model.__name__}.{value}: add {english!r} to locale/ja/LC_MESSAGES/django.po"
