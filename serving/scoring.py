"""Scoring: contract tables -> feature_columns -> model -> probabilities and contributions.

A request's tables (``serving.requests``) go through ``feature_columns``, the computation
of the very ``build_features`` that built the training set, with the snapshot time set to
now, so what the model sees in serving is what it saw in training. Batch scoring of files
(``leadscore score``) uses the same :func:`score_tables`, with the files' DataFrames as
tables; ``serving.results`` turns the scores into what a rep reads.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, overload

import numpy as np
import pandas as pd

from features.build import EXISTS, Columns, category_dtype, entity_columns, select_features
from features.columns import AnyTables, ColumnTable, epoch_ns
from features.declarations import FeatureSet
from features.reasons import ContextPart, Value
from serving.explain import explainer, plain_value
from serving.models import LoadedModel


@functools.cache
def _level_names(name: str, learned: tuple[str, ...] = ()) -> np.ndarray:
    """A category feature's levels by code, with None at code -1 (the last slot)."""
    levels = list(category_dtype(name, learned).categories)
    out = np.empty(len(levels) + 1, dtype=object)
    out[:] = [*levels, None]
    return out


@dataclass(frozen=True)
class Gaps:
    """What one entity's request left out, or sent in a form the model cannot read."""

    context: dict[ContextPart, str] = field(default_factory=dict)
    """Context parts left out, each with where to send it ("account A1 in
    context.accounts"): their features are read as not known."""
    categories: dict[str, str] = field(default_factory=dict)
    """Category features by name with the value as sent (checked against the levels
    training knew)."""
    attributes: tuple[str, ...] = ()
    """The names of the record's ``attributes`` (an export's own columns) as sent."""


NO_GAPS = Gaps()


TREND_DAYS = (7, 28)
"""How many days before the request's time a result's trend scores it again."""


@dataclass(frozen=True)
class Earlier:
    """The same entities scored as of ``days`` before the request's time."""

    days: int
    probabilities: np.ndarray
    """NaN where the entity was not created yet then."""
    columns: dict[str, np.ndarray]
    """The features then, as ``Scored.columns`` holds them now."""


@dataclass(frozen=True)
class Scored:
    """Features, probabilities and (optionally) contributions, in the order asked for."""

    ids: list[str]
    feature_set: FeatureSet
    columns: dict[str, np.ndarray]
    """``feature_columns``' arrays: one value per id, categories as codes."""
    probabilities: np.ndarray
    contributions: np.ndarray | None
    """Per-feature pred_contrib without the bias column, aligned with feature_set.names."""
    gaps: Sequence[Gaps] = ()
    """Per id, what its request left out (empty: nothing known to be missing)."""
    earlier: Sequence[Earlier] = ()
    """The scores as of earlier times (the trend), when asked for."""
    ignored: frozenset[str] = frozenset()
    """Features the model was fit without (the leakage audit's ``excluded_features``): it
    reads and ignores them, so they are never a reason nor named as not known."""
    rate_reasons: tuple[str, Mapping[str, str]] | None = None
    """A rate model's column and, per value, the sentence its rate reads as ("deals in
    proposal win 45 % of the time"): the reason that column gives, in place of its value."""

    def gap(self, i: int) -> Gaps:
        return self.gaps[i] if self.gaps else NO_GAPS

    def feature_values(self, unread: Collection[str] = ()) -> FeatureValues:
        """Each row's feature values by name, as :meth:`values` holds them (plain Python
        values), each column converted once and only when read; ``unread`` features (the
        model ignores them) read as None."""
        return FeatureValues(self, unread)

    def values(self) -> np.ndarray:
        """Feature values in declared order as an object matrix, one row per id: category
        names, True/False, numbers, and None where not known."""
        specs = self.feature_set.features
        out = np.empty((len(self.ids), len(specs)), dtype=object)
        for i, spec in enumerate(specs):
            col = self.columns[spec.name]
            if spec.dtype == "category":
                out[:, i] = _level_names(spec.name, spec.levels)[col]
            elif spec.dtype == "bool":
                out[:, i] = [None if v != v else v == 1.0 for v in col.tolist()]
            else:
                out[:, i] = col.tolist()
        return out

    def amounts(self) -> list[float | None]:
        """The deal amount each row was scored with (None: not known or not a feature)."""
        col = self.columns.get("amount")
        if col is None:
            return [None] * len(self.ids)
        return [None if a != a else float(a) for a in col.tolist()]


class FeatureValues(Sequence["RowValues"]):
    """A scored batch's rows of feature values by name (:class:`RowValues`), read from
    its columns: a column is turned into plain Python values (category names, True/False,
    numbers, None where not known, as :meth:`Scored.values` and
    ``serving.explain.plain_value`` give them) the first time a row reads it, so a batch
    builds no dictionary per row and converts only the features its reasons and flags
    read."""

    def __init__(self, scored: Scored, unread: Collection[str] = ()) -> None:
        self._scored = scored
        self._specs = {s.name: s for s in scored.feature_set.features}
        self._names = tuple(self._specs)
        self._columns: dict[str, list[Value]] = {
            name: [None] * len(scored.ids) for name in unread if name in self._specs}

    def column(self, name: str) -> list[Value]:
        found = self._columns.get(name)
        if found is None:
            found = self._columns[name] = self._convert(name)
        return found

    def _convert(self, name: str) -> list[Value]:
        spec = self._specs[name]  # KeyError: not a feature of the set
        col = self._scored.columns[name]
        if spec.dtype == "category":
            names = _level_names(spec.name, spec.levels)
            plain = np.empty(len(names), dtype=object)
            plain[:] = [plain_value(v) for v in names]
            levels: list[Value] = plain[col].tolist()
            return levels
        if spec.dtype == "bool":
            return [None if v != v else v == 1.0 for v in col.tolist()]
        if col.dtype.kind == "f":  # plain_value of each: Python floats, None where not finite
            values: list[Value] = col.tolist()
            for i in np.flatnonzero(~np.isfinite(col)).tolist():
                values[i] = None
            return values
        if col.dtype.kind in "iub":  # Python ints and bools as they are
            exact: list[Value] = col.tolist()
            return exact
        return [plain_value(v) for v in col.tolist()]

    def __len__(self) -> int:
        return len(self._scored.ids)

    @overload
    def __getitem__(self, i: int) -> RowValues: ...

    @overload
    def __getitem__(self, i: slice) -> list[RowValues]: ...

    def __getitem__(self, i: int | slice) -> RowValues | list[RowValues]:
        if isinstance(i, slice):
            return [RowValues(self, j) for j in range(len(self))[i]]
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return RowValues(self, i % len(self))


class RowValues(Mapping[str, Value]):
    """One row of :class:`FeatureValues`: the mapping ``serving.explain.row_values`` gives,
    every feature of the set by name in declared order, without building it."""

    __slots__ = ("_i", "_rows")

    def __init__(self, rows: FeatureValues, i: int) -> None:
        self._rows = rows
        self._i = i

    def __getitem__(self, name: str) -> Value:
        return self._rows.column(name)[self._i]

    def get(self, name: str, default: Any = None) -> Any:
        if name not in self._rows._specs:
            return default
        return self._rows.column(name)[self._i]

    def __contains__(self, name: object) -> bool:
        return name in self._rows._specs

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows._names)

    def __len__(self) -> int:
        return len(self._rows._names)


def unknown_context(
    columns: dict[str, np.ndarray], feature_set: FeatureSet, gaps: Sequence[Gaps]
) -> dict[str, np.ndarray]:
    """``columns`` with the features of each row's left-out context parts read as not
    known (NaN; category code -1) rather than as the zeros the tables without them give.

    LightGBM reads NaN in a feature that had none in training as 0, so the probability
    is the same; what changes is that no reason quotes the zero and the answer says what
    it did not know.
    """
    ex = explainer(feature_set)
    out = dict(columns)
    for part in {p for g in gaps for p in g.context}:
        rows = np.array([part in g.context for g in gaps])
        for name in ex.context_features(part):
            col = out[name]
            if col.dtype.kind in "iu" and feature_set.spec(name).dtype == "category":
                out[name] = np.where(rows, -1, col).astype(col.dtype)
            else:
                out[name] = np.where(rows, np.nan, col.astype(np.float64))
    return out


def entity_features(
    tables: AnyTables, key: str, ids: list[str], as_of: datetime | pd.Timestamp,
    earlier_days: Sequence[int] = (),
) -> Columns:
    """Every feature of the entities ``ids`` (keyed by ``key``) as of ``as_of`` and then as
    of each of ``earlier_days`` before it, in one pass: blocks of ``len(ids)`` rows."""
    times = [as_of, *(as_of - timedelta(days=d) for d in earlier_days)]
    n = len(ids)
    key_values = np.empty(n * len(times), dtype=object)
    key_values[:] = list(ids) * len(times)
    as_of_ns = np.repeat(np.array([epoch_ns(t) for t in times], dtype=np.int64), n)
    snapshots = ColumnTable({key: key_values, "as_of": as_of_ns}, len(key_values))
    return entity_columns(tables, snapshots, key)


def _block(columns: Columns, start: int, stop: int) -> Columns:
    return {name: values[start:stop] for name, values in columns.items()}


def score_tables(
    model: LoadedModel,
    tables: AnyTables,
    ids: list[str],
    as_of: datetime | pd.Timestamp,
    explain: bool = True,
    gaps: Sequence[Gaps] = (),
    entity: Columns | None = None,
    trend_days: Sequence[int] = (),
) -> Scored:
    """Score the entities ``ids`` as of ``as_of`` through the training feature code, and
    as of each of ``trend_days`` before it (``Scored.earlier``).

    ``feature_columns`` is what ``build_features`` runs before it types a DataFrame; the
    model reads its arrays straight into its float matrix, so nothing here builds or
    reads a DataFrame (a few hundred microseconds a request). The tests hold the result
    to the offline model's on ``build_features``' frame. ``entity``: the entity's columns
    from :func:`entity_features` with the same ``trend_days`` (models of one entity on one
    request share them). The earlier times are scored in the same matrix and not
    explained: one booster call serves all of them.
    """
    feature_set: FeatureSet = model.model.feature_set
    n, blocks = len(ids), 1 + len(trend_days)
    if entity is None:
        entity = entity_features(tables, feature_set.entity_key, ids, as_of, trend_days)
    columns = select_features(entity, feature_set)
    if any(g.context for g in gaps):
        columns = unknown_context(columns, feature_set, list(gaps) * blocks)
    matrix = model.model.column_matrix(columns)
    probabilities, contributions = model.model.score_matrix(
        matrix, contributions=explain, explain_rows=n
    )
    probabilities = np.asarray(probabilities, dtype=float)
    earlier = []
    for j, days in enumerate(trend_days, start=1):
        rows = slice(j * n, (j + 1) * n)
        earlier.append(Earlier(
            days=days,
            probabilities=np.where(entity[EXISTS][rows], probabilities[rows], np.nan),
            columns=_block(columns, j * n, (j + 1) * n),
        ))
    return Scored(
        ids=list(ids),
        feature_set=feature_set,
        columns=columns if blocks == 1 else _block(columns, 0, n),
        probabilities=probabilities[:n],
        contributions=None if contributions is None else contributions[:, :-1],
        gaps=list(gaps),
        earlier=earlier,
        ignored=frozenset(getattr(model.model, "metadata", {}).get("excluded_features") or ()),
        rate_reasons=rate_reasons(model.model),
    )


def rate_reasons(model: Any) -> tuple[str, Mapping[str, str]] | None:
    """A rate model's column and its sentences per value (None: not a rate model)."""
    info = (getattr(model, "metadata", None) or {}).get("rate_model")
    if not isinstance(info, dict) or not info.get("column"):
        return None
    return str(info["column"]), {str(k): str(v) for k, v in (info.get("reasons") or {}).items()}
