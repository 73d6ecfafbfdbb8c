"""A customer's hidden health after the sale: a continuous-time Markov chain.

States: ``onboarding`` (just bought) -> ``healthy`` (adopted, using it) <-> ``at_risk``
(champion left, budget pressure, usage falling) -> ``churned`` (decided to leave; absorbing).
Onboarding may also go straight to at_risk. Holding times are exponential, with rates set
by constants drawn at the sale: the account's fit, size and product tier, and a hidden
adoption propensity. Expansion deals arrive as a Poisson process whose rate depends on
the state (mostly when healthy) and on a hidden appetite and the account's size.

Because the chain is Markov and time-homogeneous, P(state at t + s | state at t) is the
matrix exponential of its generator: that is what ``leadscore.truth`` integrates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HEALTH_STATES = ("onboarding", "healthy", "at_risk", "churned")
ONBOARDING, HEALTHY, AT_RISK, CHURNED = range(len(HEALTH_STATES))
N_HEALTH = len(HEALTH_STATES)

# Base rates per day at engagement 0, and how engagement moves each (log-rate units).
TRANSITIONS = (
    # from, to, base rate, engagement effect
    (ONBOARDING, HEALTHY, 1 / 45, 0.4),
    (ONBOARDING, AT_RISK, 1 / 900, -0.5),
    (HEALTHY, AT_RISK, 1 / 600, -0.5),
    (AT_RISK, HEALTHY, 1 / 60, 0.5),
    (AT_RISK, CHURNED, 1 / 250, -0.4),
)
# Expansion deals per day, relative to the account's healthy rate.
EXPANSION_STATE_FACTOR = np.array([0.15, 1.0, 0.08, 0.0])
EXPANSION_BASE_RATE = 1 / 1800
MAX_HEALTH_STEPS = 200


@dataclass(frozen=True)
class CustomerConstants:
    """Drawn at the sale; hidden (except size and tier, which the tables show)."""

    fit: np.ndarray
    size: np.ndarray  # standardised log head count
    tier: np.ndarray  # product of the first won deal: 0 starter, 1 professional, 2 enterprise
    adoption: np.ndarray
    appetite: np.ndarray

    @property
    def engagement(self) -> np.ndarray:
        return np.asarray(0.45 * self.fit + 0.9 * self.adoption + 0.2 * (self.tier - 1))


def health_generator(c: CustomerConstants) -> np.ndarray:
    """The chain's generator matrix per customer: shape (n, 4, 4), rows sum to zero."""
    n = c.fit.size
    q = np.zeros((n, N_HEALTH, N_HEALTH))
    e = c.engagement
    for a, b, base, effect in TRANSITIONS:
        q[:, a, b] = base * np.exp(effect * e)
    q[:, np.arange(N_HEALTH), np.arange(N_HEALTH)] = -q.sum(axis=2)
    return q


def expansion_rates(c: CustomerConstants) -> np.ndarray:
    """Expansion deals per day in each health state: shape (n, 4)."""
    healthy = EXPANSION_BASE_RATE * np.exp(0.35 * c.size + 1.0 * c.appetite + 0.3 * c.adoption)
    return np.asarray(healthy[:, None] * EXPANSION_STATE_FACTOR[None, :])


@dataclass(frozen=True)
class HealthPath:
    """Each customer's spells in a state, sorted by customer then start (day offsets)."""

    customer: np.ndarray
    start: np.ndarray
    end: np.ndarray
    state: np.ndarray

    def state_at(self, customer: np.ndarray, t: np.ndarray) -> np.ndarray:
        """The state of ``customer`` at day ``t`` (its first state before its sale)."""
        if self.start.size == 0:
            return np.full(customer.size, ONBOARDING)
        lo, hi = float(self.start.min()), float(self.end.max())
        span = hi - lo + 1.0
        key = self.customer * span + (self.start - lo)
        q = customer * span + np.clip(t - lo, 0.0, span - 1e-6)
        idx = np.searchsorted(key, q, side="right") - 1
        first = np.searchsorted(self.customer, customer, side="left")
        return np.asarray(self.state[np.maximum(idx, first)])


def simulate_health(rng: np.random.Generator, sale: np.ndarray, generator: np.ndarray,
                    until: float) -> HealthPath:
    """Run every customer's chain from its sale (onboarding) until day ``until``."""
    n = sale.size
    state = np.full(n, ONBOARDING)
    t = sale.copy()
    active = np.flatnonzero(t < until)
    spells: list[tuple[np.ndarray, ...]] = []
    for _ in range(MAX_HEALTH_STEPS):
        if active.size == 0:
            break
        s = state[active]
        out = generator[active, s, :].copy()
        out[np.arange(active.size), s] = 0.0
        total = out.sum(axis=1)
        absorbing = total <= 0
        dwell = rng.exponential(size=active.size) / np.where(absorbing, 1.0, total)
        end = np.where(absorbing, until, np.minimum(t[active] + dwell, until))
        u = rng.random(active.size) * total
        nxt = (u[:, None] >= np.cumsum(out, axis=1)).sum(axis=1)
        spells.append((active, t[active], end, s))
        go = ~absorbing & (end < until)
        t[active] = end
        state[active[go]] = np.minimum(nxt[go], N_HEALTH - 1)
        active = active[go]
    if not spells:
        return HealthPath(*(np.array([], dtype=d) for d in (np.int64, float, float, np.int64)))
    cols = [np.concatenate(c) for c in zip(*spells, strict=True)]
    order = np.lexsort((cols[1], cols[0]))
    return HealthPath(cols[0][order], cols[1][order], cols[2][order], cols[3][order])
