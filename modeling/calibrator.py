"""Calibration maps from a booster's raw score (log-odds) to a probability, as plain JSON.

Sigmoid (Platt) scaling is two floats; isotonic is a pair of threshold arrays applied
with ``np.interp``. Applying and storing them needs numpy alone, so a server loads a model
without scikit-learn; fitting them is training's (``training.calibration``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

Method = Literal["sigmoid", "isotonic", "none"]
EPS = 1e-6


def sigmoid(z: np.ndarray) -> np.ndarray:
    out: np.ndarray = 0.5 * (1.0 + np.tanh(0.5 * z))
    return out


@dataclass
class Calibrator:
    """A fitted map from raw score (log-odds) to calibrated probability."""

    method: Method
    a: float = 1.0
    b: float = 0.0
    x: list[float] = field(default_factory=list)
    y: list[float] = field(default_factory=list)

    def apply(self, raw: np.ndarray) -> np.ndarray:
        """Calibrated probabilities for raw scores, clipped away from 0 and 1."""
        raw = np.asarray(raw, dtype=float)
        if self.method == "isotonic":
            p = np.interp(raw, np.asarray(self.x), np.asarray(self.y))
        elif self.method == "sigmoid":
            p = sigmoid(self.a * raw + self.b)
        else:
            p = sigmoid(raw)
        clipped: np.ndarray = np.clip(p, EPS, 1.0 - EPS)
        return clipped

    def to_json(self) -> dict[str, Any]:
        if self.method == "isotonic":
            return {"method": "isotonic", "x": self.x, "y": self.y}
        if self.method == "sigmoid":
            return {"method": "sigmoid", "a": self.a, "b": self.b}
        return {"method": "none"}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Calibrator:
        method = data["method"]
        if method == "isotonic":
            return cls("isotonic", x=[float(v) for v in data["x"]], y=[float(v) for v in data["y"]])
        if method == "sigmoid":
            return cls("sigmoid", a=float(data["a"]), b=float(data["b"]))
        return cls("none")
