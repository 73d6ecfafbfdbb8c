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
