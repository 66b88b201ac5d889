"""When the train_elm job reuses the adapter in use, and when it trains a new one."""

import json

import pytest
from django.test import override_settings

from explanations import job_kinds, selectors
from explanations.ml.lm import lm_id
from jobs.services import job_create
from recommendations.ml.encoder import encoder_version

pytestmark = pytest.mark.django_db


def write_current(root, **config):
    """Write a CURRENT adapter folder holding only its config (what the planner reads)."""
    (root / "v1").mkdir(parents=True)
    (root / "v1" / "config.json").write_text(json.dumps(config))
    (root / "CURRENT").write_text("v1\n")


def compatible(**extra) -> dict:
    return {"lm_id": lm_id(), "encoder_version": encoder_version(), **extra}


@pytest.mark.parametrize(
    ("config", "preset", "reusable"),
    [
        (None, "cpu", False),
        (compatible(preset_name="cpu"), "cpu", True),
        (compatible(preset_name="cpu"), "quick", True),
        (compatible(preset_name="quick"), "quick", True),
        (compatible(preset_name="quick"), "cpu", False),  # the demo upgrades its quick adapter
        (compatible(preset_name="cpu") | {"lm_id": "another-lm"}, "cpu", False),
        (compatible(preset_name="cpu") | {"encoder_version": "tuned@123"}, "cpu", False),
    ],
)
def test_adapter_is_reusable(config, preset, reusable):
    """Reuse only an adapter made for the same LM and encoder, and never a quick one for a fuller preset."""
    assert selectors.adapter_is_reusable(config, preset=preset) is reusable


def test_plan_reuses_a_compatible_adapter_and_trains_otherwise(tmp_path):
    """Plan no shard for a reusable adapter (marked reused) and one shard when there is none."""
    # Given an adapter directory with a compatible cpu-preset adapter
    write_current(tmp_path / "a", **compatible(preset_name="cpu"))
    with override_settings(ELM_ADAPTER_DIR=tmp_path / "a"):
        # When train_elm is planned
        job = job_create(kind="train_elm", params={"preset": "cpu"})
        shards = job_kinds._plan_train_elm(job)
    # Then nothing is trained and the job says it reused the adapter
    assert shards == []
    assert job.result["reused"] is True
    # And with an empty adapter directory, or with force, one training shard is planned
    with override_settings(ELM_ADAPTER_DIR=tmp_path / "empty"):
        assert len(job_kinds._plan_train_elm(job_create(kind="train_elm"))) == 1
    with override_settings(ELM_ADAPTER_DIR=tmp_path / "a"):
        assert len(job_kinds._plan_train_elm(job_create(kind="train_elm", params={"force": True}))) == 1
