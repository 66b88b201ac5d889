"""Fixtures of the importer tests: a media root per test and the real slice read once per module."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from tests.recommendations.importer.support import HEAD_ROWS, HEADER, PICKS, dirty_class


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


@pytest.fixture(scope="module")
def real_rows() -> list[list[str]]:
    """Return a real slice: the header, the first HEAD_ROWS rows, then dirty rows picked from the rest."""
    from django.conf import settings

    path = Path(settings.ELM_DATASET_PATH)
    if not path.exists():
        pytest.skip(f"the dataset is not at {path}")
    head: list[list[str]] = []
    picked: list[list[str]] = []
    taken = dict.fromkeys(PICKS, 0)
    foreign_customers: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        assert next(reader) == HEADER
        for index, row in enumerate(reader):
            if index < HEAD_ROWS:
                head.append(row)
                continue
            kind = dirty_class(row)
            if kind == "foreign" and row[6] in foreign_customers:
                continue  # one row per foreign customer spreads them over many countries
            if kind and taken[kind] < PICKS[kind]:
                taken[kind] += 1
                picked.append(row)
                foreign_customers.add(row[6])
    assert taken == PICKS, "the real file no longer has the dirty rows this test relies on"
    return [HEADER, *head, *picked]
