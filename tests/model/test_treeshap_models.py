"""The project's trained models explain through modeling.treeshap exactly as pred_contrib."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest

from features.sets import DEAL_V1, LEAD_V1
from modeling import treeshap
from modeling.artifact import SMALL_BATCH, ScoringModel
from training.evaluate import EvaluationConfig, fit_and_evaluate

from .conftest import QUICK


@pytest.fixture(scope="module")
def models(lead_frame: pd.DataFrame, deal_frame: pd.DataFrame
           ) -> dict[str, tuple[ScoringModel, pd.DataFrame]]:
    out = {}
    lead = EvaluationConfig(params=QUICK, seed=5, cold_start=False)
    out["lead"] = (fit_and_evaluate(lead_frame, "lead_qualification", LEAD_V1, lead).model,
                   lead_frame[LEAD_V1.names])
    for kind in ("single", "per_stage"):
        cfg = EvaluationConfig(params=QUICK, seed=5, deal_model=kind, censor_days=60,
                               cold_start=False)
        out[kind] = (fit_and_evaluate(deal_frame, "deal_close", DEAL_V1, cfg).model,
                     deal_frame[DEAL_V1.names])
    return out


def _pred_contrib(model: ScoringModel, X: pd.DataFrame) -> np.ndarray:
    """The model's contributions as LightGBM's pred_contrib gives them, booster by booster."""
    matrix = model._matrix(model._check(X))
    out = np.zeros((len(X), len(model.feature_set.names) + 1))
    for key, idx, m in model._parts(matrix, X):
        out[idx] = model.boosters[key].predict(m, pred_contrib=True, num_threads=1)
    model._add_offset(out, model._offset(matrix, X))
    return out


@pytest.mark.parametrize("name", ["lead", "single", "per_stage"])
def test_contributions_equal_pred_contrib(
    name: str, models: dict[str, tuple[ScoringModel, pd.DataFrame]]
) -> None:
    model, X = models[name]
    assert len(X) > SMALL_BATCH  # both the one-thread and the threaded kernel run
    expected = _pred_contrib(model, X)
    explainers = model.explainers()
    assert set(explainers) == set(model.boosters)
    assert all(e is not None for e in explainers.values())
    got = model.contributions(X).to_numpy()
    assert np.abs(got - expected).max() <= 1e-9
    small = model.contributions(X.head(7)).to_numpy()
    assert np.abs(small - expected[:7]).max() <= 1e-9
    _, contrib = model.score(X, contributions=True)
    assert contrib is not None and np.abs(contrib - expected).max() <= 1e-9
    one = model.score_matrix(model._matrix(model._check(X.head(1))), True)[1]
    assert one is not None and np.abs(one - expected[:1]).max() <= 1e-9
    lgb = model.contributions(X, lightgbm=True)  # training's plots: LightGBM's own
    assert np.abs(lgb.to_numpy() - expected).max() <= 1e-9
    assert list(lgb.columns) == [*model.feature_set.names, "bias"]


def test_a_booster_it_cannot_explain_uses_pred_contrib(
    models: dict[str, tuple[ScoringModel, pd.DataFrame]], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    model, X = models["per_stage"]
    fresh = ScoringModel(model.task, model.feature_set, model.boosters, model.calibrators,
                         model.metadata, model.route_by, model.offset, model.grading)
    refused = sorted(model.boosters)[0]

    def of(booster: object, **options: int) -> treeshap.TreeExplainer:
        if booster is model.boosters[refused]:
            raise treeshap.Unsupported("made up for the test")
        return treeshap.TreeExplainer(treeshap.parse(booster, **options))  # type: ignore[arg-type]

    monkeypatch.setattr(treeshap.TreeExplainer, "of", staticmethod(of))
    with caplog.at_level(logging.INFO, logger="modeling.treeshap"):
        got = fresh.contributions(X).to_numpy()
        fresh.contributions(X.head(3))
    assert fresh.explainers()[refused] is None
    assert sum(e is None for e in fresh.explainers().values()) == 1
    lines = [r for r in caplog.records if "pred_contrib" in r.getMessage()]
    assert len(lines) == 1 and "made up for the test" in lines[0].getMessage()
    assert np.abs(got - _pred_contrib(model, X)).max() <= 1e-9
