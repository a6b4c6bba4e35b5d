"""Calibration metrics against hand-computed fixtures, and synthetic histories of known calibration."""

from __future__ import annotations

import random

import pytest

from learning import metrics


def test_brier_and_ece_on_a_hand_computed_fixture():
    pairs = [(0.9, 1), (0.9, 0), (0.2, 0), (0.6, 1)]
    # (0.01 + 0.81 + 0.04 + 0.16) / 4
    assert metrics.brier(pairs) == pytest.approx(0.255)
    # bins: [0.9, 0.9] -> forecast 0.9, observed 0.5 (gap 0.4, weight 2/4); [0.2] gap 0.2; [0.6] gap 0.4
    assert metrics.ece(pairs, bins=10) == pytest.approx(0.5 * 0.4 + 0.25 * 0.2 + 0.25 * 0.4)
    bins = metrics.reliability_bins(pairs, bins=10)
    assert [b.count for b in bins] == [0, 0, 1, 0, 0, 0, 1, 0, 0, 2]
    assert bins[9].mean_forecast == pytest.approx(0.9) and bins[9].observed_rate == 0.5


def test_a_forecast_of_one_falls_in_the_last_bin_and_empty_input_gives_none():
    assert metrics.reliability_bins([(1.0, 1)], bins=10)[9].count == 1
    assert metrics.brier([]) is None and metrics.ece([]) is None and metrics.wilson(0, 0) is None


def test_a_perfectly_calibrated_history_scores_near_zero_ece_and_a_bad_one_does_not():
    rng = random.Random(7)
    calibrated = []
    for _ in range(20_000):
        p = rng.random()
        calibrated.append((p, 1 if rng.random() < p else 0))
    overconfident = [(0.95, o) for _, o in calibrated]  # says 95 % whatever happens
    assert metrics.ece(calibrated) < 0.02
    assert metrics.ece(overconfident) > 0.4
    # Brier of a calibrated uniform forecaster is E[p(1-p)] = 1/6
    assert metrics.brier(calibrated) == pytest.approx(1 / 6, abs=0.01)
    assert metrics.brier(overconfident) > 0.4


def test_wilson_interval_matches_the_textbook_value():
    low, high = metrics.wilson(50, 50)
    assert low == pytest.approx(0.9287, abs=1e-4) and high == pytest.approx(1.0)
    low, high = metrics.wilson(5, 10)
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)


def test_the_reliability_diagram_is_svg_with_a_point_per_nonempty_bin():
    svg = metrics.reliability_svg(metrics.reliability_bins([(0.1, 0), (0.8, 1), (0.85, 1)]), title="r <x>")
    assert svg.startswith("<svg") and svg.count("<circle") == 2 and "r &lt;x&gt;" in svg
