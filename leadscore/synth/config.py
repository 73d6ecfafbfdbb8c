"""What a generated CRM is asked for: size, seed and period."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class GeneratorConfig:
    n_leads: int
    seed: int = 0
    start: str = "2024-01-01"
    months: int = 24
    installed_base: int | None = None  # customers from before day 0; None: 6 per 100 leads
    drift: bool = False
    """The later months shift (``leadscore.synth.drift``)."""

    @property
    def drift_start_day(self) -> float | None:
        """Day offset from which the history drifts; None: it does not."""
        from leadscore.synth.drift import DRIFT_FROM

        return DRIFT_FROM * self.days if self.drift else None

    @property
    def installed(self) -> int:
        from leadscore.synth.installed_base import INSTALLED_BASE_PER_LEAD

        if self.installed_base is not None:
            return self.installed_base
        return int(round(self.n_leads * INSTALLED_BASE_PER_LEAD))

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start, tz="UTC")

    @property
    def end_ts(self) -> pd.Timestamp:
        return self.start_ts + pd.DateOffset(months=self.months)

    @property
    def days(self) -> float:
        return float((self.end_ts - self.start_ts) / pd.Timedelta(days=1))

    @property
    def start_ns(self) -> int:
        return int(self.start_ts.value)
