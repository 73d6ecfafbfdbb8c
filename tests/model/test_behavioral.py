"""Behavioural tests: what a rep expects of a score, held on models trained on generated data.

Directional expectations (more pricing-page visits never lowers a lead's score; a deal
whose close date was pushed three times scores no higher than the same deal never
pushed), plus invariance and a minimum-functionality floor.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.sets import DEAL_V1, LEAD_V1
from modeling.artifact import ScoringModel
from training.evaluate import Evaluation, EvaluationConfig, fit_and_evaluate

from .conftest import QUICK


@pytest.fixture(scope="module")
def lead_eval(lead_frame: pd.DataFrame) -> Evaluation:
    return fit_and_evaluate(lead_frame, "lead_qualification", LEAD_V1,
                            EvaluationConfig(params=QUICK, seed=3))


@pytest.fixture(scope="module", params=["single", "per_stage"])
def deal_model(request: pytest.FixtureRequest, deal_frame: pd.DataFrame) -> ScoringModel:
    cfg = EvaluationConfig(params=QUICK, seed=3, deal_model=request.param, censor_days=60)
    return fit_and_evaluate(deal_frame, "deal_close", DEAL_V1, cfg).model


def test_more_pricing_page_visits_never_lowers_a_lead_score(lead_eval: Evaluation) -> None:
    X = lead_eval.split.test[LEAD_V1.names].head(400).copy()
    base = lead_eval.model.predict_proba(X)
    for extra in (1, 3, 10):
        more = X.copy()
        for window in (7, 30, 90):
            col = f"pricing_page_visit_{window}d"
            more[col] = more[col] + extra
        assert np.all(lead_eval.model.predict_proba(more) >= base - 1e-12)


def test_close_date_pushes_never_raise_a_deal_score(
    deal_model: ScoringModel, deal_frame: pd.DataFrame
) -> None:
    X = deal_frame[DEAL_V1.names].tail(400).copy()
    never = X.assign(close_date_pushes=0, close_date_push_days=0.0)
    pushed = X.assign(close_date_pushes=3, close_date_push_days=90.0)
    assert np.all(deal_model.predict_proba(pushed) <= deal_model.predict_proba(never) + 1e-12)


def test_score_ignores_column_order_and_index(lead_eval: Evaluation) -> None:
    X = lead_eval.split.test[LEAD_V1.names].head(50)
    shuffled = X[list(reversed(LEAD_V1.names))].set_axis(np.arange(100, 150))
    assert np.array_equal(lead_eval.model.predict_proba(X), lead_eval.model.predict_proba(shuffled))


def test_one_row_scores_as_in_a_batch(lead_eval: Evaluation) -> None:
    X = lead_eval.split.test[LEAD_V1.names].head(300)
    batch = lead_eval.model.predict_proba(X)
    single = np.array([lead_eval.model.predict_proba(X.iloc[[i]])[0] for i in range(0, 300, 37)])
    assert np.allclose(single, batch[::37], rtol=0, atol=1e-12)


def test_lead_model_has_signal_and_beats_the_source_rate(lead_eval: Evaluation) -> None:
    m = lead_eval.metrics
    assert m["test_roc_auc"] > 0.7
    assert m["test_roc_auc"] > m["baseline_rate_test_roc_auc"]
