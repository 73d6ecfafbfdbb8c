"""`leadscore train / promote / evaluate` end to end on a small generated CRM.

Each test gets its own SQLite tracking store (tmp_path), so nothing touches models/.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.generator import generate_crm, write_crm
from modeling.registry import CHALLENGER, CHAMPION, load_model_version, resolve_alias

QUICK_FLAGS = ["--num-boost-round", "60"]


@pytest.fixture(scope="module")
def crm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("crm")
    write_crm(generate_crm(2000, seed=5, months=18), out)
    return out


def _train(crm_dir: Path, tmp_path: Path, *extra: str) -> str:
    result = CliRunner().invoke(
        app,
        ["train", "--task", "lead_qualification", "--data", str(crm_dir),
         "--out", str(tmp_path / "report"), *QUICK_FLAGS, *extra],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    return " ".join(result.output.split())  # the console wraps long lines


def test_train_registers_gates_and_promotes(crm_dir: Path, tmp_path: Path, store: str) -> None:
    out = _train(crm_dir, tmp_path)
    assert "as champion" in out and "no current champion" in out
    for name in ("reliability.png", "gains_lift.png", "roc_pr.png", "feature_importance.png",
                 "contributions.png", "model_card.md", "metrics.json"):
        assert (tmp_path / "report" / name).stat().st_size > 0, name
    card = (tmp_path / "report" / "model_card.md").read_text()
    assert "oracle" in card and "logistic regression" in card
    assert "## Grades" in card and "| observed rate |" in card
    grades = json.loads((tmp_path / "report" / "grades.json").read_text())
    assert [g["grade"] for g in grades["test_period"]] == list("ABCD")
    assert grades["grading"]["shares"] == [0.1, 0.2, 0.3]
    assert "grades on the test period" in " ".join(out.split())  # rich wraps long lines
    assert resolve_alias("lead_qualification", CHAMPION, store) == "1"

    # The same data, settings and code again: nothing new is registered.
    out = _train(crm_dir, tmp_path)
    assert "unchanged data, settings and code" in out
    assert "version 1 kept as champion; nothing new registered" in out
    kept = out.split("its report (plots, model card): ", 1)[1].split(" (the artifacts", 1)[0]
    assert (Path(kept) / "model_card.md").exists()  # the kept version's run, in MLflow
    assert [str(v.version) for v in MlflowClient(store, store).search_model_versions(
        "name = 'lead_qualification'")] == ["1"]

    # A setting changes the fit: a new version, gated against version 1.
    out = _train(crm_dir, tmp_path, "--seed", "8")
    assert "registered lead_qualification version 2" in out
    assert resolve_alias("lead_qualification", CHALLENGER, store) == "2" or (
        resolve_alias("lead_qualification", CHAMPION, store) == "2")
    if resolve_alias("lead_qualification", CHAMPION, store) == "2":
        CliRunner().invoke(app, ["promote", "--task", "lead_qualification", "--version", "1"])
    assert resolve_alias("lead_qualification", CHAMPION, store) == "1"

    result = CliRunner().invoke(app, ["promote", "--task", "lead_qualification",
                                      "--version", "2"])
    assert result.exit_code == 0, result.output
    assert resolve_alias("lead_qualification", CHAMPION, store) == "2"
    assert resolve_alias("lead_qualification", CHALLENGER, store) == "1"

    model, info = load_model_version("lead_qualification", CHAMPION, store)
    assert info.version == "2" and info.run_id
    assert "test_roc_auc" in info.metadata["test_metrics"]

    result = CliRunner().invoke(app, ["evaluate", "--task", "lead_qualification",
                                      "--data", str(crm_dir)])
    assert result.exit_code == 0, result.output
    assert "version 2" in result.output

    result = CliRunner().invoke(app, ["promote", "--task", "lead_qualification",
                                      "--version", "9"])
    assert result.exit_code == 1

    _assert_run_contents(store)


def _assert_run_contents(store: str) -> None:
    """The MLflow run carries the issue's metric names, the feature set and the report."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("lead_qualification")
    run = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])[0]
    names = set(run.data.metrics)
    expected = {"test_roc_auc", "test_pr_auc", "test_log_loss", "test_brier", "test_ece",
                "test_lift_top_decile", "baseline_lr_test_roc_auc",
                "baseline_rate_test_roc_auc", "baseline_lr_test_log_loss",
                "baseline_rate_test_brier", "oracle_test_roc_auc", "oracle_test_log_loss"}
    assert expected <= names, expected - names
    assert run.data.params["feature_set"] == "lead_v1"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert "report/reliability.png" in artifacts and "report/model_card.md" in artifacts
    assert "report/grades.json" in artifacts
    for grade in "abcd":
        assert f"test_grade_{grade}_count" in names
    assert run.data.params["grade_share_a"] == "0.1"
    assert int(run.data.params["grade_cutoff_a"]) > int(run.data.params["grade_cutoff_b"])


def test_gate_refuses_rows_the_champion_was_fit_on(crm_dir: Path, tmp_path: Path,
                                                    store: str) -> None:
    _train(crm_dir, tmp_path)  # champion fit on 18 months
    shorter = tmp_path / "shorter"
    write_crm(generate_crm(2000, seed=6, months=12), shorter)
    result = CliRunner().invoke(
        app,
        ["train", "--task", "lead_qualification", "--data", str(shorter),
         "--out", str(tmp_path / "report2"), *QUICK_FLAGS],
    )
    assert result.exit_code == 0, result.output + repr(result.exception)
    # Its test period lies inside the champion's training period: no comparison there.
    said = " ".join(result.output.split())  # rich wraps long lines
    assert "as challenger" in said and "inside this run's test period" in said
    assert resolve_alias("lead_qualification", CHAMPION, store) == "1"

    # Evaluating the champion on the shorter export finds no out-of-sample rows.
    result = CliRunner().invoke(app, ["evaluate", "--task", "lead_qualification",
                                      "--data", str(shorter)])
    assert result.exit_code != 0


def test_registered_pyfunc_scores_like_the_model(crm_dir: Path, tmp_path: Path,
                                                  store: str) -> None:
    """What `mlflow models serve` or a notebook loads gives the served probabilities."""
    import mlflow.pyfunc
    import numpy as np

    from training.data import load_training_inputs

    _train(crm_dir, tmp_path)
    model, info = load_model_version("lead_qualification", CHAMPION, store)
    rows = load_training_inputs(crm_dir, "lead_qualification", 30).frame.head(300)
    X = rows[model.feature_set.names]
    from training.registry import tracking

    with tracking(store):  # puts MLflow's global URI back afterwards
        pyfunc = mlflow.pyfunc.load_model(f"models:/lead_qualification/{info.version}")
    # A pyfunc caller sends plain strings, as JSON would, not pandas categories.
    # and numbers as floats (the signature declares every feature optional, so numeric).
    numeric = [n for n in model.feature_set.names if n not in model.feature_set.categorical]
    plain = X.astype({c: object for c in model.feature_set.categorical}
                     | {c: "float64" for c in numeric})
    got = np.asarray(pyfunc.predict(plain), dtype=float).ravel()
    assert np.allclose(got, model.predict_proba(X), rtol=0, atol=1e-12)
    assert got.std() > 0  # not a constant


def test_without_out_the_report_is_in_the_runs_artifacts_and_no_folder_is_left(
    crm_dir: Path, tmp_path: Path, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    result = CliRunner().invoke(app, ["train", "--task", "lead_qualification", "--data",
                                      str(crm_dir), *QUICK_FLAGS])
    assert result.exit_code == 0, result.output + repr(result.exception)
    (line,) = [ln for ln in result.output.splitlines() if ln.startswith("report (plots")]
    (version,) = MlflowClient(store, store).search_model_versions("name = 'lead_qualification'")
    assert line.endswith(f"(the artifacts of MLflow run {version.run_id})")
    report = Path(line.split(": ", 1)[1].split(" (the artifacts", 1)[0])
    assert report.name == "report" and version.run_id in report.parts
    assert {"model_card.md", "grades.json", "reliability.png"} <= {p.name for p in
                                                                  report.iterdir()}
    assert list(scratch.iterdir()) == []  # the folder it was written in is gone


def test_an_import_s_opt_in_to_current_values_is_a_leak_risk_in_the_card(
    crm_dir: Path, tmp_path: Path, store: str
) -> None:
    """``allow_current_values`` at import (recorded in known_at.json beside the tables)
    is named in the model card and the run's parameters."""
    import shutil

    from features.mapping.timing import TIMING_FILE

    data = tmp_path / "imported"
    shutil.copytree(crm_dir, data)
    (data / TIMING_FILE).write_text(json.dumps({
        "known_at": {"leads": {"budget_confirmed": "export", "industry": "history"}},
        "left_out": {}, "allow_current_values": {"leads": ["budget_confirmed"]}}))
    _train(data, tmp_path, "--no-register", "--no-strict-backtest")
    card = (tmp_path / "report" / "model_card.md").read_text()
    assert "**Leak risk:** known only as of the export and read anyway" in card
    assert "`leads.budget_confirmed`" in card
    client = MlflowClient(store, store)
    (exp,) = [e for e in client.search_experiments() if e.name != "Default"]
    (run,) = client.search_runs([exp.experiment_id])
    assert run.data.params["current_values_allowed"] == "leads.budget_confirmed"
    plain = tmp_path / "plain"
    _train(crm_dir, plain, "--no-register", "--no-strict-backtest")
    assert "Leak risk" not in (plain / "report" / "model_card.md").read_text()


def test_train_on_a_local_dask_cluster_says_how_its_rounds_were_chosen(
    crm_dir: Path, tmp_path: Path, store: str,
) -> None:
    from tests.dask_cluster import require_dask

    require_dask()
    out = _train(crm_dir, tmp_path, "--cluster", "local", "--workers", "2",
                 "--no-strict-backtest")
    assert "trained on the Dask cluster local: lightgbm.dask has no early stopping" in out
    assert "chosen by a single-machine LightGBM fit early-stopped" in out
    assert "as champion" in out
    card = (tmp_path / "report" / "model_card.md").read_text()
    assert "fit on a Dask cluster (local) with `lightgbm.dask`" in card
    assert "chosen first on a sampled validation" in card
    run = MlflowClient(store, store).search_runs(
        [MlflowClient(store, store).get_experiment_by_name("lead_qualification").experiment_id])[0]
    assert run.data.params["training_backend"] == "dask"
    assert run.data.params["dask_workers"] == "2"
    assert run.data.params["rounds_chosen_by"] == "early_stopping_on_a_sample"
    assert int(run.data.params["dask_rounds"]) == int(run.data.params["best_iteration"]) > 0
    assert run.data.tags["training_backend"] == "dask"
    assert run.data.tags["rounds_chosen_by"] == "early_stopping_on_a_sample"
    model, _ = load_model_version("lead_qualification", CHAMPION, store)
    assert model.metadata["training"]["backend"] == "dask"
    assert model.predict_proba(model_rows(crm_dir)).shape == (5,)


def model_rows(crm_dir: Path) -> pd.DataFrame:
    from training.data import load_training_inputs

    return load_training_inputs(crm_dir, "lead_qualification").frame.head(5)


def test_an_unknown_cluster_is_refused_before_training(crm_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--task", "lead_qualification", "--data",
                                      str(crm_dir), "--cluster", "127.0.0.1:8786"])
    assert result.exit_code == 2
    assert "expected 'local'" in " ".join(result.output.split())
