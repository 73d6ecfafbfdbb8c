"""How far a probability is from what came true, for the truth's calibration tests."""

from __future__ import annotations

import numpy as np


def calibration_gap(p: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Largest |observed - predicted| over equal-mass bins, in standard errors."""
    order = np.argsort(p)
    worst = 0.0
    for chunk in np.array_split(order, bins):
        mean_p = p[chunk].mean()
        se = np.sqrt(max(mean_p * (1 - mean_p), 1e-4) / chunk.size)
        worst = max(worst, abs(y[chunk].mean() - mean_p) / se)
    return worst
