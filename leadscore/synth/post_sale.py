"""After the sale: customers, their contracts, renewals and expansions.

An account becomes a customer when its first new-business deal is won (the sale). Every won
new-business or renewal deal is a contract that runs a year from the win; some weeks before
it is due, a renewal deal opens at the proposal stage. Its hidden quality and start regime
come from the account's health at that moment (a churned account's renewal is mostly lost),
so the deal chain's absorbing solve still gives its exact win probability. Expansion deals
arrive as a Poisson process whose rate follows the health state. A deal's outcome does not
feed back into health: the account's chain runs on its own from the sale.

Customers who bought before the CRM's first day (``installed_base``) join the ones its
leads made, with their current contract as an imported won deal; from there on they are
simulated alike.

Everything here draws from its own random generator, so the pre-sale simulation (leads and
new-business deals) does not change when this part does.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

import numpy as np

from leadscore.synth.accounts import Accounts
from leadscore.synth.deal_chain import DealRun, deal_win_probabilities
from leadscore.synth.deals import (
    DealBatch,
    DealClock,
    NewBusiness,
    run_batch,
    start_regime,
    troubled_probability,
)
from leadscore.synth.health import (
    CHURNED,
    N_HEALTH,
    CustomerConstants,
    HealthPath,
    expansion_rates,
    health_generator,
    simulate_health,
)
from leadscore.synth.installed_base import InstalledBase, draw_installed_base
from leadscore.synth.sampling import emit
from leadscore.synth.vocab import EXPANSION, PRODUCT_EFFECT, RENEWAL

CONTRACT_DAYS = 365.0
RENEWAL_LEAD_DAYS = (15.0, 35.0)  # a renewal deal opens this long before its due date
RENEWAL_STAGE = 3  # proposal
EXPANSION_STAGE = 1  # qualification
# By health state at the deal's creation: onboarding, healthy, at_risk, churned.
RENEWAL_QUALITY_SHIFT = np.array([0.1, 0.15, -1.0, -2.4])
RENEWAL_PARENT = 0.3  # weight of the renewed deal's quality in the renewal's
RENEWAL_REP = 0.5  # and of the owner's skill
RENEWAL_TROUBLED_SHIFT = np.array([0.0, -0.1, 0.3, 1.6])
EXPANSION_QUALITY_SHIFT = np.array([0.0, 0.0, -0.6, -2.0])
MAX_RENEWAL_ROUNDS = 10


@dataclass(frozen=True)
class Customers:
    """One row per customer account (index into accounts), sorted by account."""

    account: np.ndarray
    sale: np.ndarray  # day of the first won new-business deal
    anchor: np.ndarray  # global index of that deal
    constants: CustomerConstants
    generator: np.ndarray  # (n, 4, 4) health generator matrix
    expansion: np.ndarray  # (n, 4) expansion deals per day by state
    path: HealthPath

    @property
    def n(self) -> int:
        return int(self.account.size)

    def take(self, idx: np.ndarray) -> Customers:
        """The customers ``idx`` (increasing), renumbered from 0, with their spells."""
        pos = np.full(self.n, -1)
        pos[idx] = np.arange(idx.size)
        p = self.path
        keep = pos[p.customer] >= 0
        c = self.constants
        return Customers(
            self.account[idx], self.sale[idx], self.anchor[idx],
            CustomerConstants(*(getattr(c, f.name)[idx] for f in fields(c))),
            self.generator[idx], self.expansion[idx],
            HealthPath(pos[p.customer[keep]], p.start[keep], p.end[keep], p.state[keep]))

    def join(self, other: Customers) -> Customers:
        """These customers, then ``other``'s (renumbered after them)."""
        a, b = self.constants, other.constants
        pa_, pb = self.path, other.path
        return Customers(
            np.concatenate([self.account, other.account]),
            np.concatenate([self.sale, other.sale]),
            np.concatenate([self.anchor, other.anchor]),
            CustomerConstants(*(np.concatenate([getattr(a, f.name), getattr(b, f.name)])
                                for f in fields(a))),
            np.concatenate([self.generator, other.generator]),
            np.concatenate([self.expansion, other.expansion]),
            HealthPath(np.concatenate([pa_.customer, pb.customer + self.n]),
                       np.concatenate([pa_.start, pb.start]),
                       np.concatenate([pa_.end, pb.end]),
                       np.concatenate([pa_.state, pb.state])))


@dataclass(frozen=True)
class Contracts:
    """Every contract won before the data's end, and its renewal (global deal indices)."""

    customer: np.ndarray
    won_deal: np.ndarray
    start: np.ndarray
    due: np.ndarray
    renewal_created: np.ndarray
    base_quality: np.ndarray  # the renewal's quality before the health shift
    p_renew: np.ndarray  # (n, 4): P(renewal won | health state at its creation)
    renewal_deal: np.ndarray  # -1 when the renewal opens after the data's end


@dataclass(frozen=True)
class PostSale:
    accounts: Accounts  # the leads' accounts, then the installed customers'
    n_lead_accounts: int
    customers: Customers
    contracts: Contracts
    batches: list[DealBatch]
    runs: list[DealRun]


def renewal_win_probabilities(base_quality: np.ndarray) -> np.ndarray:
    """P(renewal won | health at its creation): mix the start regimes' absorbing solves."""
    n = base_quality.size
    if n == 0:
        return np.zeros((0, N_HEALTH))
    q = base_quality[:, None] + RENEWAL_QUALITY_SHIFT[None, :]
    p = deal_win_probabilities(q.ravel()).reshape(n, N_HEALTH, -1, 2)[:, :, RENEWAL_STAGE]
    troubled = troubled_probability(q, RENEWAL_TROUBLED_SHIFT[None, :])
    return np.asarray((1.0 - troubled) * p[..., 0] + troubled * p[..., 1])


def _customers(rng: np.random.Generator, accounts: Accounts, nb: NewBusiness,
               days: float) -> Customers:
    """Accounts with a won new-business deal, their constants, and their health path."""
    won = np.flatnonzero(nb.run.won & (nb.run.closed_at < days))
    order = won[np.lexsort((nb.run.closed_at[won], nb.batch.account[won]))]
    acc = nb.batch.account[order]
    first = np.r_[True, acc[1:] != acc[:-1]] if acc.size else np.zeros(0, dtype=bool)
    anchor = order[first]
    return _start_customers(rng, accounts, nb.batch.account[anchor], anchor,
                            nb.run.closed_at[anchor], nb.batch.product[anchor], days)


def _start_customers(rng: np.random.Generator, accounts: Accounts, account: np.ndarray,
                     anchor: np.ndarray, sale: np.ndarray, tier: np.ndarray,
                     days: float) -> Customers:
    """Constants drawn at the sale, and the health path from it."""
    n = anchor.size
    constants = CustomerConstants(
        fit=accounts.fit[account],
        size=(np.log(accounts.employees[account]) - 5.0) / 1.5,
        tier=tier.astype(float),
        adoption=rng.normal(0.0, 1.0, n),
        appetite=rng.normal(0.0, 1.0, n),
    )
    generator = health_generator(constants)
    path = simulate_health(rng, sale, generator, days)
    return Customers(account, sale, anchor, constants, generator, expansion_rates(constants),
                     path)


def _installed(rng: np.random.Generator, accounts: Accounts, n: int, rep_skill: np.ndarray,
               first_index: int, days: float) -> tuple[InstalledBase, Customers]:
    """The installed base still a customer when its current contract started; its accounts
    follow ``accounts`` and its imported deals are numbered from ``first_index``."""
    base = draw_installed_base(rng, n, rep_skill)
    m = base.n
    cands = _start_customers(rng, accounts.join(base.accounts), accounts.n + np.arange(m),
                             first_index + np.arange(m), base.sale, base.product, days)
    kept = np.flatnonzero(cands.path.state_at(np.arange(m), base.start) != CHURNED)
    k = kept.size
    return base.take(kept), replace(cands.take(kept), account=accounts.n + np.arange(k),
                                    anchor=first_index + np.arange(k))


def _imported_run(base: InstalledBase) -> DealRun:
    """Imported deals have no spells: won at creation."""
    e, i = np.array([]), np.array([], dtype=np.int64)
    return DealRun(i, e, e, i, i, i, base.start.copy(), np.ones(base.n, dtype=bool))


def _expansions(rng: np.random.Generator, customers: Customers, deal_quality: np.ndarray,
                deal_owner: np.ndarray, rep_skill: np.ndarray, fit: np.ndarray) -> DealBatch:
    """Poisson arrivals in each health spell from day 0; the deal follows the account's first
    win (``deal_quality`` and ``deal_owner`` by global deal index)."""
    path = customers.path
    rate = customers.expansion[path.customer, path.state][:, None]
    spell, created, _ = emit(rng, path.start, path.end, rate)
    seen = created >= 0
    spell, created = spell[seen], created[seen]
    order = np.lexsort((created, path.customer[spell]))
    spell, created = spell[order], created[order]
    cust = path.customer[spell]
    anchor = customers.anchor[cust]
    owner = deal_owner[anchor]
    account = customers.account[cust]
    m = created.size
    quality = (0.7 * deal_quality[anchor] + rep_skill[owner] + PRODUCT_EFFECT[EXPANSION]
               + 0.6 * fit[account] + EXPANSION_QUALITY_SHIFT[path.state[spell]]
               + rng.normal(0.0, 0.2, m))
    return DealBatch(
        lead=np.full(m, -1), account=account, created=created,
        product=np.full(m, EXPANSION), owner=owner,
        start_stage=np.full(m, EXPANSION_STAGE, dtype=np.int64), quality=quality,
        start_regime=start_regime(rng, quality), parent=anchor,
    )


def _new_contracts(rng: np.random.Generator, customer: np.ndarray, won_deal: np.ndarray,
                   start: np.ndarray, parent_quality: np.ndarray, owner: np.ndarray,
                   rep_skill: np.ndarray, fit: np.ndarray) -> Contracts:
    """Contracts starting at a win: due a year on, renewal opening some weeks before."""
    n = won_deal.size
    due = start + CONTRACT_DAYS
    lo, hi = RENEWAL_LEAD_DAYS
    renewal_created = due - (lo + (hi - lo) * rng.random(n))
    # A renewal turns on how the customer fares (the health shift at its creation) more
    # than on how the first sale went or who sells it.
    base_quality = (RENEWAL_PARENT * parent_quality + RENEWAL_REP * rep_skill[owner]
                    + PRODUCT_EFFECT[RENEWAL] + fit + rng.normal(0.0, 0.2, n))
    return Contracts(customer, won_deal, start, due, renewal_created, base_quality,
                     renewal_win_probabilities(base_quality), np.full(n, -1))


def _renewals(rng: np.random.Generator, contracts: Contracts, customers: Customers,
              owner: np.ndarray, days: float, first_index: int) -> tuple[DealBatch, np.ndarray]:
    """The renewal deals that open before the data's end, and which contracts they renew."""
    opens = np.flatnonzero(contracts.renewal_created < days)
    cust = contracts.customer[opens]
    created = contracts.renewal_created[opens]
    health = customers.path.state_at(cust, created)
    quality = contracts.base_quality[opens] + RENEWAL_QUALITY_SHIFT[health]
    m = opens.size
    batch = DealBatch(
        lead=np.full(m, -1), account=customers.account[cust], created=created,
        product=np.full(m, RENEWAL), owner=owner[opens],
        start_stage=np.full(m, RENEWAL_STAGE, dtype=np.int64), quality=quality,
        start_regime=start_regime(rng, quality, RENEWAL_TROUBLED_SHIFT[health]),
        parent=contracts.won_deal[opens],
    )
    contracts.renewal_deal[opens] = first_index + np.arange(m)
    return batch, opens


def _concat(parts: list[Contracts]) -> Contracts:
    fields = Contracts.__dataclass_fields__
    return Contracts(**{f: np.concatenate([getattr(p, f) for p in parts]) for f in fields})


def simulate_post_sale(rng: np.random.Generator, accounts: Accounts, nb: NewBusiness,
                       days: float, installed: int = 0) -> PostSale:
    """Health, the installed base, expansions, then renewal rounds until no contract's
    renewal opens in time."""
    clock: DealClock = nb.clock
    n_lead_accounts = accounts.n
    customers = _customers(rng, accounts, nb, days)
    batches: list[DealBatch] = []
    runs: list[DealRun] = []
    next_index = nb.batch.size
    deal_quality, deal_owner = nb.batch.quality, nb.batch.owner
    base: InstalledBase | None = None
    n_sold = customers.n
    if installed > 0:
        base, base_customers = _installed(rng, accounts, installed, nb.rep_skill, next_index,
                                          days)
        batches.append(base.contracts(accounts.n, next_index))
        runs.append(_imported_run(base))
        customers = customers.join(base_customers)
        accounts = accounts.join(base.accounts)
        deal_quality = np.concatenate([deal_quality, base.quality])
        deal_owner = np.concatenate([deal_owner, base.owner])
        next_index += base.n
    expansions = _expansions(rng, customers, deal_quality, deal_owner, nb.rep_skill,
                             accounts.fit)
    batches.append(expansions)
    runs.append(run_batch(rng, expansions, clock))
    next_index += expansions.size
    # First contracts: every won new-business deal on a customer account.
    won = np.flatnonzero(nb.run.won & (nb.run.closed_at < days))
    cust_of_account = np.full(accounts.n, -1)
    cust_of_account[customers.account] = np.arange(customers.n)
    fit06 = 0.6 * accounts.fit
    contracts = _new_contracts(
        rng, cust_of_account[nb.batch.account[won]], won, nb.run.closed_at[won],
        nb.batch.quality[won], nb.batch.owner[won], nb.rep_skill,
        fit06[nb.batch.account[won]])
    owners = nb.batch.owner[won]
    if base is not None and base.n:
        imported = nb.batch.size + np.arange(base.n)
        contracts = _concat([contracts, _new_contracts(
            rng, n_sold + np.arange(base.n), imported, base.start, base.quality, base.owner,
            nb.rep_skill, fit06[customers.account[n_sold:]])])
        owners = np.concatenate([owners, base.owner])
    parts = []
    for _round in range(MAX_RENEWAL_ROUNDS):
        if contracts.customer.size == 0:
            break
        batch, opens = _renewals(rng, contracts, customers, owners, days, next_index)
        parts.append(contracts)
        if batch.size == 0:
            break
        run = run_batch(rng, batch, clock)
        batches.append(batch)
        runs.append(run)
        renewed = np.flatnonzero(run.won & (run.closed_at < days))
        contracts = _new_contracts(
            rng, contracts.customer[opens[renewed]], next_index + renewed,
            run.closed_at[renewed], batch.quality[renewed], batch.owner[renewed],
            nb.rep_skill, fit06[batch.account[renewed]])
        owners = batch.owner[renewed]
        next_index += batch.size
    return PostSale(accounts, n_lead_accounts, customers,
                    _concat(parts) if parts else _empty_contracts(), batches, runs)


def _empty_contracts() -> Contracts:
    e = np.array([])
    i = np.array([], dtype=np.int64)
    return Contracts(i, i, e, e, e, e, np.zeros((0, N_HEALTH)), i)
