"""The model-quality page (managers and admins): evaluation table, calibration, tuned encoder, segments.

It lives in the dashboard because it reads both recommendations (evaluation, segments) and explanations
(the served calibration)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.translation import get_language
from django.utils.translation import gettext as _

from core.permissions import MANAGER, role_required
from dashboard import quality
from explanations.selectors import calibration_latest, concept_names
from recommendations import selectors


@role_required(MANAGER)
def quality_page(request: HttpRequest) -> HttpResponse:
    run = selectors.evaluation_run_latest() or selectors.evaluation_run_latest(include_reduced=True)
    batch = selectors.active_recommendation_batch()
    calibration = calibration_latest(recommender=batch.recommender if batch else None)
    context = {
        "run": run,
        "batch": batch,
        "calibration": calibration,
        "segment_run": selectors.segment_run_latest(),
        "concept_names": concept_names(language=get_language()),  # segments store concepts by English name
        "metric_labels": [quality.METRIC_LABELS[m] for m in quality.METRICS],
        "tuned_encoders": _tuned_encoders(),
    }
    if run is not None:
        goal = run.goal or {}
        context["rows"] = quality.metric_rows(run.metrics, production=run.chosen_model)
        context["goal"] = goal
        context["regions"] = quality.region_rows(
            run.by_region, production=run.chosen_model, baseline=goal.get("best_baseline", "")
        )
        if run.calibration:
            context["run_diagram"] = quality.reliability_diagram(
                [
                    ("before", _("Raw score"), run.calibration.get("reliability_before", [])),
                    ("after", _("Calibrated"), run.calibration.get("reliability_after", [])),
                ]
            )
    if calibration is not None:
        context["diagram"] = quality.reliability_diagram(
            [
                ("before", _("Raw score"), calibration.reliability_before),
                ("after", _("Calibrated"), calibration.reliability),
            ]
        )
    return render(request, "dashboard/quality.html", context)


def _tuned_encoders() -> list[dict]:
    from recommendations.services.encoder_tuning import tuned_encoders

    return tuned_encoders()[:3]
