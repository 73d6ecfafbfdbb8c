"""Calendar periods (months or quarters, UTC) a forecast is made for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import pandas as pd

PeriodKind = Literal["month", "quarter"]
PERIOD_KINDS: tuple[PeriodKind, ...] = ("month", "quarter")
_FREQ = {"month": "M", "quarter": "Q"}


def utc(ts: pd.Timestamp | str) -> pd.Timestamp:
    out = pd.Timestamp(ts)
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


@dataclass(frozen=True)
class Period:
    """One calendar period: ``start`` included, ``end`` excluded."""

    kind: PeriodKind
    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def label(self) -> str:
        return str(pd.Period(self.start.tz_localize(None), freq=_FREQ[self.kind]))

    def next(self) -> Period:
        return period_of(self.end, self.kind)

    def previous(self) -> Period:
        return period_of(self.start - pd.Timedelta(microseconds=1), self.kind)

    def contains(self, ts: pd.Timestamp) -> bool:
        return bool(self.start <= ts < self.end)


def check_kind(kind: str) -> PeriodKind:
    if kind not in PERIOD_KINDS:
        raise ValueError(f"unknown period {kind!r}; expected one of {', '.join(PERIOD_KINDS)}")
    return kind


def period_of(ts: pd.Timestamp | str, kind: str) -> Period:
    """The month or quarter that holds ``ts``."""
    k = check_kind(kind)
    p = pd.Period(utc(ts).tz_localize(None), freq=_FREQ[k])
    start = p.start_time.tz_localize("UTC")
    end = (p + 1).start_time.tz_localize("UTC")
    return Period(k, start, end)
