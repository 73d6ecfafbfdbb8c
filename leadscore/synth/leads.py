"""Leads: who they are, their hidden intent, its Markov chain, and the activity it emits.

Each lead has a hidden intent ``z`` (source, seniority, function, firmographic fit, noise).
It starts ``cold``; it may turn ``hot`` (buying now), go ``dead`` (interest gone) or, rarely,
qualify straight from cold. A hot lead qualifies or dies. Activity rates depend on the
state: quiet when cold (scaled by intent), a burst when hot, fading when dead. Dead leads
are disqualified by sales some weeks later, or linger open.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.synth.accounts import Accounts
from leadscore.synth.drift import Drift, shift_sources
from leadscore.synth.sampling import choice, emit, sigmoid
from leadscore.synth.vocab import (
    FUNCTION_EFFECT,
    FUNCTION_WEIGHTS,
    N_TYPES,
    SENIORITY_EFFECT,
    SENIORITY_WEIGHTS,
    SOURCE_EFFECT,
    SOURCE_WEIGHTS,
    activity_rates,
)

# Lead activity rates per day, by hidden state. Inbound engagement scales with intent.
LEAD_COLD = activity_rates(email_opened=0.15, email_clicked=0.04, web_visit=0.15,
                           content_download=0.03, pricing_page_visit=0.008,
                           webinar_attended=0.006)
LEAD_COLD_OUT = activity_rates(email_sent=0.12, call=0.02)
LEAD_HOT = activity_rates(email_opened=0.3, email_clicked=0.12, email_replied=0.1,
                          web_visit=0.4, pricing_page_visit=0.2, content_download=0.05,
                          form_submitted=0.06, webinar_attended=0.02, email_sent=0.2,
                          call=0.1, meeting=0.05, demo=0.03)
LEAD_DEAD_FACTOR = 0.01
LEAD_DEAD_DAYS = 45.0
GROWTH = 0.6  # lead creation density rises as 1 + GROWTH t / D


def lead_rates(z: np.ndarray) -> dict[str, np.ndarray]:
    """Per-lead transition rates per day from the hidden intent z."""
    return {
        "to_hot": 0.02 * np.exp(0.9 * z),
        "to_dead": 0.02 * np.exp(-0.4 * z),
        "cold_qualify": 0.002 * np.exp(0.9 * z),
        "hot_qualify": 0.12 * np.exp(0.2 * z),
        "hot_dead": np.full_like(z, 0.04),
    }


@dataclass(frozen=True)
class Leads:
    created: np.ndarray
    account: np.ndarray
    source: np.ndarray
    seniority: np.ndarray
    function: np.ndarray
    has_bant: np.ndarray
    budget: np.ndarray
    authority: np.ndarray
    need: np.ndarray
    timeline: np.ndarray
    # Hidden: intent, its rates, and the chain's path (day offsets, NaN when never reached).
    z: np.ndarray
    rates: dict[str, np.ndarray]
    cold_exit: np.ndarray
    t_hot: np.ndarray
    t_dead: np.ndarray
    t_qual: np.ndarray
    t_disq: np.ndarray

    @property
    def n(self) -> int:
        return int(self.created.size)


@dataclass(frozen=True)
class _Path:
    cold_exit: np.ndarray
    t_hot: np.ndarray
    t_dead: np.ndarray
    t_qual: np.ndarray
    t_disq: np.ndarray


def _creation_times(rng: np.random.Generator, n_leads: int, days: float) -> np.ndarray:
    """Sorted creation days with a growing rate: density proportional to 1 + 0.6 t/D."""
    u = rng.random(n_leads)
    g = GROWTH
    return np.sort(days * (np.sqrt(1 + g * (2 + g) * u) - 1) / g)


def _lead_accounts(rng: np.random.Generator, n_leads: int, n_acc: int) -> np.ndarray:
    """Leads cluster on accounts (Zipf-like weights over a shuffled account order)."""
    acc_w = 1.0 / np.arange(1, n_acc + 1) ** 0.6
    lead_acc = rng.choice(n_acc, size=n_leads, p=acc_w / acc_w.sum())
    return np.asarray(rng.permutation(n_acc)[lead_acc])


def _lead_path(rng: np.random.Generator, created: np.ndarray,
               lr: dict[str, np.ndarray]) -> _Path:
    """Competing exponential clocks out of cold, then out of hot; dead leads disqualified."""
    n_leads = created.size
    exp1 = rng.exponential(size=(n_leads, 3))
    t_cold_hot = exp1[:, 0] / lr["to_hot"]
    t_cold_dead = exp1[:, 1] / lr["to_dead"]
    t_cold_q = exp1[:, 2] / lr["cold_qualify"]
    exp2 = rng.exponential(size=(n_leads, 2))
    t_hot_q = exp2[:, 0] / lr["hot_qualify"]
    t_hot_dead = exp2[:, 1] / lr["hot_dead"]
    cold_exit = np.minimum(np.minimum(t_cold_hot, t_cold_dead), t_cold_q)
    went_hot = t_cold_hot == cold_exit
    t_hot = np.where(went_hot, created + t_cold_hot, np.nan)
    hot_q = went_hot & (t_hot_q < t_hot_dead)
    t_qual = np.where(t_cold_q == cold_exit, created + t_cold_q,
                      np.where(hot_q, t_hot + t_hot_q, np.nan))
    t_dead = np.where(t_cold_dead == cold_exit, created + t_cold_dead,
                      np.where(went_hot & ~hot_q, t_hot + t_hot_dead, np.nan))
    disq = ~np.isnan(t_dead) & (rng.random(n_leads) < 0.8)
    t_disq = np.where(disq, t_dead + rng.exponential(21.0, n_leads), np.nan)
    return _Path(cold_exit, t_hot, t_dead, t_qual, t_disq)


def simulate_leads(rng: np.random.Generator, accounts: Accounts, n_leads: int,
                   days: float, drift: Drift | None = None) -> Leads:
    """Leads, what they tell sales (BANT for some), and their hidden intent chain; with
    ``drift``, the later leads' sources from the drifted mix."""
    created = _creation_times(rng, n_leads, days)
    lead_acc = _lead_accounts(rng, n_leads, accounts.n)
    source = choice(rng, n_leads, SOURCE_WEIGHTS)
    if drift is not None:
        source = shift_sources(drift, created, source)
    seniority = choice(rng, n_leads, SENIORITY_WEIGHTS)
    function = choice(rng, n_leads, FUNCTION_WEIGHTS)
    # Hidden intent.
    latent_need = rng.normal(0.0, 1.0, n_leads)
    z = (-1.35 + SOURCE_EFFECT[source] + SENIORITY_EFFECT[seniority]
         + FUNCTION_EFFECT[function] + 0.8 * accounts.fit[lead_acc] + 0.3 * latent_need
         + rng.normal(0.0, 0.2, n_leads))
    # BANT answers for some leads (those who filled a qualifying form), tied to intent.
    has_bant = rng.random(n_leads) < np.where(np.isin(source, (0, 1, 2)), 0.55, 0.2)
    budget = rng.random(n_leads) < sigmoid(0.9 * latent_need - 0.2)
    authority = rng.random(n_leads) < np.where(seniority <= 2, 0.8, 0.2)
    need = rng.random(n_leads) < sigmoid(1.2 * latent_need + 0.4)
    timeline = np.round(np.exp(rng.normal(4.5 - 0.4 * latent_need, 0.5))).astype(np.int64)
    lr = lead_rates(z)
    path = _lead_path(rng, created, lr)
    return Leads(created, lead_acc, source, seniority, function, has_bant, budget, authority,
                 need, timeline, z, lr, path.cold_exit, path.t_hot, path.t_dead, path.t_qual,
                 path.t_disq)


def emit_lead_activities(rng: np.random.Generator, leads: Leads,
                         days: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lead, time, type) of every activity in the cold, hot and dead intervals."""
    n_leads, D = leads.n, days
    stop = np.fmin(np.fmin(leads.t_qual, leads.t_disq), D)
    cold_end = np.minimum(leads.created + leads.cold_exit, stop)
    hot_end = np.minimum(np.fmin(leads.t_qual, leads.t_dead), stop)
    dead_end = np.minimum(leads.t_dead + LEAD_DEAD_DAYS, stop)
    scale = np.exp(1.0 * (leads.z + 1.0))[:, None]
    iv_start = np.concatenate([leads.created, np.nan_to_num(leads.t_hot, nan=D),
                               np.nan_to_num(leads.t_dead, nan=D)])
    iv_end = np.concatenate([cold_end, np.nan_to_num(hot_end, nan=D),
                             np.nan_to_num(dead_end, nan=D)])
    iv_lead = np.tile(np.arange(n_leads), 3)
    cold_rates = LEAD_COLD[None, :] * scale + LEAD_COLD_OUT[None, :]
    iv_rates = np.concatenate([
        cold_rates,
        np.broadcast_to(LEAD_HOT, (n_leads, N_TYPES)),
        LEAD_COLD[None, :] * scale * LEAD_DEAD_FACTOR + LEAD_COLD_OUT[None, :],
    ])
    a_iv, time, kind = emit(rng, iv_start, iv_end, iv_rates)
    return iv_lead[a_iv], time, kind
