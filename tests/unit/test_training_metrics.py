"""Metric definitions: ECE over equal-mass bins, lift, and the names the MLflow run uses."""

from __future__ import annotations

import numpy as np
import pytest

from training.metrics import (
    METRIC_NAMES,
    binary_metrics,
    expected_calibration_error,
    lift_top_decile,
)


def test_ece_is_zero_when_each_bin_matches_its_rate() -> None:
    # Ten bins of ten rows each; in bin b the prediction is b/10 and b of 10 rows are positive.
    p = np.repeat(np.arange(10) / 10, 10)
    y = np.concatenate([[1] * b + [0] * (10 - b) for b in range(10)])
    assert expected_calibration_error(y, p) == pytest.approx(0.0, abs=1e-12)


def test_ece_measures_a_constant_offset() -> None:
    rng = np.random.default_rng(0)
    p = rng.uniform(0.2, 0.6, 10_000)
    y = (rng.random(10_000) < p).astype(int)
    shifted = p + 0.1
    assert expected_calibration_error(y, shifted) == pytest.approx(0.1, abs=0.02)
    assert expected_calibration_error(y, p) < 0.02


def test_lift_of_a_perfect_ranking() -> None:
    y = np.array([1] * 10 + [0] * 90)
    p = np.linspace(1, 0, 100)
    assert lift_top_decile(y, p) == pytest.approx(10.0)
    assert lift_top_decile(y, -p) == pytest.approx(0.0)


def test_binary_metrics_names_and_ranges() -> None:
    rng = np.random.default_rng(1)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    m = binary_metrics(y, p)
    assert tuple(m) == METRIC_NAMES
    assert 0.5 < m["roc_auc"] < 1 and 0 < m["brier"] < 0.25
    one_class = binary_metrics(np.zeros(10, dtype=int), np.full(10, 0.1))
    assert np.isnan(one_class["roc_auc"]) and np.isfinite(one_class["log_loss"])
