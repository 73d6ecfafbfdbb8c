"""Reasons a rep can act on, from LightGBM's per-feature contributions.

The features of one topic (``features.reasons``: a kind of activity over its windows, the
close date with its pushes) become one reason, their contributions summed, in the topic's
sentence. What is not known is never a reason: it is named once in the result's warnings.
An absence (no demos, never reached out) raises the score only where the model was
constrained to read it so (every feature saying it is monotone decreasing); otherwise
it is a reason against or none. A deal's risk flags keep the topics they state out of the
reasons for (``exclude_up``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from features.build import spec_dtype
from features.declarations import FeatureSet
from features.reasons import UNKNOWN_LEVELS, ContextPart, Topic, Value, Values, topics_for
from features.sets import CATEGORY_LEVELS

TOP_K = 3

KNOWN_ROWS_MIN = 8
"""From this many rows, which topics are known is read for the whole batch at once."""


class Factor(NamedTuple):
    """One topic's push on one score."""

    topic: str
    text: str
    actionable: bool
    contribution: float
    values: dict[str, Value]


@dataclass(frozen=True)
class Explanation:
    up: list[Factor]
    down: list[Factor]
    unknown: list[str]
    """Labels of the topics not known, other than those of ``absent`` context parts."""


def plain_value(value: Any) -> float | int | str | bool | None:
    """A JSON-able Python value: numpy scalars unwrapped, NaN/NA/NaT as None."""
    kind = type(value)
    if kind is float:  # the common case first: ``Scored.values()`` holds Python scalars
        return value if math.isfinite(value) else None
    if kind is int or kind is str or kind is bool:
        return value
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, bool | int | float | str):
        return value
    return str(value)


class Explainer:
    """The topics of one feature set, with where their features sit in a contribution row
    and whether the model may read their absence as good."""

    def __init__(self, feature_set: FeatureSet) -> None:
        self.feature_set = feature_set
        self.names = tuple(feature_set.names)
        self.categorical = frozenset(feature_set.categorical)
        self.levels = {f.name: frozenset(f.levels or CATEGORY_LEVELS.get(f.name, ()))
                       for f in feature_set.features if f.dtype == "category"}
        """Per category feature, the levels training knew (learned or declared)."""
        self.topics = topics_for(feature_set)
        position = {name: i for i, name in enumerate(self.names)}
        self._positions = [np.array([position[f] for f in t.features], dtype=np.intp)
                           for t in self.topics]
        """Per topic, where its features sit in a contribution row."""
        self._members = np.zeros((len(self.names), len(self.topics)))
        """Features x topics, 1 where the feature is the topic's."""
        for j, at in enumerate(self._positions):
            self._members[at, j] = 1.0
        specs = {s.name: s for s in feature_set.features}
        # training.fit constrains non-category features by their declared direction; the
        # constraint orders values, so it speaks for a zero count, not for a value
        # missing because the thing never happened (see _may_raise_rows).
        self._absence_good = [
            bool(t.absence) and all(specs[f].monotone == -1 and specs[f].dtype != "category"
                                    for f in t.absence)
            for t in self.topics
        ]
        self._needed = sorted({f for t in self.topics for f in t.needs})
        self._known_levels = {  # by category code, with code -1 (missing) in the last slot
            f: np.array([lv not in UNKNOWN_LEVELS for lv in spec_dtype(specs[f]).categories]
                        + [False])
            for f in self._needed if f in self.categorical
        }
        self.context_labels: dict[ContextPart, list[str]] = {}
        self._context_features: dict[ContextPart, list[str]] = {}
        for t in self.topics:
            if t.context is not None:
                self.context_labels.setdefault(t.context, []).append(
                    t.context_label or t.label)
                self._context_features.setdefault(t.context, []).extend(
                    t.context_features or t.features)

    def known_rows(self, scored_columns: Mapping[str, np.ndarray]) -> np.ndarray | None:
        """:meth:`Topic.known` of every row at once (rows x topics), read from the scored
        feature columns (numbers, yes/no as 1/0 and categories as codes, as
        ``serving.scoring.Scored.columns`` holds them) instead of row by row. None below
        ``KNOWN_ROWS_MIN`` rows, where asking each topic of each row costs less."""
        n = len(next(iter(scored_columns.values()))) if scored_columns else 0
        if n < KNOWN_ROWS_MIN:
            return None
        known = {f: self._feature_known(f, scored_columns[f]) for f in self._needed}
        out = np.ones((n, len(self.topics)), dtype=bool)
        for j, t in enumerate(self.topics):
            for f in t.needs:
                out[:, j] &= known[f]
        return out

    def _feature_known(self, name: str, column: np.ndarray) -> np.ndarray:
        """``features.reasons._known`` of each value of one feature column: a category
        is known unless missing or an unknown level, anything else unless NaN or infinite."""
        good = self._known_levels.get(name)
        if good is not None:
            codes = np.asarray(column, dtype=np.int64)
            return np.asarray(good[np.where(codes < 0, len(good) - 1, codes)], dtype=bool)
        return np.isfinite(np.asarray(column, dtype=np.float64))

    def context_features(self, part: ContextPart) -> list[str]:
        """The features read from one part of a request's context."""
        return list(self._context_features.get(part, []))

    def masked(self, absent: Collection[ContextPart]) -> np.ndarray:
        """Positions of the features the ``absent`` context parts would have given."""
        names = {f for p in absent for f in self._context_features.get(p, [])}
        return np.array([i for i, n in enumerate(self.names) if n in names],
                        dtype=np.intp)

    def sums(self, contributions: np.ndarray) -> np.ndarray:
        """Per topic, its features' contributions summed (rows x topics).

        Each row is summed on its own, in the topic's feature order: a matrix product
        (BLAS) sums in an order that depends on how many rows it is given, so the same
        entity's reasons could differ in the last digit between a file scored in one
        block and in several, or between a file and a request.
        """
        rows = np.atleast_2d(contributions)
        out = np.zeros((rows.shape[0], len(self.topics)))
        for j, members in enumerate(self._positions):
            if len(members):
                out[:, j] = rows[:, members].sum(axis=1)
        return out

    def explain(
        self,
        sums: np.ndarray | None,
        values: Values,
        absent: Collection[ContextPart] = (),
        exclude_up: Collection[str] = (),
        said: Collection[str] = (),
        k: int = TOP_K,
        known_row: np.ndarray | None = None,
    ) -> Explanation:
        """Up to ``k`` reasons for and ``k`` against one row's score, strongest first.

        ``sums`` is the row of :meth:`sums` (None: no contributions asked for), ``values``
        the row's features by name, ``absent`` the context parts the request left out,
        ``exclude_up`` features a risk flag states, kept out of the reasons for, and
        ``said`` features another warning already names (a category value training
        never saw), left out of ``unknown``. ``known_row``: the row of :meth:`known_rows`,
        when computed for the whole batch. :meth:`explain_rows` for one row.
        """
        return self.explain_rows(
            None if sums is None else np.asarray(sums, dtype=np.float64)[None, :], [values],
            None if known_row is None else np.asarray(known_row, dtype=bool)[None, :],
            [absent], [exclude_up], [said], k)[0]

    def explain_rows(
        self,
        sums: np.ndarray | None,
        values: Sequence[Values],
        known: np.ndarray | None = None,
        absent: Sequence[Collection[ContextPart]] | None = None,
        exclude_up: Sequence[Collection[str]] | None = None,
        said: Sequence[Collection[str]] | None = None,
        k: int = TOP_K,
    ) -> list[Explanation]:
        """:meth:`explain` of every row of a batch, the choosing done on whole arrays.

        ``sums`` (rows x topics) and ``known`` (:meth:`known_rows`; None: asked of each
        row) as :meth:`explain` takes their rows; ``absent``, ``exclude_up`` and ``said``
        one collection per row (None: empty for every row). ``values`` is one mapping per
        row, or ``serving.scoring.FeatureValues``, whose columns are read whole. Per row,
        the topics are ranked by the size of their sum (a stable sort, so ties keep the
        topics' order); the first ``k`` known topics with a positive sum that may raise
        the score are the reasons for, the first ``k`` with a negative sum those against.
        Only the chosen topics are worded.
        """
        n, topics = len(values), self.topics
        if known is None:
            known = np.array([[t.known(values[i]) for t in topics] for i in range(n)],
                             dtype=bool).reshape(n, len(topics))
        else:
            known = np.array(known, dtype=bool)
        absent = absent if absent is not None else [()] * n
        said = said if said is not None else [()] * n
        by_absent: dict[frozenset[ContextPart], list[int]] = {}
        for i, parts in enumerate(absent):
            if parts:
                by_absent.setdefault(frozenset(parts), []).append(i)
        for parts, rows in by_absent.items():
            known[rows] &= np.array([t.context not in parts or bool(t.context_features)
                                     for t in topics])
        unknown = self._unknown_labels(known, absent, said)
        if sums is None or n == 0:
            return [Explanation([], [], labels) for labels in unknown]
        sums = np.asarray(sums, dtype=np.float64)
        cells = _Cells(values)
        up_ok = known & (sums > 0)
        up_ok &= self._may_raise_rows(cells, np.asarray(up_ok.any(axis=0)), exclude_up)
        down_ok = known & (sums < 0)
        order = np.argsort(-np.abs(sums), axis=1, kind="stable")
        chosen = []
        for ok in (up_ok, down_ok):
            ranked = np.take_along_axis(ok, order, axis=1)
            at, ranks = np.nonzero(ranked & (np.cumsum(ranked, axis=1) <= k))
            chosen.append((at.tolist(), order[at, ranks].tolist()))
        factors: list[tuple[list[Factor], list[Factor]]] = [([], []) for _ in range(n)]
        for side, (at_rows, at_topics) in enumerate(chosen):
            for i, j in zip(at_rows, at_topics, strict=True):
                topic = topics[j]
                row = cells.row(topic, i)
                factors[i][side].append(Factor(
                    topic=topic.name, text=topic.phrase(row), actionable=topic.actionable,
                    contribution=float(sums[i, j]),
                    values={f: row[f] for f in topic.features}))
        return [Explanation(up, down, labels)
                for (up, down), labels in zip(factors, unknown, strict=True)]

    def _unknown_labels(self, known: np.ndarray, absent: Sequence[Collection[ContextPart]],
                        said: Sequence[Collection[str]]) -> list[list[str]]:
        """Per row, the labels of the topics not known, other than those of its absent
        context parts and those whose features another warning names (worked out once
        for each distinct row of the three)."""
        out: list[list[str]] = []
        seen: dict[tuple[bytes, frozenset[Any], frozenset[Any]], list[str]] = {}
        for i, row in enumerate(known):
            key = (row.tobytes(), frozenset(absent[i]), frozenset(said[i]))
            labels = seen.get(key)
            if labels is None:
                labels = seen[key] = [
                    t.label for t, ok in zip(self.topics, row.tolist(), strict=True)
                    if not ok and t.context not in key[1]
                    and not any(f in key[2] for f in t.features)]
            out.append(list(labels))
        return out

    def _may_raise_rows(self, cells: _Cells, asked: np.ndarray,
                        exclude_up: Sequence[Collection[str]] | None) -> np.ndarray:
        """Per row and topic (rows x topics), whether a positive sum may be a reason for:
        no risk flag states its features, and an absence only where the model was
        constrained to read it as good and every absence feature is stated. Only the
        ``asked`` topics (a known positive sum in some row) read their values."""
        n = len(cells)
        out = np.ones((n, len(self.topics)), dtype=bool)
        if exclude_up is not None:
            by_excluded: dict[frozenset[str], list[int]] = {}
            for i, features in enumerate(exclude_up):
                if features:
                    by_excluded.setdefault(frozenset(features), []).append(i)
            for features, rows in by_excluded.items():
                out[rows] &= np.array([not any(f in features for f in t.features)
                                       for t in self.topics])
        falsy: dict[str, np.ndarray] = {}
        stated: dict[str, np.ndarray] = {}
        for f in {f for j, t in enumerate(self.topics) if asked[j] for f in t.absence}:
            column = cells.column(f)
            falsy[f] = np.array([not v for v in column], dtype=bool)
            stated[f] = np.array([v is not None for v in column], dtype=bool)
        for j, t in enumerate(self.topics):
            if not t.absence or not asked[j]:
                continue
            absent = np.logical_and.reduce([falsy[f] for f in t.absence])
            if self._absence_good[j]:
                out[:, j] &= ~absent | np.logical_and.reduce([stated[f] for f in t.absence])
            else:
                out[:, j] &= ~absent
        return out



class _Cells:
    """A batch's values a column at a time, read from whole columns where the rows are
    ``serving.scoring.FeatureValues`` (else asked of each row), each column once."""

    def __init__(self, values: Sequence[Values]) -> None:
        self._values = values
        self._column = getattr(values, "column", None)
        self._columns: dict[str, Sequence[Value]] = {}

    def __len__(self) -> int:
        return len(self._values)

    def column(self, name: str) -> Sequence[Value]:
        found = self._columns.get(name)
        if found is None:
            found = self._columns[name] = (
                self._column(name) if self._column is not None and name in self._values[0]
                else [v.get(name) for v in self._values])
        return found

    def row(self, topic: Topic, i: int) -> dict[str, Value]:
        """What a chosen topic's sentence reads of row ``i``: its ``features`` and
        ``reads`` (all a phrase may read; ``tests/unit/test_reasons.py`` holds every topic
        to it)."""
        return {f: self.column(f)[i] for f in (*topic.features, *topic.reads)}


_EXPLAINERS: dict[int, Explainer] = {}


def explainer(feature_set: FeatureSet) -> Explainer:
    """One :class:`Explainer` per feature set object (the sets are frozen and few).

    Looked up by identity: hashing a frozen set of some 70 features costs ~30 µs, a
    sizeable share of a one-lead answer.
    """
    found = _EXPLAINERS.get(id(feature_set))
    if found is None or found.feature_set is not feature_set:
        found = _EXPLAINERS[id(feature_set)] = Explainer(feature_set)
    return found


def row_values(feature_set: FeatureSet, row: np.ndarray) -> dict[str, Value]:
    """One row of ``Scored.values()`` by feature name, as plain Python values."""
    return {name: plain_value(v)
            for name, v in zip(explainer(feature_set).names, row, strict=True)}


def not_known(labels: list[str]) -> str | None:
    """ "not known: industry, expected close date", each label once, or None."""
    seen = list(dict.fromkeys(labels))
    return f"not known: {', '.join(seen)}" if seen else None


def context_warning(where: str, labels: list[str]) -> str:
    return f"not known without {where}: {', '.join(dict.fromkeys(labels))}"


def unseen_warning(field: str, value: str) -> str:
    return f"{field} {value!r} is not a value the model was trained on: read as not known"


def unseen_features(feature_set: FeatureSet, raw: Mapping[str, str]) -> dict[str, str]:
    """Category features whose value as sent is none of the levels training knew."""
    levels = explainer(feature_set).levels
    return {f: v for f, v in raw.items()
            if f in levels and v is not None and v not in levels[f]}
