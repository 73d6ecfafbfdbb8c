"""Monte Carlo over the deals: the distribution of bookings in two successive periods.

Each open deal closes won in the current period with probability ``p_current``, in the
next with ``p_next``, else in neither: one uniform draw per deal and draw decides, so a
deal never counts in both. Deals not created yet add a compound Poisson sum per period
(a Poisson number of wins, each an amount drawn from the past such wins). Vectorised in
blocks of draws; seeded, so the same inputs give the same quantiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

QUANTILES = (0.1, 0.5, 0.9)
BLOCK_CELLS = 4_000_000
"""Uniforms drawn at once (draws x deals): about 32 MB."""


@dataclass(frozen=True)
class NewWins:
    """Wins expected from deals not created yet, for one period."""

    expected_count: float
    amounts: np.ndarray
    """Amounts of past wins of deals created and won inside one period (drawn with
    replacement)."""

    @property
    def expected_amount(self) -> float:
        return float(self.expected_count * self.amounts.mean()) if len(self.amounts) else 0.0


NO_NEW_WINS = NewWins(0.0, np.zeros(0))


def quantiles(samples: np.ndarray, qs: tuple[float, ...] = QUANTILES) -> tuple[float, ...]:
    """Sample quantiles as the inverse of the empirical CDF (a value that occurs)."""
    return tuple(float(v) for v in np.quantile(samples, qs, method="inverted_cdf"))


def _new_sums(new: NewWins, draws: int, rng: np.random.Generator) -> np.ndarray:
    if new.expected_count <= 0 or len(new.amounts) == 0:
        return np.zeros(draws)
    counts = rng.poisson(new.expected_count, size=draws)
    picks = rng.choice(new.amounts, size=int(counts.sum()), replace=True)
    owner = np.repeat(np.arange(draws), counts)
    return np.bincount(owner, weights=picks, minlength=draws)


def simulate(
    amounts: np.ndarray,
    p_current: np.ndarray,
    p_next: np.ndarray | None = None,
    new_current: NewWins = NO_NEW_WINS,
    new_next: NewWins = NO_NEW_WINS,
    draws: int = 10_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Bookings per draw in the current and the next period, shape (draws,) each."""
    amounts = np.asarray(amounts, dtype=float)
    p_cur = np.clip(np.asarray(p_current, dtype=float), 0.0, 1.0)
    p_nxt = (np.zeros_like(p_cur) if p_next is None
             else np.clip(np.asarray(p_next, dtype=float), 0.0, 1.0))
    if not (len(amounts) == len(p_cur) == len(p_nxt)):
        raise ValueError("amounts and probabilities must have one value per deal")
    if np.any(p_cur + p_nxt > 1.0 + 1e-9):
        raise ValueError("a deal's probabilities of the two periods sum to more than 1")
    if draws < 1:
        raise ValueError("draws must be positive")
    rng = np.random.default_rng(seed)
    cur = np.zeros(draws)
    nxt = np.zeros(draws)
    n = len(amounts)
    block = max(1, BLOCK_CELLS // max(n, 1))
    upper = p_cur + p_nxt
    for lo in range(0, draws, block):
        hi = min(draws, lo + block)
        if n:
            u = rng.random((hi - lo, n))
            won_cur = u < p_cur
            cur[lo:hi] = won_cur @ amounts
            nxt[lo:hi] = ((u < upper) & ~won_cur) @ amounts
    cur += _new_sums(new_current, draws, rng)
    nxt += _new_sums(new_next, draws, rng)
    return cur, nxt
