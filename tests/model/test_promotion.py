"""The registry gate on real runs: a candidate must beat the champion, the CRM's own rate and
logistic regression; a deliberately weak one is not promoted and says why; --force promotes
it on the record."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pandas as pd
import pytest

from features.sets import DEAL_V1, LEAD_V1
from modeling.registry import (
    CHALLENGER,
    CHAMPION,
    _client,
    _sqlite_version,
    load_model_version,
    resolve_alias,
    resolve_tracking_uri,
    withheld_reason,
)
from training.evaluate import EvaluationConfig, fit_and_evaluate
from training.registry import FORCED_TAG
from training.train import TrainResult, log_and_register, train_settings

from .conftest import QUICK


def _run(frame: pd.DataFrame, uri: str, tmp: Path, rounds: int) -> TrainResult:
    """Fit with ``rounds`` boosting rounds at most, then log, register and gate (no plots)."""
    params = replace(QUICK, num_boost_round=rounds)
    # The gate's own behaviour on boosters: no cold-start choice among candidates.
    ev = fit_and_evaluate(frame, "lead_qualification", LEAD_V1,
                          EvaluationConfig(params=params, cold_start=False))
    settings = train_settings(task="lead_qualification", data=tmp, tracking_uri=uri,
                              out_dir=tmp / f"r{rounds}")
    return log_and_register(ev, settings, plots=False)


@pytest.fixture()
def uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_gate_blocks_worse_and_promotes_better(lead_frame: pd.DataFrame, tmp_path: Path,
                                               uri: str) -> None:
    first = _run(lead_frame, uri, tmp_path, rounds=80)
    assert first.decision is not None and first.decision.promote, first.decision
    assert "no current champion; beats the lead source's rate" in first.decision.reason
    assert resolve_alias("lead_qualification", CHAMPION, uri) == first.version

    worse = _run(lead_frame, uri, tmp_path, rounds=2)
    m_worse, m_first = worse.evaluation, first.evaluation
    assert m_worse is not None and m_first is not None
    assert m_worse.metrics["test_log_loss"] > m_first.metrics["test_log_loss"]
    assert worse.decision is not None and not worse.decision.promote
    assert "log loss not better" in worse.decision.reason
    assert resolve_alias("lead_qualification", CHAMPION, uri) == first.version
    assert resolve_alias("lead_qualification", CHALLENGER, uri) == worse.version
    assert worse.withheld is None  # the champion still serves

    # Read straight from the store's tables, the versions are MLflow's own answers, and
    # the alias is followed when it moves; a deleted version is left to MLflow.
    client = _client(uri)
    for alias, version in ((CHAMPION, first.version), (CHALLENGER, worse.version)):
        found = _sqlite_version(resolve_tracking_uri(uri), "lead_qualification", alias, None)
        mv = client.get_model_version_by_alias("lead_qualification", alias)
        download = client.get_model_version_download_uri("lead_qualification", mv.version)
        assert found is not None and found[:2] == (version, mv.run_id)
        assert found[2] == Path(url2pathname(urlparse(download).path))
    client.set_registered_model_alias("lead_qualification", CHAMPION, worse.version)
    _, info = load_model_version("lead_qualification", CHAMPION, uri)
    assert (info.version, info.alias) == (worse.version, CHAMPION)
    client.delete_model_version("lead_qualification", worse.version)
    assert _sqlite_version(resolve_tracking_uri(uri), "lead_qualification", CHAMPION,
                           None) is None
    with pytest.raises(LookupError):
        load_model_version("lead_qualification", CHAMPION, uri)


def _weak_deal_run(frame: pd.DataFrame, uri: str, tmp: Path, force: bool) -> TrainResult:
    """A deal model that has learnt next to nothing: one tree at a tiny learning rate, no
    stage offset, no calibration. Its probabilities are about the overall win rate."""
    params = replace(QUICK, num_boost_round=1, learning_rate=1e-4)
    config = EvaluationConfig(params=params, deal_offset=False, min_calibration_entities=10**9,
                              strict_backtest=False, cold_start=False)
    ev = fit_and_evaluate(frame, "deal_close", DEAL_V1, config)
    settings = train_settings(task="deal_close", data=tmp, tracking_uri=uri, force=force,
                              out_dir=tmp / f"weak-{force}")
    return log_and_register(ev, settings, plots=False)


def test_a_weak_candidate_loses_to_the_crm_rate_and_force_promotes_it_on_the_record(
    deal_frame: pd.DataFrame, tmp_path: Path, uri: str
) -> None:
    weak = _weak_deal_run(deal_frame, uri, tmp_path, force=False)
    assert weak.evaluation is not None and weak.decision is not None
    m = weak.evaluation.metrics
    assert m["test_log_loss"] > m["baseline_rate_test_log_loss"]
    assert not weak.decision.promote and not weak.decision.forced
    assert "lost to the stage win rate" in weak.decision.reason
    assert f"{m['test_log_loss']:.4f} vs {m['baseline_rate_test_log_loss']:.4f}" in (
        weak.decision.reason)
    # Nothing serves: the version is challenger and the registry says why.
    assert resolve_alias("deal_close", CHAMPION, uri) is None
    assert resolve_alias("deal_close", CHALLENGER, uri) == weak.version
    reason = withheld_reason("deal_close", uri)
    assert reason is not None and "lost to the stage win rate" in reason
    assert weak.withheld == reason
    run = _client(uri).get_run(weak.run_id)
    assert run.data.tags[FORCED_TAG] == "false"
    assert "lost to the stage win rate" in run.data.tags["promotion"]
    card = (tmp_path / "weak-False" / "model_card.md").read_text()
    assert "lost to the stage win rate" in card

    pushed = _weak_deal_run(deal_frame, uri, tmp_path, force=True)
    assert pushed.decision is not None and pushed.decision.promote and pushed.decision.forced
    assert pushed.decision.reason.startswith("promoted by --force although it lost to the "
                                             "stage win rate")
    assert resolve_alias("deal_close", CHAMPION, uri) == pushed.version
    assert withheld_reason("deal_close", uri) is None and pushed.withheld is None
    run = _client(uri).get_run(pushed.run_id)
    assert run.data.tags[FORCED_TAG] == "true"
    assert run.data.tags["promotion"].startswith("promoted by --force")
