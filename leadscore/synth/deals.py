"""Reps and the rounds of deals: new business from qualified leads, then what won deals bring.

Each deal has a hidden quality (the lead's intent, the rep's skill, the product, the
account's fit, noise) and a hidden start regime; ``deal_chain`` runs it. Won deals bring
renewals and expansions (deals with no lead) in the next round.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.synth.accounts import Accounts
from leadscore.synth.config import GeneratorConfig
from leadscore.synth.deal_chain import DealRun, simulate_deals
from leadscore.synth.leads import Leads
from leadscore.synth.sampling import quarter_windows, sigmoid
from leadscore.synth.vocab import EXPANSION, PRODUCT_EFFECT, RENEWAL

MAX_ROUNDS = 6
SIMULATED_YEARS_PAST_END = 3  # deals keep running this long past the data's end


@dataclass
class DealBatch:
    """Deals created in one round (indices into accounts, leads, reps, the previous batch)."""

    lead: np.ndarray
    account: np.ndarray
    created: np.ndarray
    product: np.ndarray
    owner: np.ndarray
    start_stage: np.ndarray
    base_quality: np.ndarray
    parent: np.ndarray | None = None  # index of the won deal in the previous batch
    quality: np.ndarray | None = None
    start_regime: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(self.created.size)


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
    """Every deal of every round in one index space (new business first)."""

    lead: np.ndarray
    account: np.ndarray
    created: np.ndarray
    product: np.ndarray
    owner: np.ndarray
    start_stage: np.ndarray
    quality: np.ndarray
    closed: np.ndarray  # NaN while open at the simulation's horizon
    won: np.ndarray
    parent: np.ndarray  # the won deal a renewal or expansion follows, -1 for new business
    round: np.ndarray  # 0 for new business, k for deals that follow a deal of round k - 1
    segments: DealSegments
    n_reps: int

    @property
    def n(self) -> int:
        return int(self.created.size)


def _new_business(rng: np.random.Generator, leads: Leads, accounts: Accounts, n_reps: int,
                  days: float) -> DealBatch:
    """Most qualified leads become a deal within two days; the product follows company size."""
    to_opp = ~np.isnan(leads.t_qual) & (leads.t_qual < days) & (rng.random(leads.n) < 0.9)
    opp_lead = np.flatnonzero(to_opp)
    opp_created = leads.t_qual[opp_lead] + rng.random(opp_lead.size) * 2.0
    keep = opp_created < days
    opp_lead, opp_created = opp_lead[keep], opp_created[keep]
    n0 = opp_lead.size
    emp = accounts.employees[leads.account[opp_lead]]
    prod = np.where(emp > 1500, 2, np.where(emp > 150, 1, 0))
    prod = np.where(rng.random(n0) < 0.2, rng.integers(0, 3, n0), prod)
    owner = rng.integers(0, n_reps, n0)
    return DealBatch(
        lead=opp_lead,
        account=leads.account[opp_lead],
        created=opp_created,
        product=prod,
        owner=owner,
        start_stage=np.zeros(n0, dtype=np.int64),
        base_quality=0.3 * leads.z[opp_lead],
    )


def _run_round(rng: np.random.Generator, batch: DealBatch, rep_skill: np.ndarray,
               fit: np.ndarray, windows: np.ndarray, horizon: float) -> DealRun:
    """Draw each deal's hidden quality and start regime, then run its chain."""
    m = batch.size
    quality = (batch.base_quality + rep_skill[batch.owner]
               + PRODUCT_EFFECT[batch.product] + 0.6 * fit[batch.account]
               + rng.normal(0.0, 0.2, m))
    start_regime = (rng.random(m) < sigmoid(-1.6 - 0.8 * quality)).astype(np.int64)
    batch.quality = quality
    batch.start_regime = start_regime
    return simulate_deals(rng, batch.created, batch.start_stage, start_regime, quality,
                          windows, horizon)


def _post_purchase(rng: np.random.Generator, batch: DealBatch, run: DealRun,
                   days: float) -> DealBatch:
    """Renewals a year on (85 %), expansions within the year (30 %), for won deals."""
    assert batch.quality is not None
    won_idx = np.flatnonzero(run.won & (run.closed_at < days))
    renew_at = run.closed_at[won_idx] + 330.0 + rng.random(won_idx.size) * 20.0
    renews = rng.random(won_idx.size) < 0.85
    expand = rng.random(won_idx.size) < 0.3
    expand_at = run.closed_at[won_idx] + 60.0 + rng.random(won_idx.size) * 240.0
    parent = np.concatenate([won_idx[renews], won_idx[expand]])
    created = np.concatenate([renew_at[renews], expand_at[expand]])
    kind = np.concatenate([np.full(renews.sum(), RENEWAL), np.full(expand.sum(), EXPANSION)])
    ok = created < days
    parent, created, kind = parent[ok], created[ok], kind[ok]
    return DealBatch(
        lead=np.full(parent.size, -1),
        account=batch.account[parent],
        created=created,
        product=kind,
        owner=batch.owner[parent],
        start_stage=np.where(kind == RENEWAL, 3, 1).astype(np.int64),
        base_quality=0.7 * batch.quality[parent],
        parent=parent,
    )


def _flatten(batches: list[DealBatch], runs: list[DealRun], n_reps: int) -> Deals:
    """One deal index space: round by round, so every parent comes before its follow-ons."""
    offsets = np.cumsum([0] + [b.size for b in batches])
    n_opp = int(offsets[-1])

    def cat(values: list[np.ndarray | None]) -> np.ndarray:
        kept = [v for v in values if v is not None]
        return np.concatenate(kept) if kept else np.array([])

    parent = np.full(n_opp, -1)
    for k, b in enumerate(batches):
        if b.parent is not None:
            parent[offsets[k]: offsets[k + 1]] = offsets[k - 1] + b.parent
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
        round=np.repeat(np.arange(len(batches)), [b.size for b in batches]).astype(np.int64),
        segments=segments,
        n_reps=n_reps,
    )


def simulate_deal_rounds(rng: np.random.Generator, cfg: GeneratorConfig, accounts: Accounts,
                         leads: Leads) -> Deals:
    """Reps, new business, and up to MAX_ROUNDS - 1 rounds of renewals and expansions."""
    n_reps = max(4, cfg.n_leads // 1000)
    rep_skill = rng.normal(0.0, 0.5, n_reps)
    horizon = cfg.days + SIMULATED_YEARS_PAST_END * 365.0
    windows = quarter_windows(cfg, horizon)
    batch = _new_business(rng, leads, accounts, n_reps, cfg.days)
    batches: list[DealBatch] = []
    runs: list[DealRun] = []
    for _round in range(MAX_ROUNDS):
        if batch.size == 0:
            break
        run = _run_round(rng, batch, rep_skill, accounts.fit, windows, horizon)
        batches.append(batch)
        runs.append(run)
        batch = _post_purchase(rng, batch, run, cfg.days)
    return _flatten(batches, runs, n_reps)
