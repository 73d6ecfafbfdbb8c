"""`leadscore pipeline backtest`: the forecast of past periods, against what closed in them.

A rolling origin over the last N periods. At each period's start the CRM is cut to what
was known then (``features.snapshots.crm_as_of``: rows before it, outcomes after it
blanked, amounts and close dates rolled back), a ``deal_close`` model and its
time-to-close model are trained on that cut alone (small, fast boosters), and the period
is forecast from it (``forecast.core.forecast``). Then the forecast's P50 and P10-P90 are
compared with the bookings that really closed won in the period: WAPE of the P50 and the
share of periods whose actual falls inside P10-P90, for ours, the CRM-default weighted
pipeline and the stage-rate weighted pipeline, and on generated data the oracle's (the
truth's P(won) in place of the model's, everything else ours).
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.schema import CRMTables
from features.sets import DEAL_V1
from features.snapshots import crm_as_of, data_end_of
from features.tasks import task_spec
from features.training_set import build_training_set
from forecast.core import DRAWS, METHODS, SPREAD_PERIODS, Forecast, PastError, Range, forecast
from forecast.periods import Period, check_kind, period_of
from modeling.artifact import ScoringModel
from modeling.registry import BACKTEST_ARTIFACT, BACKTEST_EXPERIMENT
from modeling.time_to_close import Form, TimeToCloseModel
from training.fit import BoosterParams, fit_scoring_model
from training.time_to_close import FORMS, TimeToCloseParams, choose_form, split_won, won_rows

Step = Callable[[str], None]
Oracle = Callable[[pd.DataFrame], np.ndarray]
EXPERIMENT = BACKTEST_EXPERIMENT
WARMUP = SPREAD_PERIODS
"""Periods forecast before the scored ones only for their errors: the first scored
period's range then rests on as many out-of-sample errors as every later one."""
ORIGIN_BOOSTER = BoosterParams(learning_rate=0.1, num_boost_round=300, early_stopping_rounds=30)
"""Small, fast boosters: one model per origin, several origins per run."""


@dataclass(frozen=True)
class OriginModels:
    """What an origin's forecast is made with, trained on the CRM as it stood then."""

    origin: pd.Timestamp
    deal_model: ScoringModel
    time_model: TimeToCloseModel
    time_model_brier: dict[str, dict[int, float]]
    deal_rows: int
    won_rows: int
    trained_to: pd.Timestamp
    """The latest snapshot either model was fit on (before the origin)."""


def _split_entities(frame: pd.DataFrame, key: str, fraction: float
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    first = frame.groupby(key, observed=True)["as_of"].transform("min")
    cut = first.quantile(1.0 - fraction)
    return frame.loc[first < cut], frame.loc[first >= cut]


def fit_origin_models(
    past: CRMTables,
    origin: pd.Timestamp,
    seed: int = 7,
    censor_days: int | None = None,
    booster: BoosterParams = ORIGIN_BOOSTER,
    time_params: TimeToCloseParams | None = None,
    forms: tuple[Form, ...] = FORMS,
    every_days: int = 14,
) -> OriginModels:
    """Train the deal and time-to-close models on ``past`` (the CRM cut at ``origin``).

    Deals first seen within ``censor_days`` of the origin are left out, as ``deal_close``
    training leaves them out of its periods: only the quick ones among them have closed.
    Snapshots every ``every_days`` (the task's 7 would double the rows for little).
    """
    spec = task_spec("deal_close")
    censor = spec.label.censor_days if censor_days is None else censor_days
    frame = build_training_set(past, "deal_close", data_end=origin, every_days=every_days)
    frame = frame.loc[frame["label"].notna() & (frame["as_of"] < origin)].copy()
    first = frame.groupby("opportunity_id", observed=True)["as_of"].transform("min")
    frame = frame.loc[first < origin - pd.Timedelta(days=censor)]
    if frame["label"].nunique() < 2:
        raise ValueError(f"too little history before {origin.date()} to train on")
    frame["label"] = frame["label"].astype("int64")
    frame = frame.sort_values(["as_of", "opportunity_id"], kind="mergesort")
    train, validation = _split_entities(frame, "opportunity_id", 0.2)
    small = train["opportunity_id"].nunique() < 5000
    fitted = fit_scoring_model(
        "deal_close", DEAL_V1, train, validation,
        booster.for_small_data() if small else booster, seed, offset_column="stage",
    )
    won = won_rows(frame, past, origin)
    rest, held_out = split_won(won, 0.15)
    fit_rows, early = split_won(rest, 0.15)
    choice = choose_form(fit_rows, early, held_out, time_params, seed, forms)
    return OriginModels(origin, fitted.model, choice.model, choice.brier, len(frame),
                        len(won), pd.Timestamp(frame["as_of"].max()))


@dataclass(frozen=True)
class BacktestPeriod:
    period: str
    origin: str
    end: str
    """The period's end (excluded): its error is known from then on."""
    actual: float
    """Bookings that closed won in the period (from the whole CRM)."""
    ranges: dict[str, Range]
    """Per method (ours, crm_default, stage_rate, and oracle on generated data)."""
    open_deals: int
    open_expected: float
    new_deals_expected: float
    time_model_form: str
    spread: float
    shock_sd: float
    expected: float
    """Our mean of the period's bookings, before the common error."""
    independent_cv: float
    errors_used: int
    """Earlier periods of this backtest whose errors set the range (at most
    ``forecast.core.SPREAD_PERIODS``)."""
    time_model_brier: dict[str, dict[int, float]]
    deal_rows: int
    trained_to: str
    seconds: float
    next_period: str = ""
    next_actual: float | None = None
    """Bookings of the period after, forecast from the same origin; None when the data
    ends before that period does."""
    next_ranges: dict[str, Range] = field(default_factory=dict)


@dataclass
class Backtest:
    period_kind: str
    draws: int
    seed: int
    periods: list[BacktestPeriod] = field(default_factory=list)
    warmup: list[BacktestPeriod] = field(default_factory=list)
    """Periods before the scored ones, forecast only for the errors the first scored
    ranges rest on."""
    ran_at: str = ""
    """When the run started (UTC, ISO)."""
    data: str = ""
    """The data folder backtested, when it came from one (the review uses the errors of
    a backtest of its own folder only)."""

    def errors(self) -> list[PastError]:
        """Every period's error of ours, oldest first: what a later forecast's range rests
        on (``forecast.core.forecast``'s ``errors``)."""
        return [error_of(p) for p in (*self.warmup, *self.periods)]

    @property
    def methods(self) -> list[str]:
        return [m for m in (*METHODS, "oracle") if self.periods and m in self.periods[0].ranges]

    def pairs(self, method: str, horizon: str) -> list[tuple[float, Range]]:
        """(actual, range) of each scored period: of the period itself (``current``) or
        of the one after it, forecast from the same origin (``next``), where known."""
        if horizon == "current":
            return [(p.actual, p.ranges[method]) for p in self.periods]
        return [(p.next_actual, p.next_ranges[method]) for p in self.periods
                if p.next_actual is not None and method in p.next_ranges]

    def wape(self, method: str, horizon: str = "current") -> float:
        pairs = self.pairs(method, horizon)
        if not pairs:
            return float("nan")
        actual = np.array([a for a, _ in pairs])
        p50 = np.array([r.p50 for _, r in pairs])
        return float(np.abs(p50 - actual).sum() / max(actual.sum(), 1e-9))

    def coverage(self, method: str, horizon: str = "current") -> float:
        held = [r.holds(a) for a, r in self.pairs(method, horizon)]
        return float(np.mean(held)) if held else float("nan")

    def bias(self, method: str, horizon: str = "current") -> float:
        """(sum of P50 - sum of actual) / sum of actual: above 0 over-forecasts."""
        pairs = self.pairs(method, horizon)
        if not pairs:
            return float("nan")
        actual = sum(a for a, _ in pairs)
        p50 = sum(r.p50 for _, r in pairs)
        return float((p50 - actual) / max(actual, 1e-9))

    def metrics(self) -> dict[str, float]:
        """The current period's figures as ``wape_<method>`` and so on; the next period's,
        forecast from the same origins, as ``next_wape_<method>`` and so on."""
        out: dict[str, float] = {}
        for horizon, prefix in (("current", ""), ("next", "next_")):
            for m in self.methods:
                if not self.pairs(m, horizon):
                    continue
                out[f"{prefix}wape_{m}"] = self.wape(m, horizon)
                out[f"{prefix}coverage_p10_p90_{m}"] = self.coverage(m, horizon)
                out[f"{prefix}bias_{m}"] = self.bias(m, horizon)
            for base in ("crm_default", "stage_rate"):
                if f"{prefix}wape_{base}" in out and out[f"{prefix}wape_{base}"] > 0:
                    out[f"{prefix}wape_reduction_vs_{base}"] = (
                        1.0 - out[f"{prefix}wape_model"] / out[f"{prefix}wape_{base}"])
        return out

    def to_json(self) -> dict[str, Any]:
        return {"period_kind": self.period_kind, "draws": self.draws, "seed": self.seed,
                "ran_at": self.ran_at, "data": self.data, "metrics": self.metrics(),
                "periods": [asdict(p) for p in self.periods],
                "warmup_periods": [asdict(p) for p in self.warmup]}


def error_of(p: BacktestPeriod) -> PastError:
    """A backtest period as the error of a forecast made out of sample."""
    return PastError(p.period, p.expected, p.actual, p.independent_cv, p.end)


def origins(tables: CRMTables, periods: int, kind: str) -> list[Period]:
    """The last ``periods`` whole periods of the data (the one it ends in counts when the
    data runs to within a day of its end)."""
    end = data_end_of(tables)
    last = period_of(end, kind)
    if end < last.end - pd.Timedelta(days=1):
        last = last.previous()
    out = [last]
    while len(out) < periods:
        out.append(out[-1].previous())
    return out[::-1]


def actual_bookings(tables: CRMTables, period: Period) -> float:
    opps = tables.opportunities
    won = opps["is_won"].fillna(False).astype(bool)
    at = opps["closed_at"]
    inside = won & at.notna() & (at >= period.start) & (at < period.end)
    return float(opps.loc[inside, "amount"].astype(float).sum())


def _oracle_range(oracle: Oracle, past: CRMTables, origin: pd.Timestamp, kind: str,
                  models: OriginModels, fc: Forecast, errors: list[PastError], draws: int,
                  seed: int) -> tuple[Range, Range]:
    ids = pd.array([d.opportunity_id for d in fc.deals], dtype="string")
    rows = pd.DataFrame({"opportunity_id": ids,
                         "as_of": pd.DatetimeIndex([origin] * len(ids))})
    p = np.nan_to_num(np.asarray(oracle(rows), dtype=float), nan=0.0) if len(ids) else None
    truth_fc = forecast(past, origin, kind, None, models.time_model,
                        p_won=p if p is not None else np.zeros(0), draws=draws, seed=seed,
                        errors=errors)
    return truth_fc.current.bookings, truth_fc.next.bookings


def run_backtest(
    tables: CRMTables,
    periods: int,
    kind: str = "month",
    *,
    oracle: Oracle | None = None,
    draws: int = DRAWS,
    seed: int = 7,
    warmup: int = WARMUP,
    on_step: Step | None = None,
    fit: Callable[[CRMTables, pd.Timestamp], OriginModels] | None = None,
) -> Backtest:
    """Forecast each of the last ``periods`` from its start, with models trained then.

    Each range rests on the errors of the forecasts this backtest made of the periods
    before (``forecast.core.forecast``'s ``errors``): out of sample, as the range's own
    forecast is. The ``warmup`` periods before the scored ones are forecast for those
    errors only; one with too little history before it to train on is left out.
    """
    step = on_step or (lambda _: None)
    k = check_kind(kind)
    if periods < 1:
        raise ValueError("periods must be at least 1")
    if warmup < 0:
        raise ValueError("warmup must be 0 or more")
    fit_models = fit or (lambda past, origin: fit_origin_models(past, origin, seed))
    out = Backtest(k, draws, seed, ran_at=pd.Timestamp.now(tz="UTC").isoformat())
    chosen = origins(tables, periods + warmup, k)
    data_end = data_end_of(tables) + pd.Timedelta(days=1)  # as origins() counts a period
    for n, period in enumerate(chosen):
        scored = n >= warmup
        started = time.perf_counter()
        origin = period.start
        past = crm_as_of(tables, origin)
        try:
            models = fit_models(past, origin)
        except ValueError:
            if scored:
                raise
            step(f"{period.label}: too little history to train on, left out")
            continue
        errors = out.errors()
        fc = forecast(past, origin, k, models.deal_model, models.time_model,
                      draws=draws, seed=seed, errors=errors)
        ranges = {m: fc.current.range_of(m) for m in METHODS}
        next_ranges = {m: fc.next.range_of(m) for m in METHODS}
        if oracle is not None and scored:
            ranges["oracle"], next_ranges["oracle"] = _oracle_range(
                oracle, past, origin, k, models, fc, errors, draws, seed)
        after = period.next()
        next_actual = actual_bookings(tables, after) if after.end <= data_end else None
        result = BacktestPeriod(
            period=period.label, origin=origin.isoformat(), end=period.end.isoformat(),
            actual=actual_bookings(tables, period), ranges=ranges,
            open_deals=len(fc.deals), open_expected=fc.current.open_expected,
            new_deals_expected=fc.current.new_deals_expected,
            time_model_form=models.time_model.form, spread=fc.spread,
            shock_sd=fc.shock_sd[0],
            expected=fc.current.open_expected + fc.current.new_deals_expected,
            independent_cv=fc.current.independent_cv, errors_used=len(fc.past_errors),
            time_model_brier=models.time_model_brier,
            deal_rows=models.deal_rows, trained_to=models.trained_to.isoformat(),
            seconds=time.perf_counter() - started,
            next_period=after.label, next_actual=next_actual, next_ranges=next_ranges,
        )
        (out.periods if scored else out.warmup).append(result)
        step(f"forecast {period.label}" + ("" if scored else " (warm-up)"))
    return out


def log_backtest(result: Backtest, params: dict[str, Any], tracking_uri: str | None = None,
                 experiment: str = EXPERIMENT) -> str:
    """One MLflow run: the summary metrics, per-period figures and ``backtest.json``."""
    import mlflow

    from training.registry import ensure_experiment, tracking

    experiment_id = ensure_experiment(experiment, tracking_uri)
    with tracking(tracking_uri), mlflow.start_run(experiment_id=experiment_id) as run:
        mlflow.log_params({k: str(v) for k, v in params.items()})
        mlflow.log_metrics({k: v for k, v in result.metrics().items() if np.isfinite(v)})
        for i, p in enumerate(result.periods):
            mlflow.log_metric("actual", p.actual, step=i)
            for m, r in p.ranges.items():
                mlflow.log_metric(f"p50_{m}", r.p50, step=i)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / BACKTEST_ARTIFACT
            path.write_text(json.dumps(result.to_json(), indent=2, default=str))
            mlflow.log_artifact(str(path))
        return str(run.info.run_id)
