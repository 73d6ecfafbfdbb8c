"""Fitting probability calibration, and choosing its method.

The fitted maps (:class:`modeling.calibrator.Calibrator`) round-trip through JSON, no
pickle. Which one a model uses is chosen by held-out log loss on the validation period
(see :func:`choose_calibrator`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

from modeling.calibrator import EPS, Calibrator, Method, sigmoid

MIN_CALIBRATION_ENTITIES = 300
"""Fewest validation entities a calibrator is refitted on (see :func:`choose_calibrator`)."""


def fit_sigmoid(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """Platt scaling on the raw score; contains the identity, so never worse in-sample."""
    lr = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000)
    lr.fit(np.asarray(raw, dtype=float).reshape(-1, 1), np.asarray(y, dtype=int))
    return Calibrator("sigmoid", a=float(lr.coef_[0, 0]), b=float(lr.intercept_[0]))


def fit_isotonic(raw: np.ndarray, y: np.ndarray) -> Calibrator:
    """Isotonic regression on the raw score, stored as its step thresholds."""
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(np.asarray(raw, dtype=float), np.asarray(y, dtype=float))
    return Calibrator(
        "isotonic",
        x=[float(v) for v in iso.X_thresholds_],
        y=[float(v) for v in iso.y_thresholds_],
    )


def fit_calibrator(method: Method, raw: np.ndarray, y: np.ndarray) -> Calibrator:
    if method == "sigmoid":
        return fit_sigmoid(raw, y)
    if method == "isotonic":
        return fit_isotonic(raw, y)
    return Calibrator("none")


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    """Binary log loss with probabilities clipped to [EPS, 1-EPS]."""
    p = np.clip(np.asarray(p, dtype=float), EPS, 1.0 - EPS)
    y = np.asarray(y, dtype=float)
    return float(-np.mean(y * np.log(p) + (1.0 - y) * np.log(1.0 - p)))


@dataclass(frozen=True)
class CalibrationChoice:
    calibrator: Calibrator
    cv_log_loss: dict[str, float]
    """Out-of-fold validation log loss per candidate method (and "none", for reference)."""
    fit_log_loss: dict[str, float]
    """In-sample validation log loss: raw model ("none") and the chosen calibrator."""


def choose_calibrator(
    raw: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    n_folds: int = 5,
    candidates: tuple[Method, ...] = ("sigmoid", "isotonic"),
    keep_raw_margin: float = 0.005,
    min_entities: int = 0,
) -> CalibrationChoice:
    """Pick the calibration method by out-of-fold log loss on the validation rows.

    Folds are formed by entity (``groups``) so one entity's snapshots never sit on
    both sides; the winner is then refit on all validation rows. Isotonic would
    always win an in-sample comparison, hence the folds. When the best candidate loses
    to the booster's own probabilities out of fold by more than ``keep_raw_margin``
    (relative log loss: a small validation period, where a refit chases noise), the
    booster's probabilities are kept as they are ("none"). At 100k generated leads the
    two differ by under 0.1 %, and the refit is kept.

    With fewer than ``min_entities`` entities in the validation period the booster's
    probabilities are kept whatever the folds say: folds drawn from a hundred deals all
    share that period's quirks, so they cannot tell a real miscalibration from the
    period's own luck (measured on the shipped sample: a sigmoid refit on 106 validation
    deals moved the test log loss from 0.557 to 0.622).
    """
    raw = np.asarray(raw, dtype=float)
    y = np.asarray(y, dtype=int)
    _, codes = np.unique(np.asarray(groups).astype(str), return_inverse=True)
    # A fixed, data-independent fold per entity: stable across runs.
    fold = (codes * 2654435761 % (2**32)) % n_folds
    oof: dict[str, np.ndarray] = {m: np.empty_like(raw) for m in candidates}
    for k in range(n_folds):
        test = fold == k
        train = ~test
        if not test.any():
            continue
        for m in candidates:
            if len(np.unique(y[train])) < 2:
                oof[m][test] = sigmoid(raw[test])
                continue
            oof[m][test] = fit_calibrator(m, raw[train], y[train]).apply(raw[test])
    cv: dict[str, float] = {m: log_loss(y, oof[m]) for m in candidates}
    cv["none"] = log_loss(y, sigmoid(raw))
    best: Method = min(candidates, key=lambda m: (cv[m], m))
    too_few = len(np.unique(codes)) < min_entities
    if cv[best] > cv["none"] * (1.0 + keep_raw_margin) or len(np.unique(y)) < 2 or too_few:
        best = "none"
    chosen = fit_calibrator(best, raw, y)
    fit: dict[str, float] = {"none": cv["none"], chosen.method: log_loss(y, chosen.apply(raw))}
    return CalibrationChoice(calibrator=chosen, cv_log_loss=cv, fit_log_loss=fit)
