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
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.build import spec_dtype
from features.declarations import FeatureSet
from features.reasons import UNKNOWN_LEVELS, ContextPart, Topic, Value, Values, topics_for
from features.sets import CATEGORY_LEVELS

TOP_K = 3

KNOWN_ROWS_MIN = 8
"""From this many rows, which topics are known is read for the whole batch at once."""


@dataclass(frozen=True)
class Factor:
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
        # missing because the thing never happened (see _may_raise).
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
        when computed for the whole batch.
        """
        topic_known = (known_row.tolist() if known_row is not None
                       else [t.known(values) for t in self.topics])
        known = topic_known if not absent else [
            ok and (t.context not in absent or bool(t.context_features))
            for t, ok in zip(self.topics, topic_known, strict=True)]
        unknown = [t.label for t, ok in zip(self.topics, known, strict=True)
                   if not ok and t.context not in absent
                   and not any(f in said for f in t.features)]
        if sums is None:
            return Explanation([], [], unknown)
        order = np.argsort(-np.abs(sums), kind="stable")
        up: list[Factor] = []
        down: list[Factor] = []
        for j in order:
            c = float(sums[j])
            if c == 0.0 or (len(up) >= k and len(down) >= k):
                break
            topic = self.topics[j]
            if not known[j]:
                continue
            if c > 0:
                if len(up) >= k or not self._may_raise(j, topic, values, exclude_up):
                    continue
                up.append(self._factor(topic, c, values))
            elif len(down) < k:
                down.append(self._factor(topic, c, values))
        return Explanation(up, down, unknown)

    def _may_raise(self, j: int, topic: Topic, values: Values,
                   exclude_up: Collection[str]) -> bool:
        if any(f in exclude_up for f in topic.features):
            return False
        if not topic.absent(values):
            return True
        return self._absence_good[j] and all(values.get(f) is not None for f in topic.absence)

    @staticmethod
    def _factor(topic: Topic, contribution: float, values: Values) -> Factor:
        return Factor(
            topic=topic.name,
            text=topic.phrase(values),
            actionable=topic.actionable,
            contribution=contribution,
            values={f: values.get(f) for f in topic.features},
        )


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
