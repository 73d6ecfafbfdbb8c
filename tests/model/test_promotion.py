"""The registry gate on real runs: a worse model does not become champion; a better one does."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from features.sets import LEAD_V1
from modeling.registry import CHALLENGER, CHAMPION, resolve_alias
from training.evaluate import EvaluationConfig, fit_and_evaluate
from training.train import TrainResult, log_and_register, train_settings

from .conftest import QUICK


def _run(frame: pd.DataFrame, uri: str, tmp: Path, rounds: int) -> TrainResult:
    """Fit with ``rounds`` boosting rounds at most, then log, register and gate (no plots)."""
    params = replace(QUICK, num_boost_round=rounds)
    ev = fit_and_evaluate(frame, "lead_qualification", LEAD_V1, EvaluationConfig(params=params))
    settings = train_settings(task="lead_qualification", data=tmp, tracking_uri=uri,
                              out_dir=tmp / f"r{rounds}")
    return log_and_register(ev, settings, plots=False)


def test_gate_blocks_worse_and_promotes_better(lead_frame: pd.DataFrame, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    weak = _run(lead_frame, uri, tmp_path, rounds=2)
    assert weak.decision is not None and weak.decision.promote  # nothing to beat yet
    assert resolve_alias("lead_qualification", CHAMPION, uri) == weak.version

    strong = _run(lead_frame, uri, tmp_path, rounds=80)
    m_weak, m_strong = weak.evaluation.metrics, strong.evaluation.metrics
    assert m_strong["test_log_loss"] < m_weak["test_log_loss"]
    assert strong.decision is not None and strong.decision.promote, strong.decision
    assert resolve_alias("lead_qualification", CHAMPION, uri) == strong.version

    worse = _run(lead_frame, uri, tmp_path, rounds=2)
    assert worse.decision is not None and not worse.decision.promote
    assert "log loss not better" in worse.decision.reason
    assert resolve_alias("lead_qualification", CHAMPION, uri) == strong.version
    assert resolve_alias("lead_qualification", CHALLENGER, uri) == worse.version
