"""Cold start on a small generated CRM: below the floor of outcomes a rate model, above it
a booster started from the rates and regularised toward them; the static mode's
cross-validated figures."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.sets import DEAL_V1, LEAD_V1
from modeling.artifact import ScoringModel
from tests.model.conftest import QUICK
from training.cold_start import MIN_OUTCOMES, REGULARISED_OUTCOMES
from training.evaluate import EvaluationConfig, fit_and_evaluate

CONFIG = EvaluationConfig(params=QUICK, strict_backtest=False, small_data_entities=5000)


def _entities(frame: pd.DataFrame, key: str, n: int, seed: int = 1) -> pd.DataFrame:
    keep = frame[key].drop_duplicates().sample(n, random_state=seed)
    return frame.loc[frame[key].isin(keep)].reset_index(drop=True)


@pytest.fixture(scope="module")
def few_deals(deal_frame: pd.DataFrame) -> pd.DataFrame:
    return _entities(deal_frame, "opportunity_id", 60)


def test_below_the_floor_a_calibrated_rate_model(few_deals: pd.DataFrame,
                                                 tmp_path: Path) -> None:
    ev = fit_and_evaluate(few_deals, "deal_close", DEAL_V1, CONFIG)
    assert ev.regime == "rate_model" and ev.model.is_rate_model
    assert ev.outcomes is not None and ev.outcomes.fewest < MIN_OUTCOMES
    assert ev.regime_note is not None and "more positive" in ev.regime_note
    # Each deal scores its stage's smoothed training rate; the baseline is the same rate.
    info = ev.model.metadata["rate_model"]
    test = ev.split.test
    expected = test["stage"].astype("object").map(
        {k: v["rate"] for k, v in info["rates"].items()}).fillna(info["prior"])
    assert np.allclose(ev.test_scores["model"], expected.to_numpy(), atol=1e-6)
    assert ev.metrics["test_log_loss"] == pytest.approx(
        ev.metrics["baseline_rate_test_log_loss"], abs=1e-6)
    assert np.isfinite(ev.metrics["test_ece"])
    assert ev.params["model_kind"] == "rate"
    # The rate column carries the reason; bias is the overall rate; each row sums to raw.
    contrib = ev.model.contributions(test)
    assert np.allclose(contrib.sum(axis=1), ev.model.raw_score(test))
    others = contrib.drop(columns=["stage", "bias"])
    assert (others == 0).all().all()
    assert contrib["bias"].nunique() == 1
    # Saved as plain files and loaded again: the same probabilities.
    ev.model.save(tmp_path / "m")
    assert not list((tmp_path / "m").glob("booster_*"))
    loaded = ScoringModel.load(tmp_path / "m")
    assert loaded.is_rate_model
    assert np.allclose(loaded.predict_proba(test), ev.test_scores["model"])


def test_above_the_floor_a_booster_chosen_against_the_rates(
        deal_frame: pd.DataFrame, lead_frame: pd.DataFrame) -> None:
    leads = _entities(lead_frame, "lead_id", 1200)
    ev = fit_and_evaluate(leads, "lead_qualification", LEAD_V1, CONFIG)
    assert ev.outcomes is not None and MIN_OUTCOMES <= ev.outcomes.fewest < REGULARISED_OUTCOMES
    # The booster from the rates, the booster without and the rates alone were fit; the
    # validation period's log loss chose, so the registered model is not worse there.
    note = str(ev.regime_note)
    losses = [float(x) for x in re.findall(r"(\d\.\d{4}) (?:from the rates|without|for)",
                                           note)]
    assert len(losses) == 3, note
    assert losses[["regularised", "booster", "rate_model"].index(ev.regime)] == min(losses)
    if ev.regime == "regularised":
        assert ev.model.offset is not None and ev.model.offset.column == "source"
        trees = ev.model.boosters["__all__"].dump_model()["tree_info"]
        assert max(t["num_leaves"] for t in trees) <= 5
    assert ev.regime != "rate_model"  # the activity features carry signal here
    assert ev.metrics["test_log_loss"] < ev.metrics["baseline_rate_test_log_loss"]
    # Deals start from the stage's rate whichever booster is chosen.
    ev = fit_and_evaluate(deal_frame, "deal_close", DEAL_V1, CONFIG)
    assert ev.outcomes is not None and ev.outcomes.fewest >= MIN_OUTCOMES
    assert ev.model.offset is not None and ev.model.offset.column == "stage"


def test_static_mode_cross_validates_every_row_by_group(deal_frame: pd.DataFrame) -> None:
    deals = _entities(deal_frame, "opportunity_id", 400, seed=2)
    config = EvaluationConfig(params=QUICK, strict_backtest=False, small_data_entities=5000,
                              evaluation="static_cv", folds=3)
    ev = fit_and_evaluate(deals, "deal_close", DEAL_V1, config)
    assert ev.static and ev.params["evaluation"] == "static_cv" and ev.params["folds"] == 3
    assert len(ev.split.test) == len(deals)
    for name in ("model", "baseline_rate", "baseline_lr"):
        assert not np.isnan(ev.test_scores[name]).any(), name
    for k in ("test_roc_auc", "test_log_loss", "test_ece", "baseline_rate_test_log_loss"):
        assert np.isfinite(ev.metrics[k]), k
    assert "strict_train_rows_dropped" not in ev.metrics  # no later period to be strict on
    assert ev.metrics["test_roc_auc"] > 0.6
