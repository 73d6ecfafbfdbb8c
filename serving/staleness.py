"""How old the data behind a score is, and the warnings when it is older than the score.

A score reads silence as real: a deal with no activity for months is stalled. That is
right when the data is current and wrong when it simply stops earlier: an export scored
as of today, a request that leaves out the recent activities. Batch scoring of files
therefore scores as of the data's own end unless told otherwise, and warns when told a
time far past it; the API warns, per entity, when the newest event sent with it is older
than ``stale_data_days``.
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel

from features.schema import TABLES
from features.snapshots import SNAPSHOT_LAG, event_columns

EVENT_FIELDS: frozenset[str] = frozenset(c for name in TABLES for c in event_columns(name))
"""Fields that date something that happened (``created_at``, ``occurred_at``,
``changed_at``, ``observed_at``, outcome times); never a planned ``close_date``."""


def as_of_after(data_end: pd.Timestamp) -> pd.Timestamp:
    """The default snapshot time of data ending at ``data_end``: ``SNAPSHOT_LAG`` after its
    newest event, so that event counts (features see rows strictly before the snapshot),
    as a training snapshot counts the event that triggered it."""
    return data_end + SNAPSHOT_LAG


def past_data_warning(as_of: pd.Timestamp, data_end: pd.Timestamp, days: int) -> str | None:
    """Why a snapshot time more than ``days`` after the data's newest event misleads
    (None when it is not; ``days`` 0 turns the warning off)."""
    gap = as_of - data_end
    if days <= 0 or gap <= pd.Timedelta(days=days):
        return None
    return (
        f"scoring as of {as_of:%Y-%m-%d}, {gap.days} days after the newest event in the data "
        f"({data_end:%Y-%m-%d}): the scores read those {gap.days} days of silence as real "
        "(deals stalled, no activity, close dates passed); leave out --as-of to score as of "
        "the data's end"
    )


def as_of_line(as_of: pd.Timestamp | None, data_end: pd.Timestamp | None,
               default: bool) -> str:
    """The snapshot time a file was scored at, and where it came from, in one line."""
    when = f"as of {as_of:%Y-%m-%d %H:%M:%S} UTC"
    if data_end is None:
        return f"{when} (--as-of); nothing in the data is dated"
    end = f"{data_end:%Y-%m-%d %H:%M:%S} UTC"
    if default:
        return f"{when}: just after the newest event in the data ({end}); --as-of to choose"
    return f"{when} (--as-of); the newest event in the data is {end}"


@functools.cache
def _fields(kind: type[BaseModel]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A record type's fields that date an event, and its fields that may hold records."""
    dated = tuple(n for n in kind.model_fields if n in EVENT_FIELDS)
    nested = tuple(n for n, f in kind.model_fields.items()
                   if typing.get_origin(f.annotation) is list)
    return dated, nested


def newest_event(record: BaseModel, now: datetime) -> datetime | None:
    """The newest time by ``now`` that a request's record, or a row sent inside it (its
    activities, history changes, signals, deals), dates something that happened; its
    creation when nothing else is sent. A time after ``now`` has not happened yet."""
    dated, nested = _fields(type(record))
    times = [t for n in dated if (t := getattr(record, n)) is not None and t <= now]
    for n in nested:
        times += [t for v in getattr(record, n) if isinstance(v, BaseModel)
                  if (t := newest_event(v, now)) is not None]
    return max(times, default=None)


def stale_warning(newest: datetime, now: datetime, days: int) -> str | None:
    """What a score misreads when the newest event sent is more than ``days`` old (None
    when it is not; ``days`` 0 turns the warning off)."""
    age = now - newest
    if days <= 0 or age <= timedelta(days=days):
        return None
    return (
        f"the newest event sent is {age.days} days old ({newest:%Y-%m-%d}): the score reads "
        f"the {age.days} days since as silence; if anything happened since, send it (or score "
        "the export with `leadscore score`, which scores as of its newest event)"
    )


def add_stale_warnings(
    records: Sequence[BaseModel], results: Sequence[Any], now: datetime, days: int
) -> None:
    """Append the stale-data warning to the result of each record whose newest event is
    more than ``days`` old; ``results`` (each with ``warnings``) in the records' order."""
    for record, result in zip(records, results, strict=True):
        newest = newest_event(record, now)
        line = None if newest is None else stale_warning(newest, now, days)
        if line is not None:
            result.warnings.append(line)
