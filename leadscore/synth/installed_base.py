"""The installed base: customers who bought before the CRM's first day.

A CRM export of two years is not a company's first two years: most of the renewals it
records belong to customers won earlier. Each installed customer is a company (drawn like
the others, kept more often when it fits well) that bought some years before day 0 and
renewed every year since. The CRM holds its current contract as an imported won deal,
created and closed on the contract's start, in the last year before day 0 (its renewal
opens after day 0); no lead, and nothing of its past before day 0 but that deal. Its hidden
health runs from the first sale; an account whose health had churned before its current
contract started would not have renewed it, so it is not in the base.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.synth.accounts import Accounts, draw_accounts
from leadscore.synth.deals import DealBatch, draw_product
from leadscore.synth.sampling import choice, sigmoid
from leadscore.synth.vocab import PRODUCT_EFFECT

INSTALLED_BASE_PER_LEAD = 0.06  # installed customers drawn per lead of the export
# Whole years of renewals before the current contract (0: the current one is the first).
TENURE_YEAR_WEIGHTS = np.array([0.3, 0.25, 0.2, 0.15, 0.1])
# The current contract started this many days before day 0: late enough that its renewal,
# opening up to 35 days before it is due, opens inside the CRM's span.
CURRENT_START_DAYS = (330.0, 0.0)
CLOSED_WON_STAGE = 5  # the creation row of an imported deal is its closed_won row
# A won deal's quality sits above the mean of all deals' (what won it).
WON_QUALITY = (0.6, 0.45)


@dataclass(frozen=True)
class InstalledBase:
    """Candidate installed customers; ``simulate_post_sale`` keeps those not churned."""

    accounts: Accounts
    sale: np.ndarray  # day of the first sale (negative)
    start: np.ndarray  # day the current contract started (negative)
    product: np.ndarray
    owner: np.ndarray
    quality: np.ndarray

    @property
    def n(self) -> int:
        return int(self.sale.size)

    def take(self, idx: np.ndarray) -> InstalledBase:
        return InstalledBase(self.accounts.take(idx), self.sale[idx], self.start[idx],
                             self.product[idx], self.owner[idx], self.quality[idx])

    def contracts(self, first_account: int, first_index: int) -> DealBatch:
        """The imported current contracts, as deals numbered from ``first_index``."""
        n = self.n
        return DealBatch(
            lead=np.full(n, -1), account=first_account + np.arange(n), created=self.start,
            product=self.product, owner=self.owner,
            start_stage=np.full(n, CLOSED_WON_STAGE, dtype=np.int64), quality=self.quality,
            start_regime=np.zeros(n, dtype=np.int64), parent=np.full(n, -1), imported=True,
        )


def draw_installed_base(rng: np.random.Generator, n: int, rep_skill: np.ndarray) -> InstalledBase:
    """``n`` candidates: the company, its first sale, its current contract and that deal."""
    pool = draw_accounts(rng, 3 * n)
    fits = np.flatnonzero(rng.random(pool.n) < sigmoid(2.0 * pool.fit))
    accounts = pool.take(fits[:n])
    m = accounts.n
    hi, lo = CURRENT_START_DAYS
    start = -(lo + (hi - lo) * rng.random(m))
    sale = start - 365.0 * choice(rng, m, TENURE_YEAR_WEIGHTS)
    product = draw_product(rng, accounts.employees)
    owner = rng.integers(0, rep_skill.size, m)
    mean, sd = WON_QUALITY
    quality = (rep_skill[owner] + PRODUCT_EFFECT[product] + 0.6 * accounts.fit
               + rng.normal(mean, sd, m))
    return InstalledBase(accounts, sale, start, product, owner, quality)
