"""Calibrators: JSON round trip, and the chosen calibrator never worsens validation log loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

from training.calibration import (
    Calibrator,
    choose_calibrator,
    fit_isotonic,
    fit_sigmoid,
    log_loss,
)


def _scores(seed: int, n: int = 3000, scale: float = 2.5, shift: float = -1.0):  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-1.0, 1.2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    raw = true_logit * scale + shift  # over-confident and shifted raw scores
    groups = np.array([f"e{i // 3}" for i in range(n)])
    return raw, y, groups


@pytest.mark.parametrize("fit", [fit_sigmoid, fit_isotonic])
def test_json_round_trip_is_exact(fit) -> None:  # type: ignore[no-untyped-def]
    raw, y, _ = _scores(0)
    cal = fit(raw, y)
    again = Calibrator.from_json(json.loads(json.dumps(cal.to_json())))
    assert np.array_equal(cal.apply(raw), again.apply(raw))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_chosen_calibrator_keeps_or_improves_validation_log_loss(seed: int) -> None:
    raw, y, groups = _scores(seed)
    choice = choose_calibrator(raw, y, groups)
    raw_loss = log_loss(y, 1 / (1 + np.exp(-raw)))
    assert log_loss(y, choice.calibrator.apply(raw)) <= raw_loss + 1e-12
    assert choice.fit_log_loss[choice.calibrator.method] <= choice.fit_log_loss["none"] + 1e-12
    # These raw scores are badly scaled, so calibration must help clearly, and out of
    # fold (each entity scored by a calibrator fitted without it), not only in sample.
    assert log_loss(y, choice.calibrator.apply(raw)) < raw_loss - 0.01
    assert choice.cv_log_loss[choice.calibrator.method] < choice.cv_log_loss["none"] - 0.01
    assert choice.calibrator.method in ("sigmoid", "isotonic")
    assert set(choice.cv_log_loss) == {"sigmoid", "isotonic", "none"}


@pytest.mark.parametrize("seed", [4, 5, 6, 7, 8])
def test_refit_is_dropped_only_when_it_clearly_loses_out_of_fold(seed: int) -> None:
    # Calibrated raw scores on few entities with many rows each: a refit mostly chases
    # fold-to-fold noise, and then the booster's own probabilities must be kept.
    rng = np.random.default_rng(seed)
    entity_logit = rng.normal(-0.5, 1.5, 40)
    groups = np.repeat([f"e{i}" for i in range(40)], 8)
    raw = np.repeat(entity_logit, 8)
    y = np.repeat((rng.random(40) < 1 / (1 + np.exp(-entity_logit))).astype(int), 8)
    choice = choose_calibrator(raw, y, groups)
    cv = choice.cv_log_loss
    best_refit = min(cv["sigmoid"], cv["isotonic"])
    if choice.calibrator.method == "none":
        assert best_refit > cv["none"] * 1.005
        assert np.allclose(choice.calibrator.apply(raw), 1 / (1 + np.exp(-raw)))
    else:
        assert cv[choice.calibrator.method] == best_refit <= cv["none"] * 1.005
    if seed == 4:  # measured: both refits lose out of fold here
        assert choice.calibrator.method == "none"


def test_sigmoid_recovers_a_known_scaling() -> None:
    raw, y, _ = _scores(5, n=20_000, scale=2.0, shift=0.0)
    cal = fit_sigmoid(raw, y)
    assert cal.a == pytest.approx(0.5, abs=0.05)


def test_isotonic_output_is_monotone_and_bounded() -> None:
    raw, y, _ = _scores(3)
    cal = fit_isotonic(raw, y)
    grid = np.linspace(raw.min() - 5, raw.max() + 5, 500)
    p = cal.apply(grid)
    assert np.all(np.diff(p) >= 0) and p.min() > 0 and p.max() < 1
