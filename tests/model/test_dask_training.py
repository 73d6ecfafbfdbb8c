"""Training on Dask: ``lightgbm.dask`` on a ``LocalCluster`` of two single-threaded workers
(LightGBM picks a free port per worker: no fixed ``local_listen_port`` on one host).

The model fit there, its rounds chosen first by a single-machine fit early-stopped on a
sample, ranks the test period within 0.005 ROC AUC of the single-machine model on the same
split, and is the same kind of artifact: a plain LightGBM booster in a ScoringModel that
saves and loads as any other.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.tasks import task_spec
from features.training_set import build_training_set
from leadscore.generator import generate_crm
from modeling.artifact import ALL, ScoringModel
from tests.dask_cluster import require_dask
from tests.model.conftest import QUICK
from training.evaluate import Evaluation, EvaluationConfig, fit_and_evaluate

if TYPE_CHECKING:
    from distributed import Client

TASK = "lead_qualification"
AUC_TOLERANCE = 0.005


@pytest.fixture(scope="module")
def client() -> Iterator[Client]:
    require_dask()
    from leadscore.cluster import dask_client

    with dask_client("local", n_workers=2, threads_per_worker=1) as c:
        yield c


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    """A tiny CRM's lead snapshots: enough test rows (about 4,700) for AUC to be firm to a
    few thousandths, few enough to fit in seconds."""
    out = build_training_set(generate_crm(5000, seed=11, months=18).tables, TASK)
    out = out.loc[out["label"].notna()].copy()
    out["label"] = out["label"].astype("int64")
    return out


CONFIG = EvaluationConfig(params=QUICK, strict_backtest=False)


@pytest.fixture(scope="module")
def single(frame: pd.DataFrame) -> Evaluation:
    return fit_and_evaluate(frame, TASK, task_spec(TASK).feature_set, CONFIG)


def _on_dask(frame: pd.DataFrame, client: Client, **fitter: int) -> Evaluation:
    from training.dask_fit import DaskBoosterFitter

    return fit_and_evaluate(frame, TASK, task_spec(TASK).feature_set, CONFIG,
                            fit=DaskBoosterFitter(client, **fitter))


def test_dask_model_ranks_within_0005_auc_of_the_single_machine_model(
    frame: pd.DataFrame, client: Client, single: Evaluation, tmp_path: Path,
) -> None:
    ev = _on_dask(frame, client)
    assert ev.split.test.index.equals(single.split.test.index)  # the same split
    gap = abs(ev.metrics["test_roc_auc"] - single.metrics["test_roc_auc"])
    assert gap < AUC_TOLERANCE, (ev.metrics["test_roc_auc"], single.metrics["test_roc_auc"])
    # The whole training period fits the sample: the rounds are the single machine's.
    choice = ev.rounds[ALL]
    assert choice.sample_train_rows == choice.train_rows == len(single.split.train)
    assert choice.rounds == single.best_iterations[ALL] == ev.best_iterations[ALL]
    assert choice.workers == 2
    booster = ev.model.boosters[ALL]
    assert isinstance(booster, lgb.Booster) and booster.current_iteration() == choice.rounds
    # Calibrated as today, and saved and loaded as any single-machine model is.
    assert ev.calibration[ALL].calibrator.method in {"none", "sigmoid", "isotonic"}
    ev.model.save(tmp_path / "model")
    loaded = ScoringModel.load(tmp_path / "model")
    np.testing.assert_allclose(loaded.predict_proba(ev.split.test),
                               ev.model.predict_proba(ev.split.test), rtol=1e-9)


def test_rounds_are_chosen_on_a_sample_of_whole_entities(
    frame: pd.DataFrame, client: Client, single: Evaluation,
) -> None:
    ev = _on_dask(frame, client, sample_rows=4000)
    choice = ev.rounds[ALL]
    assert choice.sample_train_rows <= 4000 < choice.train_rows
    assert choice.sample_validation_rows == choice.validation_rows  # under 4,000 rows
    assert "a sample of whole entities" in choice.describe()
    assert ev.model.boosters[ALL].current_iteration() == choice.rounds
    assert abs(ev.metrics["test_roc_auc"] - single.metrics["test_roc_auc"]) < 0.02
