"""The Monte Carlo's quantiles against the exact distribution of a crafted set of deals."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from forecast.simulate import NewWins, quantiles, simulate

AMOUNTS = np.array([100.0, 250.0, 600.0, 1000.0])
P = np.array([0.8, 0.7, 0.2, 0.25])


def exact_distribution(amounts: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every outcome of independent deals, summed: values and their probabilities."""
    totals: dict[float, float] = {}
    for won in itertools.product((0, 1), repeat=len(amounts)):
        w = np.array(won)
        prob = float(np.prod(np.where(w == 1, p, 1 - p)))
        total = float(w @ amounts)
        totals[total] = totals.get(total, 0.0) + prob
    values = np.array(sorted(totals))
    return values, np.array([totals[v] for v in values])


def exact_quantile(values: np.ndarray, probs: np.ndarray, q: float) -> float:
    return float(values[np.searchsorted(np.cumsum(probs), q)])


def test_quantiles_match_the_exact_convolution() -> None:
    values, probs = exact_distribution(AMOUNTS, P)
    cdf = np.cumsum(probs)
    # The crafted set keeps its CDF away from 0.1, 0.5 and 0.9, so 20,000 draws (a CDF
    # standard error of 0.0035) cannot land on the wrong side of a step.
    for q in (0.1, 0.5, 0.9):
        assert np.min(np.abs(cdf - q)) > 0.02
    current, _ = simulate(AMOUNTS, P, draws=20_000, seed=3)
    got = quantiles(current)
    want = tuple(exact_quantile(values, probs, q) for q in (0.1, 0.5, 0.9))
    assert want == (100.0, 350.0, 1350.0)  # by hand: the CDF reaches 0.18, 0.6, 0.95 there
    assert got == want
    assert current.mean() == pytest.approx(float(P @ AMOUNTS), rel=0.02)


def test_two_periods_share_one_draw_per_deal() -> None:
    p_cur = np.array([0.5, 0.2, 0.0, 0.6])
    p_next = np.array([0.5, 0.3, 1.0, 0.1])
    amounts = np.array([10.0, 20.0, 40.0, 80.0])
    cur, nxt = simulate(amounts, p_cur, p_next, draws=20_000, seed=1)
    # Deal 1 always closes in one of the two periods, never both, and deal 3 always next.
    assert np.all(cur + nxt <= amounts.sum())
    assert np.all(nxt >= 40.0)
    assert np.all(np.isin(np.round(cur + nxt) % 20, (0, 10)))
    assert cur.mean() == pytest.approx(float(p_cur @ amounts), rel=0.03)
    assert nxt.mean() == pytest.approx(float(p_next @ amounts), rel=0.03)
    with pytest.raises(ValueError, match="more than 1"):
        simulate(amounts, p_cur + 0.5, p_next)


def test_new_wins_are_a_compound_poisson_sum() -> None:
    new = NewWins(expected_count=4.0, amounts=np.array([100.0, 300.0]))
    cur, nxt = simulate(np.zeros(0), np.zeros(0), np.zeros(0), new_current=new,
                        draws=40_000, seed=5)
    assert cur.mean() == pytest.approx(4.0 * 200.0, rel=0.02)
    # Var of a compound Poisson sum: lambda * E[amount^2].
    assert cur.var() == pytest.approx(4.0 * (100.0**2 + 300.0**2) / 2, rel=0.05)
    assert np.all(nxt == 0.0)
    assert new.expected_amount == 800.0


def test_seeded() -> None:
    a = simulate(AMOUNTS, P, draws=1000, seed=9)[0]
    b = simulate(AMOUNTS, P, draws=1000, seed=9)[0]
    c = simulate(AMOUNTS, P, draws=1000, seed=10)[0]
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
