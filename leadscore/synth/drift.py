"""A CRM whose later months shift (``leadscore generate --drift``): what a model trained
on the earlier months should be told it no longer sees.

From :data:`DRIFT_FROM` of the history on, three things change, each drawn from its own
generator (``default_rng([seed, DRIFT_STREAM])``), so everything before the shift, and
every draw of the undrifted simulation, is the same as without ``--drift``:

- the source mix: new leads come more from cold outbound and paid search, less from
  forms, referrals and partners (their hidden intent follows the source as always);
- engagement: each activity after the shift is kept with probability
  :data:`ACTIVITY_KEEP` (a thinned Poisson process: every activity rate scaled by it);
- a slower pipeline: deals work :data:`PIPELINE_SPEED` times as fast after the shift, a
  change of clock that leaves every win probability, and so the oracle, exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from leadscore.synth.sampling import choice
from leadscore.synth.vocab import SOURCE_WEIGHTS, SOURCES

DRIFT_STREAM = 3
DRIFT_FROM = 0.75
"""Share of the history before the shift: the last quarter of the months drift."""
DRIFTED_SOURCE_WEIGHTS = np.array([0.10, 0.08, 0.03, 0.30, 0.40, 0.06, 0.03])
"""Per source of ``SOURCES``: inbound_web_form, webinar, referral, paid_search,
cold_outbound, event, partner."""
ACTIVITY_KEEP = 0.6
PIPELINE_SPEED = 0.6

assert DRIFTED_SOURCE_WEIGHTS.shape == SOURCE_WEIGHTS.shape == (len(SOURCES),)


@dataclass(frozen=True)
class Drift:
    """When the shift starts (day offset) and its generator."""

    start_day: float
    rng: np.random.Generator


def drift_for(seed: int, days: float) -> Drift:
    return Drift(start_day=DRIFT_FROM * days, rng=np.random.default_rng([seed, DRIFT_STREAM]))


def shift_sources(drift: Drift, created: np.ndarray, source: np.ndarray) -> np.ndarray:
    """``source`` with the leads created after the shift drawn again from the drifted mix."""
    late = created >= drift.start_day
    out = source.copy()
    out[late] = choice(drift.rng, int(late.sum()), DRIFTED_SOURCE_WEIGHTS)
    return out


def slow_clock(t0: np.ndarray, t1: np.ndarray, start_day: float,
               speed: float = PIPELINE_SPEED) -> np.ndarray:
    """End times of deal spells from ``t0`` to ``t1`` when, after ``start_day``, work runs
    at ``speed``: the part of a spell after it lasts ``1 / speed`` times as long."""
    s = np.maximum(t0, start_day)
    return np.where(t1 > start_day, s + (t1 - s) / speed, t1)


def thin_activities(drift: Drift, table: pa.Table, start_ns: int) -> pa.Table:
    """The activities table with each activity after the shift kept with probability
    :data:`ACTIVITY_KEEP`."""
    when = pc.cast(table["occurred_at"], pa.int64()).to_numpy(zero_copy_only=False)
    start = start_ns + int(drift.start_day * 86_400 * 1e9)
    keep = (when < start) | (drift.rng.random(len(when)) < ACTIVITY_KEEP)
    return table.filter(pa.array(keep))
