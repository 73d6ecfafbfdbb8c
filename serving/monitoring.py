"""What the server scored lately, against the model's reference profile: PSI per feature
and for the score, per task.

Each scoring route hands what it scored (``Scored``: the feature arrays and the
probabilities) to :meth:`Monitor.observe`, which copies it into a ring buffer of the last
``monitor_window_rows`` rows per task (fewer when ``monitor_window_bytes`` would be
exceeded): one block copy per request, no binning. PSI is computed when it is read
(``/metrics``, ``GET /v1/monitoring``) and kept until the window changes. A new model
version starts a new window: its scores and its profile are what the window is held to.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from features.build import category_dtype
from features.declarations import FeatureSet
from modeling.profile import (
    Drift,
    ReferenceProfile,
    expected_psi,
    feature_drift,
    score_drift,
    scores_0_100,
    worst_status,
)
from serving.models import LoadedModel
from serving.scoring import Scored

NO_PROFILE = "no reference profile"
TOO_FEW_ROWS = "too few rows"


class ScoreWindow:
    """The last ``capacity`` rows scored for one model version: features as floats
    (category codes, -1 or NaN for missing) and probabilities."""

    def __init__(self, feature_set: FeatureSet, version: str, capacity: int) -> None:
        self.feature_set = feature_set
        self.version = version
        self.capacity = max(int(capacity), 0)
        self.names = list(feature_set.names)
        # One row per feature: a request's rows are one contiguous slice of each.
        self._features = np.empty((len(self.names), self.capacity), dtype=np.float64)
        self._scores = np.empty(self.capacity, dtype=np.float64)
        # A hash of each row's entity id: the window's distinct entities size the noise
        # of its PSI (``modeling.profile.expected_psi``).
        self._ids = np.empty(self.capacity, dtype=np.uint64)
        self._next = 0
        self.seen = 0
        """Rows observed since the window started (the window holds the last of them)."""
        self._fresh = 0  # the next made-up id of a row given without one
        self._lock = threading.Lock()

    @property
    def size(self) -> int:
        return min(self.seen, self.capacity)

    @property
    def nbytes(self) -> int:
        return int(self._features.nbytes + self._scores.nbytes + self._ids.nbytes)

    def add(self, columns: Mapping[str, np.ndarray], probabilities: np.ndarray,
            ids: Sequence[str] | None = None) -> None:
        """Append rows (the newest ``capacity`` of them when there are more): one array
        built from the columns and at most two slice copies. ``ids``: each row's entity
        (None: each row its own)."""
        p = np.asarray(probabilities, dtype=np.float64)
        n = len(p)
        if n == 0 or self.capacity == 0:
            return
        block = np.array([columns[name][:n] for name in self.names], dtype=np.float64)
        hashed = (pd.util.hash_array(np.asarray(ids[:n], dtype=object), categorize=False)
                  if ids is not None else None)
        keep = np.isfinite(p)
        if not keep.all():  # not scored (the task does not apply): not kept
            block, p = block[:, keep], p[keep]
            hashed = hashed[keep] if hashed is not None else None
            n = len(p)
            if n == 0:
                return
        if n > self.capacity:
            block, p = block[:, -self.capacity:], p[-self.capacity:]
            hashed = hashed[-self.capacity:] if hashed is not None else None
        with self._lock:
            start = self._next
            if hashed is None:  # rows of their own: ids never seen before
                hashed = np.arange(self._fresh, self._fresh + len(p), dtype=np.uint64)
                self._fresh += len(p)
            first = min(len(p), self.capacity - start)
            self._features[:, start:start + first] = block[:, :first]
            self._scores[start:start + first] = p[:first]
            self._ids[start:start + first] = hashed[:first]
            rest = len(p) - first
            if rest:
                self._features[:, :rest] = block[:, first:]
                self._scores[:rest] = p[first:]
                self._ids[:rest] = hashed[first:]
            self._next = (start + len(p)) % self.capacity
            self.seen += n

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, int]:
        """A copy of the rows held (rows x features, probabilities) and ``seen`` then."""
        with self._lock:
            size = self.size
            return (self._features[:, :size].T.copy(), self._scores[:size].copy(),
                    self.seen)

    def entities(self) -> int:
        """Distinct entities among the rows held."""
        with self._lock:
            return int(np.unique(self._ids[:self.size]).size)


ColumnDrift = Drift


@dataclass(frozen=True)
class TaskDrift:
    """One task's window against its model's profile."""

    task: str
    version: str | None
    window_rows: int
    seen_rows: int
    status: str
    """ok / warn / alert, or why there is no figure (:data:`NO_PROFILE`,
    :data:`TOO_FEW_ROWS`, "no model")."""
    score: ColumnDrift | None = None
    features: list[ColumnDrift] = field(default_factory=list)
    """The worst first."""


def window_drift(window: ScoreWindow, profile: ReferenceProfile, warn: float,
                 alert: float) -> tuple[ColumnDrift, list[ColumnDrift]]:
    """PSI of a window's score and features against a profile, each read above the PSI
    sampling alone gives at the window's distinct entities (``expected_psi``), as
    ``leadscore monitor`` reads an export's."""
    features, probabilities, _ = window.snapshot()
    n = window.entities()
    to_date = window.feature_set.to_date
    s = profile.score.psi(profile.score.counts(scores_0_100(probabilities)))
    out = []
    for j, name in enumerate(window.names):
        bins = profile.features.get(name)
        if bins is None:
            continue
        col = features[:, j]
        if bins.kind == "category":
            spec = window.feature_set.spec(name)
            levels = list(category_dtype(name, spec.levels).categories)
            counts = bins.code_counts(col, levels)
        else:
            counts = bins.counts(col)
        out.append(feature_drift(bins, bins.psi(counts), warn, alert,
                                 expected_psi(bins.shares, n, profile.size(bins)),
                                 name in to_date))
    out.sort(key=lambda d: -d.psi if math.isfinite(d.psi) else 0.0)
    return score_drift(profile, s, n, warn, alert), out


class Monitor:
    """The windows of every task, and their PSI, computed when read."""

    def __init__(self, window_rows: int, window_bytes: int, min_rows: int,
                 warn: float, alert: float) -> None:
        self.window_rows = window_rows
        self.window_bytes = window_bytes
        self.min_rows = min_rows
        self.warn = warn
        self.alert = alert
        self._windows: dict[str, ScoreWindow] = {}
        self._cache: dict[str, tuple[tuple[str, int], TaskDrift]] = {}
        self._lock = threading.Lock()

    def capacity(self, feature_set: FeatureSet) -> int:
        """Rows a window of this feature set may hold within both bounds."""
        row_bytes = 8 * (len(feature_set.names) + 2)
        return max(0, min(self.window_rows, self.window_bytes // row_bytes))

    def window(self, loaded: LoadedModel) -> ScoreWindow | None:
        """The task's window for the version being served (a new one for a new version)."""
        if self.window_rows <= 0:
            return None
        current = self._windows.get(loaded.task)
        if current is not None and current.version == loaded.version:
            return current
        with self._lock:
            current = self._windows.get(loaded.task)
            if current is None or current.version != loaded.version:
                fs = loaded.model.feature_set
                current = ScoreWindow(fs, loaded.version, self.capacity(fs))
                self._windows[loaded.task] = current
            return current

    def observe(self, loaded: LoadedModel, scored: Scored) -> None:
        """Add what a route scored to the task's window."""
        window = self.window(loaded)
        if window is not None:
            window.add(scored.columns, scored.probabilities, scored.ids)

    def drift(self, task: str, loaded: LoadedModel | None) -> TaskDrift:
        """The task's PSI, computed again only when its window has changed."""
        if loaded is None:
            return TaskDrift(task, None, 0, 0, "no model")
        window = self._windows.get(task)
        if window is not None and window.version != loaded.version:
            window = None
        size = 0 if window is None else window.size
        seen = 0 if window is None else window.seen
        if loaded.profile is None:
            return TaskDrift(task, loaded.version, size, seen, NO_PROFILE)
        if window is None or size < self.min_rows:
            return TaskDrift(task, loaded.version, size, seen, TOO_FEW_ROWS)
        key = (loaded.version, seen)
        cached = self._cache.get(task)
        if cached is not None and cached[0] == key:
            return cached[1]
        score, features = window_drift(window, loaded.profile, self.warn, self.alert)
        result = TaskDrift(task, loaded.version, size, seen, worst_status(score, features),
                           score=score, features=features)
        self._cache[task] = (key, result)
        return result
