"""`leadscore audit` and the audit inside `leadscore train`, end to end on a small
generated CRM with a leak planted in its training set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.generator import generate_crm, write_crm
from modeling.artifact import ScoringModel
from modeling.registry import load_model_version
from serving.app import check_model, create_app
from serving.models import LoadedModel
from tests.integration.test_api_fixtures import auth, settings

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


def _served(model: ScoringModel) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The model's description in /v1/models and a lead scored with the left-out field
    missing, then 0, 30 and 3,000 days."""
    loaded = LoadedModel("lead_qualification", model, "lead_qualification", "1",
                         metadata=model.metadata)
    check_model(loaded)
    app = create_app(settings(tasks=("lead_qualification",)), models=[loaded])
    lead = {"lead_id": "L1", "created_at": "2026-01-05T10:00:00Z", "source": "referral",
            "seniority": "vp", "job_function": "sales", "activities": []}
    with TestClient(app) as client:
        described = client.get("/v1/models", headers=auth()).json()["models"][0]
        scores = [
            client.post("/v1/leads/score", headers=auth(),
                        json={"leads": [{**lead, LEAK: days}]}).json()["results"][0]
            for days in (None, 0, 30, 3000)
        ]
    return described, scores


def _served_without_the_leak(model: ScoringModel) -> None:
    """The server takes the model (its feature set is the code's), lists what it left out,
    scores a lead the same whatever the left-out field holds, and never names it."""
    described, scores = _served(model)
    assert list(described["excluded_features"]) == [LEAK]
    assert len({s["probability"] for s in scores}) == 1, scores
    assert not any("timeline" in " ".join(s["warnings"]) for s in scores)
    assert not any(r["topic"] == LEAK for s in scores
                   for r in s["reasons"]["up"] + s["reasons"]["down"])
    # The same boosters without the record: the field is read from the request (its
    # absence is named), which is what the model above ignores.
    plain = ScoringModel(model.task, model.feature_set, model.boosters, model.calibrators,
                         {k: v for k, v in model.metadata.items() if k != "excluded_features"},
                         model.route_by, model.offset, model.grading)
    described, scores = _served(plain)
    assert described["excluded_features"] == {}
    assert ["timeline" in " ".join(s["warnings"]) for s in scores] == [True, False, False,
                                                                        False]


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
    assert f"left out: {LEAK} (probe, reasons above); --allow-column {LEAK} keeps it" in out
    model, info = load_model_version("lead_qualification", None, store, version="1")
    assert list(model.metadata["excluded_features"]) == [LEAK]
    assert model.feature_set.name == "lead_v1"
    _served_without_the_leak(model)
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


def test_audit_static_reads_static_mode_s_training_rows(crm_dir: Path, tmp_path: Path) -> None:
    _, timed = _run("audit", "--data", str(crm_dir), "--task", "lead_qualification",
                    "--out", str(tmp_path / "t.json"))
    code, static = _run("audit", "--data", str(crm_dir), "--task", "lead_qualification",
                        "--static", "--out", str(tmp_path / "s.json"))
    assert code == 0, static
    assert "static mode (--static): the audit reads the training rows of train's static " \
           "mode" in static and "static mode" not in timed
    rows = [json.loads((tmp_path / f).read_text())["tasks"][0]["rows"]
            for f in ("t.json", "s.json")]
    assert rows[1] > rows[0]  # every fold's rows, not the first period's
