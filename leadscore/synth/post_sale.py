"""After the sale: customers, their contracts, renewals and expansions.

An account becomes a customer when its first new-business deal is won (the sale). Every won
new-business or renewal deal is a contract that runs a year from the win; some weeks before
it is due, a renewal deal opens at the proposal stage. Its hidden quality and start regime
come from the account's health at that moment (a churned account's renewal is mostly lost),
so the deal chain's absorbing solve still gives its exact win probability. Expansion deals
arrive as a Poisson process whose rate follows the health state. A deal's outcome does not
feed back into health: the account's chain runs on its own from the sale.

Everything here draws from its own random generator, so the pre-sale simulation (leads and
new-business deals) does not change when this part does.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.synth.accounts import Accounts
from leadscore.synth.deal_chain import DealRun, deal_win_probabilities
from leadscore.synth.deals import DealBatch, DealClock, NewBusiness, run_batch, start_regime
from leadscore.synth.health import (
    N_HEALTH,
    CustomerConstants,
    HealthPath,
    expansion_rates,
    health_generator,
    simulate_health,
)
from leadscore.synth.sampling import emit
from leadscore.synth.vocab import EXPANSION, PRODUCT_EFFECT, RENEWAL

CONTRACT_DAYS = 365.0
RENEWAL_LEAD_DAYS = (15.0, 35.0)  # a renewal deal opens this long before its due date
RENEWAL_STAGE = 3  # proposal
EXPANSION_STAGE = 1  # qualification
# By health state at the deal's creation: onboarding, healthy, at_risk, churned.
RENEWAL_QUALITY_SHIFT = np.array([0.1, 0.15, -0.4, -2.4])
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
    troubled = 1.0 / (1.0 + np.exp(1.6 + 0.8 * q - RENEWAL_TROUBLED_SHIFT[None, :]))
    return np.asarray((1.0 - troubled) * p[..., 0] + troubled * p[..., 1])


def _customers(rng: np.random.Generator, accounts: Accounts, nb: NewBusiness,
               days: float) -> Customers:
    """Accounts with a won new-business deal, their constants, and their health path."""
    won = np.flatnonzero(nb.run.won & (nb.run.closed_at < days))
    order = won[np.lexsort((nb.run.closed_at[won], nb.batch.account[won]))]
    acc = nb.batch.account[order]
    first = np.r_[True, acc[1:] != acc[:-1]] if acc.size else np.zeros(0, dtype=bool)
    anchor = order[first]
    account = nb.batch.account[anchor]
    n = anchor.size
    constants = CustomerConstants(
        fit=accounts.fit[account],
        size=(np.log(accounts.employees[account]) - 5.0) / 1.5,
        tier=nb.batch.product[anchor].astype(float),
        adoption=rng.normal(0.0, 1.0, n),
        appetite=rng.normal(0.0, 1.0, n),
    )
    generator = health_generator(constants)
    sale = nb.run.closed_at[anchor]
    path = simulate_health(rng, sale, generator, days)
    return Customers(account, sale, anchor, constants, generator, expansion_rates(constants),
                     path)


def _expansions(rng: np.random.Generator, customers: Customers, nb: NewBusiness,
                fit: np.ndarray) -> DealBatch:
    """Poisson arrivals in each health spell; the deal follows the account's first win."""
    path = customers.path
    rate = customers.expansion[path.customer, path.state][:, None]
    spell, created, _ = emit(rng, path.start, path.end, rate)
    order = np.lexsort((created, path.customer[spell]))
    spell, created = spell[order], created[order]
    cust = path.customer[spell]
    anchor = customers.anchor[cust]
    owner = nb.batch.owner[anchor]
    account = customers.account[cust]
    m = created.size
    quality = (0.7 * nb.batch.quality[anchor] + nb.rep_skill[owner] + PRODUCT_EFFECT[EXPANSION]
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
    base_quality = (0.7 * parent_quality + rep_skill[owner] + PRODUCT_EFFECT[RENEWAL] + fit
                    + rng.normal(0.0, 0.2, n))
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
                       days: float) -> PostSale:
    """Health, expansions, then renewal rounds until no contract's renewal opens in time."""
    clock: DealClock = nb.clock
    customers = _customers(rng, accounts, nb, days)
    next_index = nb.batch.size
    expansions = _expansions(rng, customers, nb, accounts.fit)
    batches, runs = [expansions], [run_batch(rng, expansions, clock)]
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
    parts = []
    owners = nb.batch.owner[won]
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
    return PostSale(customers, _concat(parts) if parts else _empty_contracts(), batches, runs)


def _empty_contracts() -> Contracts:
    e = np.array([])
    i = np.array([], dtype=np.int64)
    return Contracts(i, i, e, e, e, e, np.zeros((0, N_HEALTH)), i)
