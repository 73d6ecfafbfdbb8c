"""When a won deal closes: P(it closes within d days of t | it is won), saved without pickle.

The forecast multiplies a deal's calibrated P(won) (the ``deal_close`` model) by this
model's P(closed by the period's end | won). Two forms are fitted and compared by
``training.time_to_close`` (the forecast uses the better one, recorded in ``form``):

- ``hazard``: a discrete-time hazard. Each won snapshot becomes one row per week it was
  still open (``interval_days``), labelled 1 in the week it closed; a LightGBM binary
  model gives the weekly hazard h_k from the deal's features at t, the weeks elapsed and
  the calendar at the week's start (days to the month's and the quarter's end), and
  P(closed by d) = 1 - prod_k (1 - h_k), spread evenly inside the last week.
- ``regression``: a LightGBM on log(1 + remaining days) of won snapshots, with the
  validation residuals' distribution around its prediction (an accelerated-failure-time
  model with an empirical error).

Reading it needs numpy and LightGBM only (serving loads it beside ``deal_close``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd

from modeling.artifact import _verified_text, lightgbm

if TYPE_CHECKING:
    import lightgbm as lgb

Form = Literal["hazard", "regression"]
FORMS: tuple[Form, ...] = ("hazard", "regression")
FORMAT_VERSION = 1
DAY_NS = 86_400 * 10**9

DEAL_FEATURES: tuple[str, ...] = (
    "stage",
    "days_in_stage",
    "days_since_created",
    "stage_moves_back",
    "close_date_pushes",
    "close_date_push_days",
    "amount",
    "amount_change_pct",
    "days_to_close",
    "product",
    "owner_win_rate",
    "days_since_last_activity",
    "activities_30d",
    "meeting_30d",
    "demo_30d",
    "contacts_engaged",
)
"""Features of ``deal_v1`` the time to close reads: stage and age, pushes, the expected
close date, the product and recent engagement."""
CATEGORICAL: tuple[str, ...] = ("stage", "product")
CALENDAR: tuple[str, ...] = ("days_to_month_end", "days_to_quarter_end")
"""Days from the row's time to the end of its month and quarter: deals bunch at quarter end."""
HAZARD_EXTRA: tuple[str, ...] = ("elapsed_days", "days_to_close_then")
"""Hazard rows only: days since the snapshot, and the expected close date seen from then."""


def days_to_period_end(times: np.ndarray, freq: str) -> np.ndarray:
    """Days (float) from each UTC time (int64 ns since the epoch) to the end of its
    calendar month (``freq="M"``) or quarter (``"Q"``)."""
    stamps = pd.DatetimeIndex(np.asarray(times, dtype="datetime64[ns]"))
    ends = (stamps.to_period(freq) + 1).to_timestamp(how="start")
    return np.asarray((ends.asi8 - stamps.asi8) / DAY_NS, dtype=float)


def _levels(name: str) -> list[str]:
    from features.build import category_dtype

    return [str(c) for c in category_dtype(name).categories]


def _deal_matrix(frame: pd.DataFrame) -> np.ndarray:
    """The deal features of a ``build_features`` frame as floats (categories as codes of
    their fixed levels, NaN where not known)."""
    out = np.empty((len(frame), len(DEAL_FEATURES)), dtype=float)
    for i, name in enumerate(DEAL_FEATURES):
        s = frame[name]
        if name in CATEGORICAL:
            cat = pd.Categorical(s.astype("object"), categories=_levels(name))
            codes = np.asarray(cat.codes, dtype=float)
            out[:, i] = np.where(codes < 0, np.nan, codes)
        else:
            out[:, i] = s.astype("float64").to_numpy(na_value=np.nan)
    return out


def _calendar(times_ns: np.ndarray) -> np.ndarray:
    return np.column_stack([days_to_period_end(times_ns, "M"), days_to_period_end(times_ns, "Q")])


def as_of_ns(frame: pd.DataFrame) -> np.ndarray:
    """The frame's ``as_of`` as int64 nanoseconds since the epoch (UTC)."""
    return np.asarray(pd.DatetimeIndex(frame["as_of"]).asi8, dtype=np.int64)


def hazard_rows(
    deal: np.ndarray, as_of: np.ndarray, intervals: int, interval_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each deal's first ``intervals`` weeks as rows: (deal row, week number, features).

    Features per row: the deal's features, the calendar at the week's start, the days
    elapsed since the snapshot and the expected close date seen from the week's start.
    """
    n = len(deal)
    rows = np.repeat(np.arange(n), intervals)
    week = np.tile(np.arange(intervals), n)
    return rows, week, _hazard_features(deal, as_of, rows, week, interval_days)


def _hazard_features(
    deal: np.ndarray, as_of: np.ndarray, rows: np.ndarray, week: np.ndarray, interval_days: int
) -> np.ndarray:
    elapsed = week.astype(float) * interval_days
    start = as_of[rows] + (week.astype(np.int64) * interval_days * DAY_NS)
    to_close = deal[rows, DEAL_FEATURES.index("days_to_close")] - elapsed
    return np.column_stack([deal[rows], _calendar(start), elapsed, to_close])


def feature_names(form: Form) -> list[str]:
    extra = HAZARD_EXTRA if form == "hazard" else ()
    return [*DEAL_FEATURES, *CALENDAR, *extra]


@dataclass
class TimeToCloseModel:
    """P(a won deal closes within d days of its snapshot), from ``deal_v1`` features."""

    form: Form
    booster: lgb.Booster
    interval_days: int = 7
    intervals: int = 52
    """Hazard: weeks modelled; a deal open after them does not close inside any window."""
    residuals: list[float] = field(default_factory=list)
    """Regression: sorted validation residuals of log(1 + remaining days)."""
    metadata: dict[str, Any] = field(default_factory=dict)

    def prob_closed_within(self, frame: pd.DataFrame, days: np.ndarray) -> np.ndarray:
        """P(closed within ``days[i, j]`` days of row i's ``as_of`` | won), shape of ``days``.

        ``frame`` is a ``build_features`` frame of ``deal_v1`` (with ``as_of``); ``days``
        has one row per frame row (or is 1-d, the same days for every row).
        """
        n = len(frame)
        d = np.asarray(days, dtype=float)
        d = np.broadcast_to(d, (n, d.shape[-1])) if d.ndim == 1 else d
        if n == 0:
            return np.zeros_like(d)
        deal = _deal_matrix(frame)
        as_of = as_of_ns(frame)
        if self.form == "hazard":
            out = self._hazard_cdf(deal, as_of, d)
        else:
            out = self._regression_cdf(deal, as_of, d)
        return np.where(d <= 0, 0.0, np.clip(out, 0.0, 1.0))

    def _hazard_cdf(self, deal: np.ndarray, as_of: np.ndarray, d: np.ndarray) -> np.ndarray:
        k = self.intervals
        rows, week, x = hazard_rows(deal, as_of, k, self.interval_days)
        h = np.asarray(self.booster.predict(x, num_threads=_threads(len(x)))).reshape(-1, k)
        survive = np.concatenate([np.ones((len(deal), 1)), np.cumprod(1.0 - h, axis=1)], axis=1)
        weeks = np.clip(d, 0.0, None) / self.interval_days
        whole = np.minimum(np.floor(weeks).astype(int), k)
        frac = np.where(whole < k, weeks - whole, 0.0)
        row = np.arange(len(deal))[:, None]
        s_start = survive[row, whole]
        h_in = np.concatenate([h, np.zeros((len(deal), 1))], axis=1)[row, whole]
        out: np.ndarray = 1.0 - s_start * (1.0 - frac * h_in)
        return out

    def _regression_cdf(self, deal: np.ndarray, as_of: np.ndarray, d: np.ndarray) -> np.ndarray:
        x = np.column_stack([deal, _calendar(as_of)])
        pred = np.asarray(self.booster.predict(x, num_threads=_threads(len(x))))
        res = np.asarray(self.residuals, dtype=float)
        z = np.log1p(np.clip(d, 0.0, None)) - pred[:, None]
        out: np.ndarray = np.searchsorted(res, z, side="right") / max(len(res), 1)
        return out

    # -- persistence ---------------------------------------------------------------

    def save(self, path: Path) -> None:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(str(path / "booster.txt"))
        digest = hashlib.sha256((path / "booster.txt").read_bytes()).hexdigest()
        spec = {
            "format_version": FORMAT_VERSION,
            "form": self.form,
            "features": feature_names(self.form),
            "interval_days": self.interval_days,
            "intervals": self.intervals,
            "residuals": self.residuals,
            "sha256": {"booster.txt": digest},
            "metadata": self.metadata,
        }
        (path / "time_to_close.json").write_text(json.dumps(spec, indent=2, default=str))

    @classmethod
    def load(cls, path: Path) -> TimeToCloseModel:
        path = Path(path)
        spec = json.loads((path / "time_to_close.json").read_text())
        if spec.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported time-to-close format {spec.get('format_version')!r}")
        form = spec["form"]
        if form not in FORMS or spec["features"] != feature_names(form):
            raise ValueError("the saved time-to-close model reads other features than this code")
        booster = lightgbm().Booster(model_str=_verified_text(path / "booster.txt", spec["sha256"]))
        return cls(form=form, booster=booster, interval_days=int(spec["interval_days"]),
                   intervals=int(spec["intervals"]),
                   residuals=[float(r) for r in spec["residuals"]],
                   metadata=dict(spec.get("metadata") or {}))


def _threads(n: int) -> int:
    return 1 if n <= 256 else 0
