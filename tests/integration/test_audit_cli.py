"""`leadscore audit` and the audit inside `leadscore train`, end to end on a small
generated CRM with a leak planted in its training set."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.generator import generate_crm, write_crm
from modeling.registry import load_model_version

LEAK = "timeline_days"
"""A lead_v1 feature overwritten, in the planted training set, by the label with noise."""


@pytest.fixture(scope="module")
def crm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crm")
    write_crm(generate_crm(1500, seed=4, months=18), out)
    return out


@pytest.fixture(scope="module")
def leaky_set(crm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("set") / "leads.parquet"
    result = CliRunner().invoke(app, ["build", "--task", "lead_qualification", "--data",
                                      str(crm_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    noise = np.random.default_rng(0).normal(scale=0.3, size=len(frame))
    frame[LEAK] = (frame["label"].astype("float64") * 10 + noise).where(frame["label"].notna())
    frame.to_parquet(out)
    return out


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LEADSCORE_TRAIN_MIN_DATA_IN_LEAF", "20")
    monkeypatch.setenv("LEADSCORE_TRAIN_NUM_THREADS", "1")
    return uri


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args))
    return result.exit_code, " ".join(result.output.split())


def test_audit_of_the_clean_crm_flags_nothing_and_writes_json(
    crm_dir: Path, tmp_path: Path
) -> None:
    code, out = _run("audit", "--data", str(crm_dir), "--task", "lead_qualification",
                     "--task", "deal_close", "--out", str(tmp_path / "audit.json"))
    assert code == 0, out
    assert "lead_qualification: leakage audit of the training period" in out
    assert out.count("no column flagged") == 2
    body = json.loads((tmp_path / "audit.json").read_text())
    assert [t["task"] for t in body["tasks"]] == ["lead_qualification", "deal_close"]
    assert all(t["findings"] == [] for t in body["tasks"])
    assert body["tasks"][1]["skipped"] == {}  # deals: every rule ran


def test_audit_of_a_planted_leak_prints_it_and_exits_0(leaky_set: Path, tmp_path: Path) -> None:
    code, out = _run("audit", "--data", str(leaky_set), "--task", "lead_qualification",
                     "--out", str(tmp_path / "audit.json"))
    assert code == 0, out
    assert LEAK in out and "probe" in out and "left out" in out
    task = json.loads((tmp_path / "audit.json").read_text())["tasks"][0]
    assert task["flagged"] == [LEAK] and list(task["excluded"]) == [LEAK]
    code, out = _run("audit", "--data", str(leaky_set))
    assert code == 2 and "give it with --task" in out


def test_train_leaves_the_flagged_column_out_and_records_why(
    leaky_set: Path, tmp_path: Path, store: str
) -> None:
    code, out = _run("train", "--task", "lead_qualification", "--data", str(leaky_set),
                     "--out", str(tmp_path / "report"), "--num-boost-round", "40",
                     "--no-strict-backtest")
    assert code == 0, out
    assert f"left out: {LEAK}" in out and f"--allow-column {LEAK} keeps it" in out
    model, info = load_model_version("lead_qualification", None, store, version="1")
    assert list(model.metadata["excluded_features"]) == [LEAK]
    assert model.feature_set.name == "lead_v1"
    client = MlflowClient(store, store)
    run = client.get_run(info.run_id or "")
    assert run.data.metrics["audit_flagged_columns"] == 1
    assert run.data.metrics["audit_excluded_columns"] == 1
    assert run.data.metrics["test_roc_auc"] < 0.95  # the leak would give about 1.0
    audit = json.loads(Path(client.download_artifacts(run.info.run_id, "audit.json",
                                                      str(tmp_path))).read_text())
    assert list(audit["excluded"]) == [LEAK]
    card = (tmp_path / "report" / "model_card.md").read_text()
    assert "## Leakage audit" in card and f"| `{LEAK}` | probe |" in card

    code, out = _run("train", "--task", "lead_qualification", "--data", str(leaky_set),
                     "--out", str(tmp_path / "kept"), "--num-boost-round", "40",
                     "--no-strict-backtest", "--allow-column", LEAK, "--no-register")
    assert code == 0, out
    assert f"kept by --allow-column, a leak risk: {LEAK}" in out
    card = (tmp_path / "kept" / "model_card.md").read_text()
    assert "**Leak risk:**" in card and "kept (--allow-column)" in card
    runs = client.search_runs([run.info.experiment_id], order_by=["attributes.start_time DESC"])
    assert runs[0].data.metrics["audit_excluded_columns"] == 0
    assert runs[0].data.params["audit_allowed_columns"] == LEAK
    assert runs[0].data.metrics["test_roc_auc"] > 0.95
