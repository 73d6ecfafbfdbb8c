"""Calendar periods (months or quarters, UTC) and the window of each one seen as of a date."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import pandas as pd

PeriodKind = Literal["month", "quarter"]
PERIOD_KINDS: tuple[str, ...] = get_args(PeriodKind)


@dataclass(frozen=True)
class Window:
    """One period: events at ``start`` <= t < ``end`` and t <= ``as_of`` count in it."""

    label: str
    start: pd.Timestamp
    end: pd.Timestamp
    """Exclusive."""
    as_of: pd.Timestamp

    @property
    def complete(self) -> bool:
        """The period ended by the review's date (else its figures are to date)."""
        return self.end <= self.as_of

    @property
    def last(self) -> pd.Timestamp:
        """The latest time an event of the window can have: just before the period's end,
        or the date."""
        return min(self.end - pd.Timedelta(microseconds=1), self.as_of)

    def holds(self, times: pd.Series) -> pd.Series:
        """Which of ``times`` (UTC) fall in the window; NaT never does."""
        return ((times >= self.start) & (times < self.end) & (times <= self.as_of)).fillna(False)


def utc(ts: object) -> pd.Timestamp:
    out = pd.Timestamp(ts)
    return out.tz_localize("UTC") if out.tzinfo is None else out.tz_convert("UTC")


def check_kind(kind: str) -> PeriodKind:
    if kind not in PERIOD_KINDS:
        raise ValueError(f"unknown period {kind!r}: use {' or '.join(PERIOD_KINDS)}")
    return kind  # type: ignore[return-value]


def period_of(as_of: pd.Timestamp, kind: PeriodKind) -> Window:
    """The month or quarter holding ``as_of``."""
    as_of = utc(as_of)
    freq = "M" if kind == "month" else "Q"
    p = as_of.tz_localize(None).to_period(freq)
    start = p.start_time.tz_localize("UTC")
    end = (p + 1).start_time.tz_localize("UTC")
    label = f"{p.year}-{p.month:02d}" if kind == "month" else f"{p.year}-Q{p.quarter}"
    return Window(label, start, end, as_of)


def windows(as_of: pd.Timestamp, kind: PeriodKind, before: int) -> list[Window]:
    """The period holding ``as_of`` and the ``before`` periods before it, oldest first."""
    current = period_of(as_of, kind)
    out = [current]
    for _ in range(before):
        prev = period_of(out[-1].start - pd.Timedelta(microseconds=1), kind)
        out.append(Window(prev.label, prev.start, prev.end, current.as_of))
    return out[::-1]


def all_time(first: pd.Timestamp, last: pd.Timestamp) -> Window:
    """One window over the whole history, from ``first`` to ``last`` included."""
    return Window("all", utc(first), utc(last) + pd.Timedelta(microseconds=1), utc(last))
