"""Interval arithmetic against published values, and the SVG charts' accessibility and escaping."""

from __future__ import annotations

import pytest

from dashboard.charts import Chart, Series, nice_ceiling
from dashboard.stats import Difference, Rate, histogram_bins, quantile, wilson_interval


def test_wilson_interval_matches_known_values():
    # 0 of 10: the upper bound is the textbook 0.2775; 1 of 2 is symmetric around 0.5.
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(1, 2) == pytest.approx((0.0945, 0.9055), abs=1e-4)
    assert wilson_interval(0, 0) is None
    assert Rate(0, 0).value is None and Rate(0, 0).low is None


def test_newcombe_difference_matches_the_published_example():
    # Newcombe (1998), Statistics in Medicine 17:873, example (a): 56/70 - 48/80 -> 0.0524 to 0.3339.
    diff = Difference(Rate(56, 70), Rate(48, 80))
    assert diff.value == pytest.approx(0.2)
    assert diff.interval == pytest.approx((0.0524, 0.3339), abs=1e-4)
    assert diff.significant
    assert Difference(Rate(1, 2), Rate(0, 0)).interval is None


def test_quantile_and_histogram_edges():
    assert quantile([10, 20, 55], 0.5) == 20
    assert quantile([10, 20, 55], 0.9) == pytest.approx(48)
    assert quantile([], 0.5) is None
    # Bucket 0 (below) joins the first bin; bucket bins+1 (the upper edge) joins the last.
    bins = histogram_bins({0: 1, 1: 2, 3: 4, 4: 5}, low=0.0, high=0.3, bins=3)
    assert [b.count for b in bins] == [3, 0, 9]


def test_nice_ceiling():
    assert [nice_ceiling(v) for v in (0.011, 0.3, 7, 301)] == pytest.approx([0.02, 0.5, 10, 500])


def test_a_chart_is_an_accessible_svg_with_one_titled_mark_per_value():
    chart = Chart(
        "Win rate by arm",
        "Won divided by decided deals.",
        ["Explained", "Control"],
        [Series("Win rate", [0.5, 0.25], [(0.1, 0.9), (0.05, 0.7)])],
        percent=True,
    )
    svg = str(chart.render())
    assert svg.startswith("<svg") and 'role="img"' in svg
    title_id = svg.split('<title id="')[1].split('"')[0]
    desc_id = svg.split('<desc id="')[1].split('"')[0]
    assert f'aria-labelledby="{title_id} {desc_id}"' in svg
    assert svg.count("<rect") == 2 and svg.count('class="chart__interval"') == 2
    assert "Explained — Win rate: 50%" in svg and "(95%: 10%–90%)" in svg


def test_chart_text_is_escaped_and_lines_draw_points():
    chart = Chart('<script>alert("x")</script>', "d & d", ["<b>"], [Series("s", [3])], kind="line")
    svg = str(chart.render())
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "d &amp; d" in svg
    assert svg.count("<circle") == 1


def test_empty_charts_are_detected():
    assert Chart("t", "d", [], []).is_empty
    assert Chart("t", "d", ["a"], [Series("s", [0])]).is_empty
    # A 0% rate is data, not an empty chart.
    assert not Chart("t", "d", ["a"], [Series("s", [0.0])], percent=True).is_empty
