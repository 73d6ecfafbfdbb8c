"""Accounts: the companies leads work at, with a hidden firmographic fit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leadscore.synth.sampling import choice
from leadscore.synth.vocab import (
    COUNTRY_EFFECT,
    COUNTRY_WEIGHTS,
    INDUSTRY_EFFECT,
    INDUSTRY_WEIGHTS,
)


@dataclass(frozen=True)
class Accounts:
    industry: np.ndarray
    country: np.ndarray
    employees: np.ndarray
    revenue: np.ndarray
    fit: np.ndarray
    """Hidden: how well the company fits what is sold (industry, country, size, noise)."""

    @property
    def n(self) -> int:
        return int(self.industry.size)

    def take(self, idx: np.ndarray) -> Accounts:
        return Accounts(*(getattr(self, f)[idx] for f in Accounts.__dataclass_fields__))

    def join(self, other: Accounts) -> Accounts:
        """These accounts, then ``other``'s (whose indices move up by ``self.n``)."""
        return Accounts(*(np.concatenate([getattr(self, f), getattr(other, f)])
                          for f in Accounts.__dataclass_fields__))


def simulate_accounts(rng: np.random.Generator, n_leads: int) -> Accounts:
    """One account per 2.5 leads."""
    return draw_accounts(rng, max(1, int(round(n_leads / 2.5))))


def draw_accounts(rng: np.random.Generator, n_acc: int) -> Accounts:
    """``n_acc`` companies; mid-market companies fit best."""
    industry = choice(rng, n_acc, INDUSTRY_WEIGHTS)
    country = choice(rng, n_acc, COUNTRY_WEIGHTS)
    employees = np.maximum(5, np.round(np.exp(rng.normal(5.0, 1.5, n_acc)))).astype(np.int64)
    size_effect = -0.12 * (np.log(employees) - 6.0) ** 2 + 0.25
    fit = (INDUSTRY_EFFECT[industry] + COUNTRY_EFFECT[country] + size_effect
           + rng.normal(0.0, 0.25, n_acc))
    revenue = np.round(employees * np.exp(rng.normal(np.log(180_000), 0.5, n_acc)), -3)
    return Accounts(industry, country, employees, revenue, fit)
