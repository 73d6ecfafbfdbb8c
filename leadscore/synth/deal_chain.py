"""The deal chain: stage x regime rates, exact win probabilities, and the simulation.

In each open stage a deal advances, is lost, moves back a stage or switches regime
(healthy <-> troubled), at rates set by stage, regime and the deal's hidden quality. Near
quarter end every rate in proposal and negotiation speeds up by the same factor: a change
of clock that leaves the win probability unchanged, so the absorbing-chain solve stays exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.schema import OPEN_STAGES
from leadscore.synth.drift import slow_clock
from leadscore.synth.sampling import advance_clock

# Stage dynamics (per day), healthy regime at quality 0.
ADVANCE = 0.78 * np.array([1 / 12, 1 / 18, 1 / 18, 1 / 22, 1 / 16])
LOSE = 0.78 * np.array([0.035, 0.022, 0.018, 0.014, 0.010])
BACK = np.array([0.0, 0.003, 0.003, 0.004, 0.005])
TO_TROUBLED = 0.007
TO_HEALTHY = 0.004
TROUBLED_ADVANCE = 0.35
TROUBLED_LOSE = 4.0
QUARTER_END_SPEEDUP = 2.5
PRESSURE_STAGES = (3, 4)
MAX_DEAL_STEPS = 80


def deal_rates(quality: np.ndarray) -> dict[str, np.ndarray]:
    """Per-deal rate arrays of shape (n, 5 stages, 2 regimes)."""
    q = quality[:, None, None]
    regime_adv = np.array([1.0, TROUBLED_ADVANCE])[None, None, :]
    regime_lose = np.array([1.0, TROUBLED_LOSE])[None, None, :]
    adv = ADVANCE[None, :, None] * np.exp(0.25 * q) * regime_adv
    lose = LOSE[None, :, None] * np.exp(-0.7 * q) * regime_lose
    back = np.broadcast_to(BACK[None, :, None], adv.shape).copy()
    switch = np.empty_like(adv)
    switch[..., 0] = TO_TROUBLED * np.exp(-0.6 * quality)[:, None]
    switch[..., 1] = TO_HEALTHY * np.exp(0.3 * quality)[:, None]
    return {"advance": adv, "lose": lose, "back": back, "switch": switch}


def deal_win_probabilities(quality: np.ndarray) -> np.ndarray:
    """P(eventually won | stage, regime) for each deal: shape (n, 5, 2).

    Absorbing-chain solve on the 10 transient states (stage x regime).
    """
    r = deal_rates(quality)
    n, n_stages = quality.shape[0], len(OPEN_STAGES)
    size = n_stages * 2
    a = np.zeros((n, size, size))
    b = np.zeros((n, size))
    for s in range(n_stages):
        for g in range(2):
            i = s * 2 + g
            adv, lose = r["advance"][:, s, g], r["lose"][:, s, g]
            back, sw = r["back"][:, s, g], r["switch"][:, s, g]
            a[:, i, i] = adv + lose + back + sw
            if s + 1 < n_stages:
                a[:, i, (s + 1) * 2 + g] -= adv
            else:
                b[:, i] = adv
            if s > 0:
                a[:, i, (s - 1) * 2 + g] -= back
            a[:, i, s * 2 + (1 - g)] -= sw
    p = np.linalg.solve(a, b[..., None])[..., 0]
    return np.asarray(p.reshape(n, n_stages, 2))


@dataclass
class DealRun:
    """Hidden trajectories of a batch of deals (indices into the batch)."""

    seg_deal: np.ndarray
    seg_start: np.ndarray
    seg_end: np.ndarray
    seg_stage: np.ndarray
    seg_regime: np.ndarray
    seg_next: np.ndarray  # 0 advance, 1 lose, 2 back, 3 switch, -1 cut off (still open)
    closed_at: np.ndarray
    won: np.ndarray


def simulate_deals(
    rng: np.random.Generator,
    created: np.ndarray,
    start_stage: np.ndarray,
    start_regime: np.ndarray,
    quality: np.ndarray,
    windows: np.ndarray,
    horizon: float,
    slow_from: float | None = None,
) -> DealRun:
    """Run every deal of a batch until it closes or ``horizon`` (day offset) is reached;
    after ``slow_from`` (a drifted CRM), at ``leadscore.synth.drift.PIPELINE_SPEED``."""
    n = created.size
    r = deal_rates(quality)
    stage = start_stage.copy()
    regime = start_regime.copy()
    t = created.copy()
    closed_at = np.full(n, np.nan)
    won = np.zeros(n, dtype=bool)
    active = np.arange(n)
    segs: list[tuple[np.ndarray, ...]] = []
    for _ in range(MAX_DEAL_STEPS):
        if active.size == 0:
            break
        s, g = stage[active], regime[active]
        adv = r["advance"][active, s, g]
        lose = r["lose"][active, s, g]
        back = r["back"][active, s, g]
        sw = r["switch"][active, s, g]
        total = adv + lose + back + sw
        intrinsic = rng.exponential(size=active.size) / total
        t0 = t[active]
        plain_end = t0 + intrinsic
        pressured = np.isin(s, PRESSURE_STAGES)
        t1 = plain_end
        if pressured.any():
            t1 = plain_end.copy()
            t1[pressured] = advance_clock(t0[pressured], intrinsic[pressured], windows,
                                          QUARTER_END_SPEEDUP)
        if slow_from is not None:
            t1 = slow_clock(t0, t1, slow_from)
        u = rng.random(active.size) * total
        event = np.where(u < adv, 0, np.where(u < adv + lose, 1, np.where(u < adv + lose + back,
                                                                            2, 3)))
        cut = t1 > horizon
        event = np.where(cut, -1, event)
        t1 = np.minimum(t1, horizon)
        segs.append((active, t0, t1, s, g, event))
        t[active] = t1
        win_now = (event == 0) & (s == len(OPEN_STAGES) - 1)
        lost_now = event == 1
        closed_at[active[win_now | lost_now]] = t1[win_now | lost_now]
        won[active[win_now]] = True
        stage[active] = np.where(event == 0, s + 1, np.where(event == 2, s - 1, s))
        regime[active] = np.where(event == 3, 1 - g, g)
        keep = (event >= 0) & ~win_now & ~lost_now
        active = active[keep]
    if active.size:  # a deal that never settles is closed lost by its owner
        closed_at[active] = t[active]
    if not segs:
        empty_int, empty_float = np.array([], dtype=np.int64), np.array([])
        return DealRun(empty_int, empty_float, empty_float, empty_int, empty_int, empty_int,
                       closed_at, won)
    cols = [np.concatenate(c) for c in zip(*segs, strict=True)]
    return DealRun(cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], closed_at, won)
