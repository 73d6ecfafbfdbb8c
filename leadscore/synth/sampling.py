"""Vectorised draws the phases share: categorical picks, Poisson emissions, quarter-end clocks."""

from __future__ import annotations

import numpy as np
import pandas as pd

from leadscore.synth.config import GeneratorConfig

QUARTER_END_DAYS = 15.0


def sigmoid(x: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-x)))


def choice(rng: np.random.Generator, n: int, weights: np.ndarray) -> np.ndarray:
    return rng.choice(len(weights), size=n, p=weights / weights.sum())


def emit(
    rng: np.random.Generator,
    start: np.ndarray,
    end: np.ndarray,
    rates: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Poisson emissions on intervals: (interval index, time, type) per event.

    ``rates`` is (n_intervals, n_types) per day. Event times are uniform in the interval,
    which is what a homogeneous Poisson process gives once its count is known.
    """
    dur = np.maximum(end - start, 0.0)
    counts = rng.poisson(rates * dur[:, None])
    flat = np.repeat(np.arange(counts.size), counts.ravel())
    interval = flat // rates.shape[1]
    kind = flat % rates.shape[1]
    time = start[interval] + rng.random(interval.size) * dur[interval]
    return interval, time, kind


def quarter_windows(cfg: GeneratorConfig, horizon_days: float) -> np.ndarray:
    """(start, end) day offsets of the last QUARTER_END_DAYS of every quarter."""
    ends = pd.date_range(cfg.start_ts, cfg.start_ts + pd.Timedelta(days=horizon_days),
                         freq="QS", inclusive="right")
    out = []
    for e in ends:
        d = float((e - cfg.start_ts) / pd.Timedelta(days=1))
        out.append((d - QUARTER_END_DAYS, d))
    return np.array(out, dtype=float).reshape(-1, 2)


def advance_clock(t0: np.ndarray, intrinsic: np.ndarray, windows: np.ndarray,
                  speed: float) -> np.ndarray:
    """Wall time at which ``intrinsic`` days of work end, starting at t0, when work runs
    ``speed`` times faster inside the windows."""
    t = t0.copy()
    rem = intrinsic.copy()
    for ws, we in windows:
        before = np.clip(ws - t, 0.0, None)
        step = np.minimum(rem, before)
        t += step
        rem -= step
        inside = (rem > 0) & (t >= ws) & (t < we)
        cap = (we - t) * speed
        step = np.where(inside, np.minimum(rem, cap), 0.0)
        t += step / speed
        rem -= step
    return t + rem
