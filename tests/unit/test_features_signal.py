"""On the generator's CRM, each feature set separates its label, and no feature alone does.

A single feature with an AUC above 0.95 would smell of leakage (an outcome that slipped
into the features); a set that a small LightGBM cannot rank with would be useless.
"""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from features.declarations import FeatureSet
from features.sets import DEAL_V1, LEAD_V1
from features.training_set import build_training_set
from leadscore import generator


@pytest.fixture(scope="module")
def crm():  # type: ignore[no-untyped-def]
    return generator.generate_crm(4000, seed=17).tables


def _single_feature_auc(x: pd.Series, y: np.ndarray) -> float:
    """AUC of one feature used alone, in its better direction (categories: their label rate)."""
    if isinstance(x.dtype, pd.CategoricalDtype):
        codes = x.cat.codes.to_numpy()
        score = pd.Series(y).groupby(codes).mean().reindex(codes).to_numpy()
    else:
        score = x.astype("float64").to_numpy()
        fill = np.nanmedian(score) if np.isfinite(score).any() else 0.0
        score = np.where(np.isnan(score), fill, score)
    auc = roc_auc_score(y, score)
    return float(max(auc, 1.0 - auc))


@pytest.mark.parametrize(("task", "fs"), [("lead_qualification", LEAD_V1), ("deal_close", DEAL_V1)])
def test_no_single_feature_gives_the_label_away_but_the_set_ranks(
    crm,  # type: ignore[no-untyped-def]
    task: str,
    fs: FeatureSet,
) -> None:
    data = build_training_set(crm, task)
    data = data.loc[data["label"].notna()]
    y = data["label"].astype(bool).to_numpy()
    assert 0.02 < y.mean() < 0.8

    aucs = {
        name: _single_feature_auc(data[name], y) for name in fs.names if data[name].nunique() > 1
    }
    assert max(aucs.values()) < 0.95, sorted(aucs.items(), key=lambda kv: -kv[1])[:3]
    assert max(aucs.values()) > 0.6  # some feature alone carries signal

    cut = data["as_of"].quantile(0.7)
    train, test = (data["as_of"] < cut).to_numpy(), (data["as_of"] >= cut).to_numpy()
    X = data[fs.names].apply(lambda s: s.astype("float64") if s.dtype == "boolean" else s)
    model = lgb.LGBMClassifier(n_estimators=150, learning_rate=0.05, n_jobs=1, verbose=-1)
    model.fit(X[train], y[train])
    auc = roc_auc_score(y[test], model.predict_proba(X[test])[:, 1])
    assert auc > 0.75
