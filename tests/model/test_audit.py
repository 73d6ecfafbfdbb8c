"""The leakage audit on the generator's CRM: nothing flagged on its clean data, each rule
on a leak planted in it, and a flagged column left out of the model in a way serving
keeps (the feature set is the registered one; the boosters never read the column)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.declarations import FeatureSet, FeatureSpec
from features.schema import CRMTables
from features.sets import DEAL_V1, FEATURE_SETS, LEAD_V1
from modeling.artifact import ALL, ScoringModel
from serving.app import check_model
from serving.models import LoadedModel
from tests.model.conftest import QUICK
from training.audit import (
    AFTER_OUTCOME_TIME,
    CHANGED_AFTER_OUTCOME,
    CLOSE_TIME,
    ONE_OUTCOME,
    PROBE,
    audit_task,
)
from training.evaluate import EvaluationConfig, fit_and_evaluate

CONFIG = EvaluationConfig(params=QUICK, cold_start=False)  # the booster, however few deals


def _with(frame: pd.DataFrame, name: str, values: object) -> tuple[pd.DataFrame, FeatureSet]:
    """The deal frame and deal_v1 with one more (numeric) feature column."""
    out = frame.assign(**{name: values})
    spec = FeatureSpec(name, "deal", "float", f"{name} {{value}}")
    return out, replace(DEAL_V1, features=(*DEAL_V1.features, spec))


def _closed_at(frame: pd.DataFrame, tables: CRMTables) -> pd.Series:
    closed = tables.opportunities.set_index("opportunity_id")["closed_at"]
    return frame["opportunity_id"].map(closed)


@pytest.mark.parametrize("task", ["lead_qualification", "deal_close"])
def test_nothing_is_flagged_on_the_generators_clean_data(
    task: str, lead_frame: pd.DataFrame, deal_frame: pd.DataFrame, small_tables: CRMTables
) -> None:
    frame, fs = (lead_frame, LEAD_V1) if task == "lead_qualification" else (deal_frame, DEAL_V1)
    report = audit_task(frame, task, fs, CONFIG, tables=small_tables)
    assert report.findings == [], [(f.column, f.rule, f.evidence) for f in report.findings]
    assert len(report.probe) == len(fs.names)
    assert 0.6 < max(report.probe.values()) < 0.9
    if task == "deal_close":  # deals have outcome times and a field history: every rule ran
        assert report.skipped == {}


def test_probe_flags_the_label_with_noise_planted_in_the_deals(
    deal_frame: pd.DataFrame, small_tables: CRMTables
) -> None:
    noise = np.random.default_rng(0).normal(scale=0.3, size=len(deal_frame))
    frame, fs = _with(deal_frame, "rep_forecast", deal_frame["label"] + noise)
    report = audit_task(frame, "deal_close", fs, CONFIG, tables=small_tables)
    assert {(f.column, f.rule) for f in report.findings} == {("rep_forecast", PROBE)}
    assert list(report.excluded) == ["rep_forecast"]


def test_one_outcome_flags_a_field_filled_in_only_for_won_deals(
    deal_frame: pd.DataFrame, small_tables: CRMTables
) -> None:
    values = np.where(deal_frame["label"] == 1, 5.0, np.nan)
    frame, fs = _with(deal_frame, "won_discount", values)
    report = audit_task(frame, "deal_close", fs, CONFIG, tables=small_tables)
    assert ("won_discount", ONE_OUTCOME) in {(f.column, f.rule) for f in report.findings}
    assert list(report.excluded) == ["won_discount"]


def test_close_time_flags_a_days_to_close_column(
    deal_frame: pd.DataFrame, small_tables: CRMTables
) -> None:
    opps = small_tables.opportunities.set_index("opportunity_id")
    days = (opps["closed_at"] - opps["created_at"]).dt.total_seconds() / 86400
    frame, fs = _with(deal_frame, "total_cycle_days", deal_frame["opportunity_id"].map(days))
    report = audit_task(frame, "deal_close", fs, CONFIG, tables=small_tables)
    close_time = [f for f in report.findings if f.rule == CLOSE_TIME]
    assert [f.column for f in close_time] == ["total_cycle_days"]
    assert close_time[0].evidence["spearman"] > 0.95
    assert "total_cycle_days" in report.excluded


def test_after_outcome_time_flags_a_close_date_set_at_the_close(
    deal_frame: pd.DataFrame, small_tables: CRMTables
) -> None:
    """The contract's own column (a CRM that overwrites the expected close date when the
    deal closes) and a timestamp column passed in the training set."""
    opps = small_tables.opportunities.copy()
    opps["close_date"] = opps["closed_at"].fillna(opps["close_date"])
    tables = replace(small_tables, opportunities=opps)
    frame = deal_frame.assign(last_modified=_closed_at(deal_frame, small_tables))
    report = audit_task(frame, "deal_close", DEAL_V1, CONFIG, tables=tables)
    found = {(f.column, f.rule) for f in report.findings}
    assert found == {("opportunities.close_date", AFTER_OUTCOME_TIME),
                     ("last_modified", AFTER_OUTCOME_TIME)}
    # Neither is a feature the model reads: nothing to leave out.
    assert report.excluded == {}


def test_changed_after_outcome_flags_amounts_edited_after_the_close(
    deal_frame: pd.DataFrame, small_tables: CRMTables
) -> None:
    opps = small_tables.opportunities
    closed = opps.loc[opps["closed_at"].notna()].iloc[::4]
    hist = small_tables.opportunity_history
    last = hist.sort_values("changed_at").drop_duplicates("opportunity_id", keep="last")
    late = last.loc[last["opportunity_id"].isin(closed["opportunity_id"])].copy()
    late["changed_at"] = late["changed_at"] + pd.Timedelta(days=20)
    late["amount"] = late["amount"] * 1.5
    tables = replace(small_tables, opportunity_history=pd.concat([hist, late],
                                                                 ignore_index=True))
    report = audit_task(deal_frame, "deal_close", DEAL_V1, CONFIG, tables=tables)
    found = [f for f in report.findings if f.rule == CHANGED_AFTER_OUTCOME]
    assert [f.column for f in found] == ["opportunities.amount"]
    assert 0.1 < found[0].evidence["share"] < 0.4
    # The features read the amount from the history as of each snapshot: the deal_v1
    # feature is unaffected and kept; the finding names the current record's column.
    assert report.excluded == {}


def test_an_excluded_feature_is_read_and_ignored_by_the_saved_model(
    deal_frame: pd.DataFrame, tmp_path: Path
) -> None:
    """The model keeps the registered feature set (serving's check compares it with the
    code's), its boosters never split on the excluded column, and the saved model scores
    the same whatever that column holds."""
    config = replace(CONFIG, excluded={"amount": "planted for the test"},
                     strict_backtest=False)
    ev = fit_and_evaluate(deal_frame, "deal_close", DEAL_V1, config)
    model = ev.model
    assert model.feature_set.names == FEATURE_SETS["deal_v1"].names
    assert model.metadata["excluded_features"] == {"amount": "planted for the test"}
    booster = model.boosters[ALL]
    gain = dict(zip(booster.feature_name(), booster.feature_importance("split"), strict=True))
    assert gain["amount"] == 0 and sum(gain.values()) > 0
    model.save(tmp_path / "model")
    loaded = ScoringModel.load(tmp_path / "model")
    rows = ev.split.test.head(200)
    shuffled = rows.assign(amount=np.random.default_rng(1).uniform(0, 1e6, len(rows)))
    assert np.array_equal(loaded.predict_proba(rows), loaded.predict_proba(shuffled))
    assert np.all(loaded.contributions(shuffled)["amount"] == 0)
    check_model(LoadedModel("deal_close", loaded, "deal_close", "1"))  # serving takes it
    # Without the exclusion the same fit reads the amount.
    plain = fit_and_evaluate(deal_frame, "deal_close", DEAL_V1,
                             replace(CONFIG, strict_backtest=False)).model
    assert not np.array_equal(plain.predict_proba(rows), plain.predict_proba(shuffled))


def test_excluding_a_column_the_feature_set_lacks_is_an_error(deal_frame: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match="not features of deal_v1"):
        fit_and_evaluate(deal_frame, "deal_close", DEAL_V1,
                         replace(CONFIG, excluded={"nope": "x"}))


def test_a_training_set_file_gives_its_outcome_times_by_the_tasks_outcome_columns(
    deal_frame: pd.DataFrame, small_tables: CRMTables
) -> None:
    """Without tables: a ``closed_at`` column of the frame is the outcome time, so a
    whole-cycle count in place of a feature and a timestamp written at the close are found."""
    opps = small_tables.opportunities.set_index("opportunity_id")
    cycle = (opps["closed_at"] - opps["created_at"]).dt.total_seconds() / 86400
    closed = _closed_at(deal_frame, small_tables)
    frame = deal_frame.assign(days_to_close=deal_frame["opportunity_id"].map(cycle),
                              closed_at=closed, last_modified=closed + pd.Timedelta(hours=1))
    report = audit_task(frame, "deal_close", DEAL_V1, CONFIG)
    assert {(f.column, f.rule) for f in report.findings} == {
        ("days_to_close", CLOSE_TIME), ("last_modified", AFTER_OUTCOME_TIME)}
    assert list(report.excluded) == ["days_to_close"]
    assert set(report.skipped) == {CHANGED_AFTER_OUTCOME}
    plain = audit_task(deal_frame, "deal_close", DEAL_V1, CONFIG)
    assert plain.findings == [] and set(plain.skipped) == {
        CHANGED_AFTER_OUTCOME, AFTER_OUTCOME_TIME, CLOSE_TIME}
