"""Too little data to calibrate is a clear skip, not a failed job: the explain job after it still runs."""

from __future__ import annotations

import pytest

from explanations.models import ConfidenceCalibration, Explanation
from jobs import registry
from jobs.models import Job
from recommendations.models import Recommendation
from tests.shop import build_shop, embed_and_recommend

pytestmark = [pytest.mark.django_db, pytest.mark.slow]


@pytest.mark.parametrize("recommender", ["embedding", "hybrid"])
def test_calibrate_skips_on_a_small_shop_and_explain_runs_without_confidence(settings, tmp_path, recommender):
    """Succeed with a result that says it skipped and why; explanations are written, with no confidence."""
    # Given a small shop (8 customers, a few weeks of history) with active recommendations
    settings.ELM_RECOMMENDER = recommender
    settings.ELM_RECOMMENDER_DIR = tmp_path / "recommender"
    build_shop(customers=8, per_customer=4)
    embed_and_recommend()
    job = Job.objects.create(kind="calibrate")

    # When the calibrate job's shard runs
    done = registry.get("calibrate").run_shard(job, {})

    # Then it succeeds, says it skipped and why, and stores no calibration
    job.refresh_from_db()
    assert done == 1
    assert job.result["calibration"] == "skipped"
    assert "too little data" in job.result["reason"]
    assert not ConfidenceCalibration.objects.exists()
    # And explaining afterwards works, showing no confidence (none was calibrated)
    from explanations.services.explain import explanations_generate

    ids = list(Recommendation.objects.filter(rank=1).values_list("id", flat=True)[:2])
    assert explanations_generate(recommendation_ids=ids, use_lm=False) == 2
    assert list(Explanation.objects.values_list("confidence", flat=True)) == [None, None]
