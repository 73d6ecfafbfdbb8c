"""The time-to-close model: point in time, a proper distribution, saved and read back."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.schema import CRMTables
from features.snapshots import crm_as_of, data_end_of
from features.training_set import build_training_set
from modeling.time_to_close import TimeToCloseModel
from training.time_to_close import (
    REMAINING,
    TimeToCloseParams,
    choose_form,
    fit_time_to_close,
    split_won,
    won_rows,
)

QUICK = TimeToCloseParams(num_boost_round=60, early_stopping_rounds=10, min_data_in_leaf=20,
                          num_threads=1)


def _cut(tables: CRMTables) -> pd.Timestamp:
    return (data_end_of(tables) - pd.Timedelta(days=150)).normalize()


def _won(tables: CRMTables, cut: pd.Timestamp) -> pd.DataFrame:
    past = crm_as_of(tables, cut)
    frame = build_training_set(past, "deal_close", data_end=cut, every_days=14)
    return won_rows(frame, past, cut)


def _future_spoiled(tables: CRMTables, cut: pd.Timestamp) -> CRMTables:
    """The same CRM with everything after ``cut`` changed: outcomes flipped, closes moved,
    later activities and history dropped."""
    opps = tables.opportunities.copy()
    later = opps["closed_at"] >= cut
    opps.loc[later, "is_won"] = ~opps.loc[later, "is_won"].astype("boolean")
    opps.loc[later, "closed_at"] = opps.loc[later, "closed_at"] + pd.Timedelta(days=3)
    hist = tables.opportunity_history
    acts = tables.activities
    return CRMTables(accounts=tables.accounts, leads=tables.leads, opportunities=opps,
                     opportunity_history=hist.loc[hist["changed_at"] < cut],
                     activities=acts.loc[acts["occurred_at"] < cut],
                     account_signals=tables.account_signals)


def test_rows_are_won_deals_closed_before_the_cut(small_tables: CRMTables) -> None:
    cut = _cut(small_tables)
    rows = _won(small_tables, cut)
    assert len(rows) > 100
    opps = small_tables.opportunities.set_index(small_tables.opportunities["opportunity_id"]
                                                .astype(str))
    closed = pd.DatetimeIndex(opps.loc[rows["opportunity_id"].astype(str), "closed_at"])
    assert (closed < cut).all()
    assert opps.loc[rows["opportunity_id"].astype(str), "is_won"].astype(bool).all()
    assert (rows["as_of"] < cut).all()
    expected = (closed.asi8 - pd.DatetimeIndex(rows["as_of"]).asi8) / 86_400e9
    assert np.allclose(rows[REMAINING].to_numpy(), expected)


def test_what_happens_after_the_cut_does_not_change_the_model(small_tables: CRMTables) -> None:
    cut = _cut(small_tables)
    rows = _won(small_tables, cut)
    spoiled = _won(_future_spoiled(small_tables, cut), cut)
    pd.testing.assert_frame_equal(rows.reset_index(drop=True), spoiled.reset_index(drop=True))
    train, validation = split_won(rows, 0.2)
    a = fit_time_to_close(train, validation, "hazard", QUICK)
    b = fit_time_to_close(*split_won(spoiled, 0.2), "hazard", QUICK)
    days = np.array([10.0, 30.0, 90.0])
    assert np.array_equal(a.prob_closed_within(validation, days),
                          b.prob_closed_within(validation, days))


@pytest.mark.parametrize("form", ["hazard", "regression"])
def test_a_distribution_over_days_saved_and_read_back(
    small_tables: CRMTables, form: str, tmp_path: Path
) -> None:
    rows = _won(small_tables, _cut(small_tables))
    train, validation = split_won(rows, 0.2)
    model = fit_time_to_close(train, validation, form, QUICK)  # type: ignore[arg-type]
    days = np.array([0.0, 3.0, 7.0, 10.5, 30.0, 60.0, 200.0, 400.0])
    p = model.prob_closed_within(validation, days)
    assert p.shape == (len(validation), len(days))
    assert np.all(p[:, 0] == 0.0) and np.all((p >= 0) & (p <= 1))
    assert np.all(np.diff(p, axis=1) >= -1e-12)  # a CDF: never falls with more days
    # Deals that really closed within 30 days got a higher P(within 30 days) on average.
    fast = validation[REMAINING].to_numpy() <= 30
    assert p[fast, 4].mean() > p[~fast, 4].mean()
    model.save(tmp_path / "ttc")
    again = TimeToCloseModel.load(tmp_path / "ttc")
    assert again.form == form
    assert np.array_equal(again.prob_closed_within(validation, days), p)


def test_the_form_is_chosen_by_held_out_brier(small_tables: CRMTables) -> None:
    rows = _won(small_tables, _cut(small_tables))
    rest, test = split_won(rows, 0.2)
    train, validation = split_won(rest, 0.2)
    choice = choose_form(train, validation, test, QUICK)
    assert set(choice.brier) == {"hazard", "regression", "stage_rate"}
    best = min(("hazard", "regression"), key=lambda f: choice.mean_brier[f])
    assert choice.model.form == best
    assert "ttc_hazard_brier_30d" in choice.metrics()


def test_logged_in_the_deal_close_run_and_read_back_by_version(
    deal_frame: pd.DataFrame, small_tables: CRMTables, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from features.sets import DEAL_V1
    from modeling.registry import _client, load_time_to_close
    from training.evaluate import EvaluationConfig, fit_and_evaluate
    from training.train import fit_companions, log_and_register, train_settings

    from .conftest import QUICK as QUICK_DEALS

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ev = fit_and_evaluate(deal_frame, "deal_close", DEAL_V1,
                          EvaluationConfig(params=QUICK_DEALS, strict_backtest=False))
    settings = train_settings(task="deal_close", data=tmp_path, tracking_uri=uri,
                              out_dir=tmp_path / "report", num_threads=1)
    companions = fit_companions(ev, small_tables, settings)
    assert set(companions) == {"time_to_close"}
    # Fit only on won deals closed before the test period.
    fitted = companions["time_to_close"].model
    assert fitted.metadata["rows_train"] > 0
    result = log_and_register(ev, settings, plots=False, companions=companions)
    assert result.companions == ("time_to_close",) and result.version is not None
    run = _client(uri).get_run(result.run_id)
    assert run.data.tags["time_to_close_form"] == fitted.form
    assert "ttc_hazard_brier_mean" in run.data.metrics
    loaded = load_time_to_close("deal_close", version=result.version, tracking_uri=uri)
    assert loaded is not None and loaded.form == fitted.form
    test = ev.split.test.head(50)
    days = np.array([15.0, 45.0])
    assert np.array_equal(loaded.prob_closed_within(test, days),
                          fitted.prob_closed_within(test, days))
    # A lead model's run has no companion.
    assert fit_companions(ev, None, settings) == {}
