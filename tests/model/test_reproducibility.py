"""Same data and seed give the same metrics (to 1e-9) and the same scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.sets import DEAL_V1, LEAD_V1
from training.evaluate import EvaluationConfig, fit_and_evaluate

from .conftest import QUICK


def test_same_seed_same_metrics(lead_frame: pd.DataFrame) -> None:
    cfg = EvaluationConfig(params=QUICK, seed=13)
    a = fit_and_evaluate(lead_frame, "lead_qualification", LEAD_V1, cfg)
    b = fit_and_evaluate(lead_frame.copy(), "lead_qualification", LEAD_V1, cfg)
    assert a.metrics.keys() == b.metrics.keys()
    for k in a.metrics:
        assert abs(a.metrics[k] - b.metrics[k]) <= 1e-9, k
    X = a.split.test[LEAD_V1.names]
    assert np.allclose(a.model.predict_proba(X), b.model.predict_proba(X), rtol=0, atol=1e-12)


def test_row_order_of_the_input_does_not_matter(deal_frame: pd.DataFrame) -> None:
    cfg = EvaluationConfig(params=QUICK, seed=13, censor_days=60)
    a = fit_and_evaluate(deal_frame, "deal_close", DEAL_V1, cfg)
    shuffled = deal_frame.sample(frac=1.0, random_state=1)
    b = fit_and_evaluate(shuffled.reset_index(drop=True), "deal_close", DEAL_V1, cfg)
    for k in a.metrics:
        assert abs(a.metrics[k] - b.metrics[k]) <= 1e-9, k
