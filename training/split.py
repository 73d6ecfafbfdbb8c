"""Time-ordered train / validation / test split of a snapshot frame.

Random splits over time-ordered history leak the future. Here every entity belongs
to exactly one period, chosen by when it first appears (its first snapshot); the
periods are cut by time, and rows of an earlier period's entities that fall after
that period's end are dropped. So every validation row is later than every
training row, every test row later than every validation row, and no entity's
outcome is learned in one period and scored in another.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class TimeSplit:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    validation_start: pd.Timestamp
    test_start: pd.Timestamp


def time_split(
    frame: pd.DataFrame,
    entity_key: str,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.2,
    gap_days: int = 0,
    time_column: str = "as_of",
    censor_days: int = 0,
    data_end: pd.Timestamp | None = None,
) -> TimeSplit:
    """Split snapshots by time into train, validation and test periods.

    The cut points are the quantiles of the entities' first-snapshot times, so the
    fractions are fractions of entities. ``gap_days`` additionally drops an earlier
    period's rows in the last ``gap_days`` before the next period starts, so labels
    that resolve within a horizon do not overlap the next period.

    ``censor_days`` leaves out entities first seen in the last ``censor_days`` before
    ``data_end`` (default: the latest snapshot). For labels that resolve at an
    unknown time (a deal's outcome), such recent entities are labelled only if they
    resolved quickly, which biases any metric computed on them.
    """
    if not 0 < validation_fraction < 1 or not 0 < test_fraction < 1:
        raise ValueError("fractions must be in (0, 1)")
    if validation_fraction + test_fraction >= 1:
        raise ValueError("validation + test fractions must leave rows to train on")
    if frame.empty:
        raise ValueError("cannot split an empty frame")
    if censor_days > 0:
        end = data_end if data_end is not None else frame[time_column].max()
        first_seen = frame[time_column].groupby(frame[entity_key], observed=True).transform("min")
        frame = frame.loc[first_seen < end - pd.Timedelta(days=censor_days)]
        if frame.empty:
            raise ValueError(f"no entity is older than censor_days={censor_days}")
    times = frame[time_column]
    first = times.groupby(frame[entity_key], sort=False, observed=True).transform("min")
    starts = first.groupby(frame[entity_key], sort=False, observed=True).first()
    ordered = starts.sort_values(kind="mergesort")
    n = len(ordered)
    i_val = int(round(n * (1 - validation_fraction - test_fraction)))
    i_test = int(round(n * (1 - test_fraction)))
    if not 0 < i_val < i_test < n:
        raise ValueError(f"too few entities ({n}) to split three ways")
    validation_start = ordered.iloc[i_val]
    test_start = ordered.iloc[i_test]
    if not validation_start < test_start:
        raise ValueError("validation and test periods would start at the same time")
    gap = pd.Timedelta(days=gap_days)
    is_train = (first < validation_start) & (times < validation_start - gap)
    is_val = (
        (first >= validation_start) & (first < test_start) & (times < test_start - gap)
    )
    is_test = first >= test_start
    return TimeSplit(
        train=frame.loc[is_train],
        validation=frame.loc[is_val],
        test=frame.loc[is_test],
        validation_start=validation_start,
        test_start=test_start,
    )


def strict_backtest(split: TimeSplit, resolved_at: pd.Series) -> TimeSplit:
    """``split`` without the training and validation rows whose label was not known yet
    when the test period starts.

    ``resolved_at`` gives, per row of the split frame (same index), when its label became
    known (a deal's close); a missing time counts as not known. A model fit on what is
    left is the one a team could have trained on the test period's first day, so its test
    figures are the honest ones; the ordinary split also learns from deals that were still
    open then and closed later, inside the test period. Test rows are kept as they are.
    """

    def known(part: pd.DataFrame) -> pd.DataFrame:
        when = resolved_at.reindex(part.index)
        return part.loc[when.notna().to_numpy() & (when < split.test_start).to_numpy()]

    return replace(split, train=known(split.train), validation=known(split.validation))


def grouped_folds(groups: pd.Series, k: int, seed: int) -> np.ndarray:
    """Each row's fold (0..k-1) for grouped k-fold cross-validation: the groups (entities,
    or accounts) shuffled by ``seed`` and dealt round-robin, so every group is in one fold
    and the folds hold nearly equal numbers of groups."""
    codes, uniques = pd.factorize(groups, sort=True)
    if len(uniques) < k:
        raise ValueError(f"too few entities ({len(uniques)}) for {k} folds")
    order = np.random.default_rng(seed).permutation(len(uniques))
    fold_of_group = np.empty(len(uniques), dtype=np.int64)
    fold_of_group[order] = np.arange(len(uniques)) % k
    return fold_of_group[codes]
