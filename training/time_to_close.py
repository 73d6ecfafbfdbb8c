"""Fitting the time-to-close model (``modeling.time_to_close``) and choosing its form.

Rows are the ``deal_close`` training set's snapshots of won deals, each with the days it
still had to run (its close minus the snapshot's time). Only deals that closed before the
cut-off the caller gives are rows, so the model never reads an outcome from after it.
The form (discrete-time hazard or regression on log days) is chosen by the mean Brier
score of P(closed within 30 / 60 / 90 days | won) on later deals (the validation rows).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.schema import CRMTables
from features.snapshots import data_end_of
from modeling.time_to_close import (
    CATEGORICAL,
    DAY_NS,
    DEAL_FEATURES,
    FORMS,
    Form,
    TimeToCloseModel,
    _calendar,
    _deal_matrix,
    as_of_ns,
    feature_names,
    hazard_rows,
)

HORIZONS = (30, 60, 90)
"""Days after a snapshot at which the forms are compared (a month, two, a quarter)."""
REMAINING = "remaining_days"


@dataclass(frozen=True)
class TimeToCloseParams:
    learning_rate: float = 0.1
    num_leaves: int = 31
    min_data_in_leaf: int = 200
    num_boost_round: int = 400
    early_stopping_rounds: int = 30
    num_threads: int = 2
    interval_days: int = 7
    intervals: int = 52

    def lgb(self, objective: str, seed: int) -> dict[str, Any]:
        return {
            "objective": objective,
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "min_data_in_leaf": self.min_data_in_leaf,
            "feature_fraction": 0.9,
            "bagging_fraction": 0.8,
            "bagging_freq": 1,
            "num_threads": self.num_threads,
            "seed": seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
        }


def won_rows(frame: pd.DataFrame, tables: CRMTables, before: pd.Timestamp) -> pd.DataFrame:
    """Snapshots of deals won before ``before``, with the days each still had to run.

    ``frame`` is a ``deal_close`` training set (labels 1 = won); a deal that closed at or
    after ``before`` is not a row whatever its label says.
    """
    opps = tables.opportunities
    won = opps.loc[opps["is_won"].fillna(False).astype(bool) & (opps["closed_at"] < before)]
    closed = pd.Series(won["closed_at"].to_numpy(), index=won["opportunity_id"].astype(str))
    keep = frame["label"].astype("Float64").fillna(0.0).eq(1.0) & (frame["as_of"] < before)
    out = frame.loc[keep].copy()
    close_at = out["opportunity_id"].astype(str).map(closed)
    out = out.loc[close_at.notna().to_numpy()]
    close_at = pd.DatetimeIndex(close_at.dropna())
    out[REMAINING] = (close_at.asi8 - as_of_ns(out)) / DAY_NS
    return out.loc[out[REMAINING] >= 0]


def _dataset(x: np.ndarray, y: np.ndarray, form: Form, reference: lgb.Dataset | None = None
             ) -> lgb.Dataset:
    names = feature_names(form)
    cats = [names.index(c) for c in CATEGORICAL]
    return lgb.Dataset(x, label=y, feature_name=names, categorical_feature=cats,
                       reference=reference, free_raw_data=True)


def _hazard_xy(rows: pd.DataFrame, params: TimeToCloseParams) -> tuple[np.ndarray, np.ndarray]:
    """Person-period rows: every week a won deal was still open, 1 in the week it closed."""
    k, width = params.intervals, params.interval_days
    deal = _deal_matrix(rows)
    as_of = as_of_ns(rows)
    week_closed = np.floor(rows[REMAINING].to_numpy(dtype=float) / width).astype(int)
    idx, week, x = hazard_rows(deal, as_of, k, width)
    at_risk = week <= week_closed[idx]
    y = (week == week_closed[idx]).astype(float)
    return x[at_risk], y[at_risk]


def _regression_xy(rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    x = np.column_stack([_deal_matrix(rows), _calendar(as_of_ns(rows))])
    return x, np.log1p(rows[REMAINING].to_numpy(dtype=float))


def fit_time_to_close(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    form: Form,
    params: TimeToCloseParams | None = None,
    seed: int = 7,
) -> TimeToCloseModel:
    """Fit one form on won rows (``won_rows``), early-stopped on the validation rows."""
    p = params or TimeToCloseParams()
    if form == "hazard":
        xt, yt = _hazard_xy(train, p)
        xv, yv = _hazard_xy(validation, p)
        objective = "binary"
    else:
        xt, yt = _regression_xy(train)
        xv, yv = _regression_xy(validation)
        objective = "regression"
    dtrain = _dataset(xt, yt, form)
    dval = _dataset(xv, yv, form, reference=dtrain)
    booster = lgb.train(p.lgb(objective, seed), dtrain, num_boost_round=p.num_boost_round,
                        valid_sets=[dval],
                        callbacks=[lgb.early_stopping(p.early_stopping_rounds, verbose=False)])
    residuals: list[float] = []
    if form == "regression":
        pred = np.asarray(booster.predict(xv, num_iteration=booster.best_iteration))
        res = np.sort(yv - pred)
        # At most 1,000 evenly spaced quantiles keep the saved model small.
        if len(res) > 1000:
            res = np.quantile(res, np.linspace(0.0, 1.0, 1000))
        residuals = [float(r) for r in res]
    metadata = {"rows_train": len(train), "rows_validation": len(validation),
                "best_iteration": int(booster.best_iteration or booster.current_iteration()),
                "features": list(DEAL_FEATURES)}
    return TimeToCloseModel(form=form, booster=booster, interval_days=p.interval_days,
                            intervals=p.intervals, residuals=residuals, metadata=metadata)


def stage_cdf_brier(train: pd.DataFrame, test: pd.DataFrame,
                    horizons: tuple[int, ...] = HORIZONS) -> dict[int, float]:
    """The baseline: each stage's training share of won deals closed within d days."""
    out = {}
    stage_tr = train["stage"].astype("object")
    stage_te = test["stage"].astype("object")
    for d in horizons:
        hit_tr = (train[REMAINING] <= d).astype(float)
        rate = hit_tr.groupby(stage_tr).mean()
        p = stage_te.map(rate).astype(float).fillna(float(hit_tr.mean())).to_numpy()
        y = (test[REMAINING] <= d).to_numpy(dtype=float)
        out[d] = float(np.mean((p - y) ** 2))
    return out


def brier_by_horizon(model: TimeToCloseModel, test: pd.DataFrame,
                     horizons: tuple[int, ...] = HORIZONS) -> dict[int, float]:
    """Brier score of P(closed within d days | won) on won rows, per horizon d."""
    p = model.prob_closed_within(test, np.asarray(horizons, dtype=float))
    y = test[REMAINING].to_numpy(dtype=float)[:, None] <= np.asarray(horizons)[None, :]
    return {d: float(np.mean((p[:, j] - y[:, j]) ** 2)) for j, d in enumerate(horizons)}


@dataclass
class FormChoice:
    model: TimeToCloseModel
    brier: dict[str, dict[int, float]] = field(default_factory=dict)
    """Per form (and ``stage_rate``, the baseline), Brier per horizon on the held-out rows."""

    @property
    def mean_brier(self) -> dict[str, float]:
        return {k: float(np.mean(list(v.values()))) for k, v in self.brier.items()}

    def metrics(self, prefix: str = "ttc_") -> dict[str, float]:
        out = {f"{prefix}{name}_brier_{d}d": b for name, per in self.brier.items()
               for d, b in per.items()}
        out.update({f"{prefix}{name}_brier_mean": b for name, b in self.mean_brier.items()})
        return out


def split_won(rows: pd.DataFrame, fraction: float = 0.2) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Won rows split by each deal's first snapshot: the latest ``fraction`` of deals held out."""
    first = rows.groupby("opportunity_id", observed=True)["as_of"].transform("min")
    cut = first.quantile(1.0 - fraction)
    return rows.loc[first < cut], rows.loc[first >= cut]


def choose_form(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    params: TimeToCloseParams | None = None,
    seed: int = 7,
    forms: tuple[Form, ...] = FORMS,
) -> FormChoice:
    """Fit each form (early-stopped on ``validation``), score them on ``test`` beside the
    stage baseline, and keep the one with the lowest mean Brier."""
    fitted = {form: fit_time_to_close(train, validation, form, params, seed) for form in forms}
    brier: dict[str, dict[int, float]] = {
        form: brier_by_horizon(m, test) for form, m in fitted.items()
    }
    brier["stage_rate"] = stage_cdf_brier(train, test)
    best = min(forms, key=lambda f: float(np.mean(list(brier[f].values()))))
    chosen = fitted[best]
    chosen.metadata["form_brier"] = {k: {str(d): b for d, b in v.items()} for k, v in brier.items()}
    return FormChoice(chosen, brier)


MIN_WON_ROWS = 30
"""Fewest won snapshots to fit, early-stop and compare the forms on, each."""


def fit_companion(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    test_start: pd.Timestamp,
    tables: CRMTables,
    params: TimeToCloseParams | None = None,
    seed: int = 7,
) -> FormChoice | None:
    """The time-to-close model of a ``deal_close`` run, on the run's own time split.

    Its rows are the won deals of the training and validation periods that had closed by
    the test period's start (few validation deals had: they are the recent ones), the
    latest 15 % of those deals early-stopping the boosters; the form is chosen on the
    test period's won deals. None when a part has fewer than :data:`MIN_WON_ROWS` rows.
    """
    after_all = data_end_of(tables) + pd.Timedelta(days=1)
    known = pd.concat([won_rows(train, tables, test_start),
                       won_rows(validation, tables, test_start)])
    if len(known) < 2 * MIN_WON_ROWS:
        return None
    fit_rows, early = split_won(known, 0.15)
    held_out = won_rows(test, tables, after_all)
    if min(len(fit_rows), len(early), len(held_out)) < MIN_WON_ROWS:
        return None
    return choose_form(fit_rows, early, held_out, params=params, seed=seed)
