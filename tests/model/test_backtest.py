"""The backtest: an origin's models and forecast never see a row after it; its scores."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from features.schema import TABLES, CRMTables
from forecast.core import Range, errors_from_json, spread_of
from leadscore.cli import app
from modeling.registry import last_backtest
from training.backtest import (
    Backtest,
    BacktestPeriod,
    OriginModels,
    fit_origin_models,
    origins,
    run_backtest,
)
from training.fit import BoosterParams
from training.time_to_close import TimeToCloseParams

FAST = BoosterParams(num_leaves=15, min_data_in_leaf=20, num_boost_round=60,
                     early_stopping_rounds=10, num_threads=1)
QUICK_TIME = TimeToCloseParams(num_boost_round=40, early_stopping_rounds=10,
                               min_data_in_leaf=20, num_threads=1)
PLANS = {"close_date"}
"""Timestamps that are plans, not events: a close date may lie ahead of any time."""


def latest_event(tables: CRMTables) -> pd.Timestamp:
    """The latest dated event anywhere in the tables."""
    latest = []
    for name, table in TABLES.items():
        frame = tables.get(name)
        for column in table.columns:
            if column.kind == "timestamp" and column.name not in PLANS and len(frame):
                value = frame[column.name].max()
                if pd.notna(value):
                    latest.append(value)
    return pd.Timestamp(max(latest))


def _spoil_after(tables: CRMTables, cut: pd.Timestamp) -> CRMTables:
    """Everything after ``cut`` changed: outcomes flipped, later activities dropped."""
    opps = tables.opportunities.copy()
    later = opps["closed_at"] >= cut
    opps.loc[later, "is_won"] = ~opps.loc[later, "is_won"].astype("boolean")
    acts = tables.activities
    return CRMTables(accounts=tables.accounts, leads=tables.leads, opportunities=opps,
                     opportunity_history=tables.opportunity_history,
                     activities=acts.loc[acts["occurred_at"] < cut],
                     account_signals=tables.account_signals)


def _quick_fit(seen: list[tuple[pd.Timestamp, pd.Timestamp]]):  # type: ignore[no-untyped-def]
    def fit(past: CRMTables, origin: pd.Timestamp) -> OriginModels:
        seen.append((origin, latest_event(past)))
        return fit_origin_models(past, origin, booster=FAST, time_params=QUICK_TIME,
                                 forms=("hazard",))
    return fit


def test_an_origin_sees_no_row_after_it(small_tables: CRMTables) -> None:
    seen: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    result = run_backtest(small_tables, 2, "month", fit=_quick_fit(seen), draws=2000,
                          warmup=2)
    assert [p.period for p in result.periods] == [p.label for p in origins(small_tables, 2,
                                                                           "month")]
    assert [p.period for p in result.warmup] == [p.label for p in origins(small_tables, 4,
                                                                          "month")][:2]
    assert len(seen) == 4
    for (origin, latest), period in zip(seen, [*result.warmup, *result.periods], strict=True):
        assert latest < origin
        assert pd.Timestamp(period.trained_to) < origin
        assert period.origin == origin.isoformat()
        assert pd.Timestamp(period.end) <= pd.Timestamp(result.periods[-1].end)
    # Each range rests on the errors of the forecasts made before it, out of sample.
    assert [p.errors_used for p in (*result.warmup, *result.periods)] == [0, 1, 2, 3]
    errors = result.errors()
    assert [e.period for e in errors] == [p.period for p in (*result.warmup, *result.periods)]
    assert result.periods[-1].spread == pytest.approx(spread_of(errors[:3]))
    # The next period, forecast from the same origin, is scored where the data holds it.
    first, last = result.periods
    assert first.next_period == last.period and first.next_actual == last.actual
    assert last.next_actual is None
    assert set(first.next_ranges) == {"model", "crm_default", "stage_rate"}
    metrics = result.metrics()
    assert metrics["next_wape_model"] == pytest.approx(
        abs(first.next_ranges["model"].p50 - last.actual) / last.actual)
    # The actual is what closed won in the period, from the whole CRM.
    opps = small_tables.opportunities
    start = pd.Timestamp(result.periods[-1].origin)
    end = start + pd.offsets.MonthBegin(1)
    won = opps["is_won"].fillna(False).astype(bool) & (opps["closed_at"] >= start) & (
        opps["closed_at"] < end)
    assert result.periods[-1].actual == pytest.approx(float(opps.loc[won, "amount"].sum()))


def test_the_future_does_not_move_the_forecast(small_tables: CRMTables) -> None:
    last = origins(small_tables, 1, "month")[0]
    spoiled = _spoil_after(small_tables, last.start)
    a = run_backtest(small_tables, 1, "month", fit=_quick_fit([]), draws=2000, warmup=1)
    b = run_backtest(spoiled, 1, "month", fit=_quick_fit([]), draws=2000, warmup=1)
    assert a.periods[0].ranges == b.periods[0].ranges
    assert a.periods[0].actual != b.periods[0].actual


def _period(actual: float, **ranges: tuple[float, float, float]) -> BacktestPeriod:
    return BacktestPeriod(
        period="p", origin="o", actual=actual,
        ranges={m: Range(lo, mid, hi, mid) for m, (lo, mid, hi) in ranges.items()},
        end="e", open_deals=0, open_expected=0.0, new_deals_expected=0.0,
        time_model_form="hazard", spread=0.0, shock_sd=0.0, expected=0.0, independent_cv=0.0,
        errors_used=0, time_model_brier={}, deal_rows=0, trained_to="t", seconds=0.0)


def test_wape_and_coverage_by_hand() -> None:
    bt = Backtest("month", 1000, 0, [
        _period(100.0, model=(90, 110, 130), crm_default=(40, 50, 60), stage_rate=(60, 70, 80)),
        _period(200.0, model=(150, 180, 190), crm_default=(90, 100, 110),
                stage_rate=(190, 200, 210)),
    ])
    # WAPE = sum |P50 - actual| / sum actual.
    assert bt.wape("model") == pytest.approx((10 + 20) / 300)
    assert bt.wape("crm_default") == pytest.approx((50 + 100) / 300)
    assert bt.wape("stage_rate") == pytest.approx((30 + 0) / 300)
    assert bt.coverage("model") == 0.5  # 100 in [90, 130]; 200 above 190
    assert bt.coverage("stage_rate") == 0.5
    assert bt.bias("crm_default") == pytest.approx(-0.5)
    m = bt.metrics()
    assert m["wape_reduction_vs_crm_default"] == pytest.approx(1 - 0.1 / 0.5)


def test_cli_logs_the_backtest_to_mlflow(small_crm_dir: Path, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = CliRunner().invoke(app, [
        "pipeline", "backtest", "--data", str(small_crm_dir), "--periods", "1",
        "--warmup", "1", "--draws", "2000", "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output + repr(result.exception)
    text = " ".join(result.output.split())
    assert "WAPE of P50" in text and "oracle" in text
    saved = json.loads((tmp_path / "out" / "backtest.json").read_text())
    assert set(saved["periods"][0]["ranges"]) == {"model", "crm_default", "stage_rate", "oracle"}
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("pipeline_backtest")
    assert exp is not None
    run = client.search_runs([exp.experiment_id])[0]
    assert np.isfinite(run.data.metrics["wape_model"])
    assert "coverage_p10_p90_oracle" in run.data.metrics
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["backtest.json"]
    last = last_backtest(uri)
    assert last is not None and last["run_id"] == run.info.run_id
    assert last["metrics"]["wape_model"] == pytest.approx(run.data.metrics["wape_model"])
    assert last["data"] == str(small_crm_dir.resolve()) and last["ran_at"]
    # What the review's range rests on: the warm-up's and the scored period's errors.
    assert [e.period for e in errors_from_json(last)] == [
        saved["warmup_periods"][0]["period"], saved["periods"][0]["period"]]


def test_no_backtest_without_a_store(tmp_path: Path) -> None:
    """Asking a store that does not exist for its last backtest does not create it."""
    db = tmp_path / "none" / "mlflow.db"
    assert last_backtest(f"sqlite:///{db}") is None
    assert not db.parent.exists()


def test_cli_refuses_an_unknown_period(small_crm_dir: Path) -> None:
    result = CliRunner().invoke(app, ["pipeline", "backtest", "--data", str(small_crm_dir),
                                      "--period", "week"])
    assert result.exit_code == 2
    assert "unknown period" in result.output
