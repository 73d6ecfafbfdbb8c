"""The reference profile of a model: how its features and its score were distributed on
the period it was judged on, and the population stability index (PSI) against it.

Training stores the profile beside the model (``profile.json`` in the model's folder);
serving (``serving.monitoring``) and ``leadscore monitor`` read it to say how far what
they score now has moved from it. The reference is the test period: the newest rows the
model was judged on, so a feature that merely trends with time (ages, counts) is compared
with its latest state, not with years of history.

Numbers (and yes/no features) get quantile bins, each closed on the right, plus a bin for
missing values; a value on an edge falls in the bin that edge closes, so a feature of a
few distinct values gets one bin per value. Categories get their shares by level, an
"other" bin for a level the reference did not hold (unseen or rare), and a missing bin.

Some features move with time by construction (an owner's closed deals to date, ages): a
window months after training is always far from the reference on them, drifted or not.
Each feature's ``trend`` is the PSI of the training period against the test period; a
feature whose trend already reached the warn threshold, or that its feature set declares a
count over all history (``FeatureSpec.to_date``: it grows as the CRM's history grows,
whatever the population does), is *trending*, and its PSI now is reported with at most
"warn". The score and every other feature alert as usual.

PSI of a finite sample is positive even when nothing moved: with ``k`` bins, ``n`` rows
scored and ``m`` reference rows drawn from one distribution, its expected value is about
``(k - 1) * (1/n + 1/m)`` (:func:`expected_psi`; the first term of its expansion, a
chi-square of ``k - 1`` degrees of freedom over the sample sizes). A window of 300 rows
against a reference of 1,000 on ten bins reads 0.04 on average from noise alone. The
status is therefore read from the PSI less that expectation (the thresholds are raised by
it): 0.1 and 0.25 then mean a move of that size, at any window size. Snapshots of one lead
or deal are not independent (its category, its account's counts repeat week after week),
so ``n`` and ``m`` are distinct entities, not rows, where they are known (the reference's
``entities``, the window's ids): an upper bound on the noise, which keeps a small
window from alerting on chance.
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

PROFILE_FILE = "profile.json"
PROFILE_VERSION = 1
QUANTILE_BINS = 10
MAX_LEVELS = 30
"""Category levels kept by name; rarer ones share the "other" bin."""
PSI_FLOOR = 1e-4
"""Share given to an empty bin, so a bin empty on one side adds a large but finite term."""
WARN_PSI = 0.1
ALERT_PSI = 0.25
"""The usual reading of PSI: under 0.1 stable, 0.1-0.25 a shift worth a look, over 0.25 a
population the model was not judged on."""
SCORE = "score"

Status = Literal["ok", "warn", "alert"]


def status_of(psi: float, warn: float = WARN_PSI, alert: float = ALERT_PSI,
              expected: float = 0.0) -> Status:
    """ok / warn / alert of a PSI whose no-drift expectation is ``expected``
    (:func:`expected_psi`): the thresholds are read above it."""
    if psi >= alert + expected:
        return "alert"
    return "warn" if psi >= warn + expected else "ok"


def expected_psi(shares: Sequence[float], n: int, m: int) -> float:
    """PSI expected from sampling alone: ``n`` rows against a reference of ``m`` rows (0:
    not known, taken as exact), both drawn from the reference's distribution over bins
    whose reference shares are ``shares``. ``(k - 1) * (1/n + 1/m)``, ``k`` the bins the
    reference holds rows in (an empty bin stays empty without drift)."""
    k = int(np.count_nonzero(np.asarray(shares, dtype=float) > 0))
    if k <= 1 or n <= 0:
        return 0.0
    return (k - 1) * (1.0 / n + (1.0 / m if m > 0 else 0.0))


def psi(expected: Sequence[float] | np.ndarray, actual: Sequence[float] | np.ndarray) -> float:
    """PSI of two distributions over the same bins (counts or shares): the sum over bins of
    (actual - expected) * ln(actual / expected), shares floored at :data:`PSI_FLOOR`."""
    e = np.asarray(expected, dtype=float)
    a = np.asarray(actual, dtype=float)
    if e.shape != a.shape:
        raise ValueError(f"bins differ: {e.shape} against {a.shape}")
    if e.sum() <= 0 or a.sum() <= 0:
        return math.nan
    e = np.maximum(e / e.sum(), PSI_FLOOR)
    a = np.maximum(a / a.sum(), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


@dataclass(frozen=True)
class Bins:
    """One column's bins and its reference shares.

    ``kind`` "number": ``edges`` are the right edges of every bin but the last (values
    above the last edge); then a missing bin. "category": one bin per level of
    ``levels``, then "other", then missing.
    """

    name: str
    kind: Literal["number", "category"]
    shares: tuple[float, ...]
    edges: tuple[float, ...] = ()
    levels: tuple[str, ...] = ()
    rows: int = 0
    trend: float = 0.0
    """PSI of the training period against these shares (the test period's)."""

    @property
    def labels(self) -> list[str]:
        """Each bin in words (for tables)."""
        if self.kind == "category":
            return [*self.levels, "other", "missing"]
        out, lower = [], "-inf"
        for e in self.edges:
            out.append(f"({lower}, {e:g}]")
            lower = f"{e:g}"
        return [*out, f"({lower}, inf)", "missing"]

    def counts(self, values: Any) -> np.ndarray:
        """How many of ``values`` fall in each bin. Numbers: floats with NaN for missing;
        categories: level names with None/NaN for missing."""
        if self.kind == "number":
            x = np.asarray(values, dtype=float)
            missing = np.isnan(x)
            slots = np.searchsorted(np.asarray(self.edges, dtype=float), x[~missing],
                                    side="left")
            out = np.bincount(slots, minlength=len(self.edges) + 1).astype(float)
            return np.append(out, float(missing.sum()))
        names = pd.Series(np.asarray(values, dtype=object), dtype=object)
        missing = names.isna().to_numpy()
        position = {level: i for i, level in enumerate(self.levels)}
        other = len(self.levels)
        slots = names[~missing].map(lambda v: position.get(str(v), other)).to_numpy(
            dtype=np.intp)
        out = np.bincount(slots, minlength=other + 1).astype(float)
        return np.append(out, float(missing.sum()))

    def code_counts(self, codes: np.ndarray, level_names: Sequence[str]) -> np.ndarray:
        """:meth:`counts` of category codes into ``level_names`` (NaN or -1: missing),
        without building names: one table look-up per row."""
        codes = np.asarray(codes, dtype=float)
        missing = np.isnan(codes) | (codes < 0)
        position = {level: i for i, level in enumerate(self.levels)}
        other = len(self.levels)
        table = np.array([position.get(str(n), other) for n in level_names] + [other],
                         dtype=np.intp)
        c = codes[~missing].astype(np.intp)
        c = np.where(c < len(level_names), c, len(level_names))
        out = np.bincount(table[c], minlength=other + 1).astype(float)
        return np.append(out, float(missing.sum()))

    def psi(self, counts: np.ndarray) -> float:
        return psi(self.shares, counts)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "rows": self.rows,
                               "shares": list(self.shares),
                               "trend": self.trend if math.isfinite(self.trend) else None}
        if self.kind == "number":
            out["edges"] = list(self.edges)
        else:
            out["levels"] = list(self.levels)
        return out

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Bins:
        kind = data["kind"]
        if kind not in ("number", "category"):
            raise ValueError(f"unknown bin kind {kind!r}")
        bins = cls(name=str(data["name"]), kind=kind,
                   shares=tuple(float(s) for s in data["shares"]),
                   edges=tuple(float(e) for e in data.get("edges") or ()),
                   levels=tuple(str(v) for v in data.get("levels") or ()),
                   rows=int(data.get("rows", 0)),
                   trend=float(data.get("trend") or 0.0))
        expected = (len(bins.edges) + 2 if kind == "number" else len(bins.levels) + 2)
        if len(bins.shares) != expected:
            raise ValueError(f"{bins.name}: {len(bins.shares)} shares for {expected} bins")
        return bins


def number_bins(name: str, values: Any, bins: int = QUANTILE_BINS) -> Bins:
    """Quantile bins of a numeric column (edges that repeat are merged)."""
    x = np.asarray(values, dtype=float)
    present = x[~np.isnan(x)]
    if present.size:
        # Edges are values the data holds ("lower"): a feature of few values gets one
        # bin per value instead of edges interpolated between them.
        qs = np.quantile(present, np.linspace(0, 1, bins + 1)[1:-1], method="lower")
        edges = tuple(float(e) for e in np.unique(qs))
    else:
        edges = ()
    empty = Bins(name, "number", (0.0,) * (len(edges) + 2), edges=edges)
    counts = empty.counts(x)
    return Bins(name, "number", tuple(float(c) for c in counts / max(len(x), 1)),
                edges=edges, rows=len(x))


def category_bins(name: str, values: Any, max_levels: int = MAX_LEVELS) -> Bins:
    """Shares of a category column's levels (the ``max_levels`` commonest by name)."""
    names = pd.Series(np.asarray(values, dtype=object), dtype=object)
    present = names.dropna().astype(str)
    levels = tuple(str(v) for v in present.value_counts().index[:max_levels])
    empty = Bins(name, "category", (0.0,) * (len(levels) + 2), levels=levels)
    counts = empty.counts(names)
    return Bins(name, "category", tuple(float(c) for c in counts / max(len(names), 1)),
                levels=levels, rows=len(names))


@dataclass(frozen=True)
class ReferenceProfile:
    """Bins of every feature and of the score (0-100) on the reference period."""

    features: dict[str, Bins]
    score: Bins
    period: dict[str, str] = field(default_factory=dict)
    """``from`` and ``to`` of the reference rows' snapshot times, when known."""
    entities: int = 0
    """Distinct entities the reference rows are snapshots of (0: not recorded, a profile
    saved before it; its rows are counted instead)."""

    def size(self, bins: Bins) -> int:
        """The reference's sample size for the noise of a PSI (:func:`expected_psi`)."""
        return self.entities or bins.rows

    def to_json(self) -> dict[str, Any]:
        return {"version": PROFILE_VERSION, "period": self.period,
                "score": self.score.to_json(), "entities": self.entities,
                "features": [b.to_json() for b in self.features.values()]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ReferenceProfile:
        if data.get("version") != PROFILE_VERSION:
            raise ValueError(f"unsupported profile version {data.get('version')!r}")
        features = [Bins.from_json(b) for b in data["features"]]
        return cls(features={b.name: b for b in features},
                   score=Bins.from_json(data["score"]),
                   period={str(k): str(v) for k, v in (data.get("period") or {}).items()},
                   entities=int(data.get("entities") or 0))

    def save(self, folder: Path) -> Path:
        path = Path(folder) / PROFILE_FILE
        path.write_text(json.dumps(self.to_json(), indent=1, sort_keys=True))
        return path


def load_profile(folder: Path) -> ReferenceProfile | None:
    """The profile saved in a model's folder; None for a model saved without one."""
    path = Path(folder) / PROFILE_FILE
    if not path.is_file():
        return None
    return ReferenceProfile.from_json(json.loads(path.read_text()))


def scores_0_100(probabilities: Any) -> np.ndarray:
    """Probabilities as the 0-100 score serving answers with (``modeling.grading``'s
    rounding; NaN stays NaN)."""
    p = np.asarray(probabilities, dtype=float)
    return np.floor(p * 100.0 + 0.5)


def column_bins(name: str, column: pd.Series) -> Bins:
    """Category bins for a categorical or text column, quantile bins otherwise."""
    if isinstance(column.dtype, pd.CategoricalDtype) or column.dtype == object:
        return category_bins(name, column.astype("object").where(column.notna(), None))
    return number_bins(name, pd.to_numeric(column, errors="coerce").astype("float64"))


def build_profile(frame: pd.DataFrame, names: Sequence[str], probabilities: Any,
                  earlier: pd.DataFrame | None = None,
                  entity_key: str | None = None) -> ReferenceProfile:
    """The profile of ``frame``'s feature columns ``names`` and of the scores of its rows;
    each feature's ``trend`` from ``earlier`` (the training period), when given; the
    distinct entities of ``frame[entity_key]``, when given."""
    p = np.asarray(probabilities, dtype=float)
    if len(p) != len(frame):
        raise ValueError(f"{len(p)} scores for {len(frame)} rows")
    period: dict[str, str] = {}
    if "as_of" in frame.columns and len(frame):
        period = {"from": pd.Timestamp(frame["as_of"].min()).isoformat(),
                  "to": pd.Timestamp(frame["as_of"].max()).isoformat()}
    features = {n: column_bins(n, frame[n]) for n in names}
    if earlier is not None and len(earlier):
        features = {n: replace(b, trend=b.psi(frame_counts(b, earlier[n])))
                    for n, b in features.items()}
    entities = (int(frame[entity_key].nunique()) if entity_key is not None
                and entity_key in frame.columns else 0)
    return ReferenceProfile(
        features=features,
        score=number_bins(SCORE, scores_0_100(p)),
        period=period,
        entities=entities,
    )


def frame_counts(bins: Bins, column: pd.Series) -> np.ndarray:
    """:meth:`Bins.counts` of a DataFrame column of the kind ``bins`` was built from."""
    if bins.kind == "category":
        return bins.counts(column.astype("object").where(column.notna(), None))
    return bins.counts(pd.to_numeric(column, errors="coerce").astype("float64"))


@dataclass(frozen=True)
class Drift:
    """PSI of one column against its reference."""

    name: str
    psi: float
    status: Status
    trending: bool = False
    """A feature that moved as much between training and test (``Bins.trend``), or a
    count over all history (``FeatureSpec.to_date``): its status stops at "warn"."""
    expected: float = 0.0
    """PSI expected with no drift at the window's and the reference's sizes
    (:func:`expected_psi`): the status is read above it."""


def feature_drift(bins: Bins, value: float, warn: float = WARN_PSI,
                  alert: float = ALERT_PSI, expected: float = 0.0,
                  to_date: bool = False) -> Drift:
    """A feature's PSI read against its thresholds raised by ``expected`` (its no-drift
    value), a trending one's at most "warn"."""
    trending = to_date or (math.isfinite(bins.trend) and bins.trend >= warn)
    status = status_of(value, warn, alert, expected)
    if trending and status == "alert":
        status = "warn"
    return Drift(bins.name, value, status, trending, expected)


def score_drift(profile: ReferenceProfile, value: float, n: int, warn: float = WARN_PSI,
                alert: float = ALERT_PSI) -> Drift:
    """The score's PSI over ``n`` rows (or entities) read as :func:`feature_drift` reads a
    feature's."""
    bins = profile.score
    expected = expected_psi(bins.shares, n, profile.size(bins))
    return Drift(SCORE, value, status_of(value, warn, alert, expected), expected=expected)


def worst_status(score: Drift, features: Sequence[Drift]) -> Status:
    """The worst status of the score and the features."""
    order: list[Status] = ["ok", "warn", "alert"]
    return max([score.status, *(f.status for f in features)], key=order.index)


def profile_drift(profile: ReferenceProfile, frame: pd.DataFrame, scores: Any,
                  warn: float = WARN_PSI, alert: float = ALERT_PSI,
                  entities: int | None = None, to_date: Collection[str] = (),
                  ) -> tuple[Drift, list[Drift]]:
    """PSI of the score and of every profiled feature of ``frame``, the worst first.
    ``entities``: the distinct entities ``frame``'s rows are snapshots of (default: its
    rows), the sample size of the noise; ``to_date``: the features counted over all
    history (trending by construction)."""
    n = len(frame) if entities is None else entities
    s = profile.score.psi(profile.score.counts(scores_0_100(scores)))
    features = []
    for name, bins in profile.features.items():
        if name not in frame.columns:
            continue
        features.append(feature_drift(
            bins, bins.psi(frame_counts(bins, frame[name])), warn, alert,
            expected_psi(bins.shares, n, profile.size(bins)), name in to_date))
    features.sort(key=lambda d: -d.psi if math.isfinite(d.psi) else 0.0)
    return score_drift(profile, s, n, warn, alert), features
