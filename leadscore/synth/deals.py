"""Reps and new-business deals, and the one index space every deal ends up in.

Each deal has a hidden quality (the lead's intent, the rep's skill, the product, the
account's fit, noise) and a hidden start regime; ``deal_chain`` runs it. What comes after a
won deal (renewals, expansions) is in ``post_sale``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.synth.accounts import Accounts
from leadscore.synth.config import GeneratorConfig
from leadscore.synth.deal_chain import DealRun, simulate_deals
from leadscore.synth.leads import Leads
from leadscore.synth.sampling import quarter_windows, sigmoid
from leadscore.synth.vocab import PRODUCT_EFFECT

SIMULATED_YEARS_PAST_END = 3  # deals keep running this long past the data's end


@dataclass
class DealBatch:
    """Deals created together (indices into accounts, leads, reps; -1 for none)."""

    lead: np.ndarray
    account: np.ndarray
    created: np.ndarray
    product: np.ndarray
    owner: np.ndarray
    start_stage: np.ndarray
    quality: np.ndarray
    start_regime: np.ndarray
    parent: np.ndarray  # global index of the won deal a follow-on comes from, -1 for none
    imported: bool = False  # contracts won before the CRM's first day (``installed_base``)

    @property
    def size(self) -> int:
        return int(self.created.size)


@dataclass(frozen=True)
class DealClock:
    """What every deal simulation shares: the horizon and the quarter-end windows."""

    windows: np.ndarray
    horizon: float
    slow_from: float | None = None
    """Day offset after which deals work slower (``leadscore.synth.drift``); None: never."""


@dataclass(frozen=True)
class NewBusiness:
    batch: DealBatch
    run: DealRun
    rep_skill: np.ndarray
    clock: DealClock


@dataclass(frozen=True)
class DealSegments:
    """Hidden stage x regime spells of every deal (global deal index)."""

    deal: np.ndarray
    start: np.ndarray
    end: np.ndarray
    stage: np.ndarray
    regime: np.ndarray
    next: np.ndarray  # 0 advance, 1 lose, 2 back, 3 switch, -1 cut off (still open)


@dataclass(frozen=True)
class Deals:
    """Every deal in one index space: new business first, then what followed, batch by batch."""

    lead: np.ndarray
    account: np.ndarray
    created: np.ndarray
    product: np.ndarray
    owner: np.ndarray
    start_stage: np.ndarray
    quality: np.ndarray
    closed: np.ndarray
    won: np.ndarray
    parent: np.ndarray  # the won deal a renewal or expansion follows, -1 for new business
    depth: np.ndarray  # 0 for new business, parent's depth + 1 for a follow-on
    imported: np.ndarray  # won before the CRM's first day: closed at creation, no spells
    segments: DealSegments
    n_reps: int

    @property
    def n(self) -> int:
        return int(self.created.size)

    @property
    def is_new_business(self) -> np.ndarray:
        """Deals from a lead, simulated by the pre-sale generator."""
        return np.asarray((self.parent < 0) & ~self.imported)


def run_batch(rng: np.random.Generator, batch: DealBatch, clock: DealClock) -> DealRun:
    return simulate_deals(rng, batch.created, batch.start_stage, batch.start_regime,
                          batch.quality, clock.windows, clock.horizon, clock.slow_from)


def troubled_probability(quality: np.ndarray,
                         shift: np.ndarray | float = 0.0) -> np.ndarray:
    """P(a deal starts troubled): sigmoid(-1.6 - 0.8 quality + shift). The oracle mixes the
    regimes' win probabilities with it, so the draw and the truth share this one formula."""
    return sigmoid(-1.6 - 0.8 * quality + shift)


def start_regime(rng: np.random.Generator, quality: np.ndarray,
                 shift: np.ndarray | float = 0.0) -> np.ndarray:
    """Troubled from the start with probability :func:`troubled_probability`."""
    return (rng.random(quality.size) < troubled_probability(quality, shift)).astype(np.int64)


def draw_product(rng: np.random.Generator, employees: np.ndarray) -> np.ndarray:
    """The product a company buys: by its size, one in five at random."""
    n = employees.size
    product = np.where(employees > 1500, 2, np.where(employees > 150, 1, 0))
    return np.where(rng.random(n) < 0.2, rng.integers(0, 3, n), product)


def simulate_new_business(rng: np.random.Generator, cfg: GeneratorConfig, accounts: Accounts,
                          leads: Leads) -> NewBusiness:
    """Reps, then most qualified leads become a deal within two days, then each deal runs.

    The product follows company size; quality adds the lead's intent, the rep's skill, the
    product and the account's fit.
    """
    days = cfg.days
    n_reps = max(4, cfg.n_leads // 1000)
    rep_skill = rng.normal(0.0, 0.5, n_reps)
    horizon = days + SIMULATED_YEARS_PAST_END * 365.0
    clock = DealClock(quarter_windows(cfg, horizon), horizon, cfg.drift_start_day)
    to_opp = ~np.isnan(leads.t_qual) & (leads.t_qual < days) & (rng.random(leads.n) < 0.9)
    opp_lead = np.flatnonzero(to_opp)
    opp_created = leads.t_qual[opp_lead] + rng.random(opp_lead.size) * 2.0
    keep = opp_created < days
    opp_lead, opp_created = opp_lead[keep], opp_created[keep]
    n0 = opp_lead.size
    prod = draw_product(rng, accounts.employees[leads.account[opp_lead]])
    owner = rng.integers(0, n_reps, n0)
    account = leads.account[opp_lead]
    quality = (0.3 * leads.z[opp_lead] + rep_skill[owner] + PRODUCT_EFFECT[prod]
               + 0.6 * accounts.fit[account] + rng.normal(0.0, 0.2, n0))
    batch = DealBatch(
        lead=opp_lead, account=account, created=opp_created, product=prod, owner=owner,
        start_stage=np.zeros(n0, dtype=np.int64), quality=quality,
        start_regime=start_regime(rng, quality), parent=np.full(n0, -1),
    )
    return NewBusiness(batch, run_batch(rng, batch, clock), rep_skill, clock)


def flatten(batches: list[DealBatch], runs: list[DealRun], n_reps: int) -> Deals:
    """One deal index space, batch after batch (every parent sits before its follow-ons)."""
    offsets = np.cumsum([0] + [b.size for b in batches])

    def cat(values: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(values) if values else np.array([])

    parent = cat([b.parent for b in batches]).astype(np.int64)
    depth = np.zeros(parent.size, dtype=np.int64)
    for k in range(1, len(batches)):
        idx = np.arange(offsets[k], offsets[k + 1])
        has = parent[idx] >= 0
        depth[idx[has]] = depth[parent[idx[has]]] + 1
    segments = DealSegments(
        deal=cat([offsets[k] + r.seg_deal for k, r in enumerate(runs)]).astype(np.int64),
        start=cat([r.seg_start for r in runs]).astype(float),
        end=cat([r.seg_end for r in runs]).astype(float),
        stage=cat([r.seg_stage for r in runs]).astype(np.int64),
        regime=cat([r.seg_regime for r in runs]).astype(np.int64),
        next=cat([r.seg_next for r in runs]).astype(np.int64),
    )
    return Deals(
        lead=cat([b.lead for b in batches]).astype(np.int64),
        account=cat([b.account for b in batches]).astype(np.int64),
        created=cat([b.created for b in batches]).astype(float),
        product=cat([b.product for b in batches]).astype(np.int64),
        owner=cat([b.owner for b in batches]).astype(np.int64),
        start_stage=cat([b.start_stage for b in batches]).astype(np.int64),
        quality=cat([b.quality for b in batches]).astype(float),
        closed=cat([r.closed_at for r in runs]).astype(float),
        won=cat([r.won for r in runs]).astype(bool),
        parent=parent,
        depth=depth,
        imported=cat([np.full(b.size, b.imported) for b in batches]).astype(bool),
        segments=segments,
        n_reps=n_reps,
    )
