"""`leadscore train` on a CRM too young for LightGBM registers the stage win rate as a
rate model, which the API serves with scores, grades and the rate as the reason; the
static mode says on the console, the card and MLflow that its figures are not a backtest."""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from mlflow import MlflowClient
from typer.testing import CliRunner

from leadscore.cli import app
from leadscore.generator import GeneratedCRM, generate_crm, write_crm
from modeling.registry import CHAMPION, load_model_version, resolve_alias
from serving.app import create_app
from serving.deps import get_now
from serving.models import RegistrySource
from tests.integration.test_api_fixtures import auth, deal_request, open_deals, settings


@pytest.fixture(scope="module")
def young_crm(tmp_path_factory: pytest.TempPathFactory) -> tuple[GeneratedCRM, Path]:
    out = tmp_path_factory.mktemp("young")
    crm = generate_crm(400, seed=3, months=18)
    write_crm(crm, out)
    return crm, out


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LEADSCORE_TRAIN_NUM_THREADS", "1")
    return uri


def _train(data: Path, report: Path, *extra: str) -> str:
    result = CliRunner().invoke(app, ["train", "--task", "deal_close", "--data", str(data),
                                      "--out", str(report), "--num-boost-round", "40", *extra])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return " ".join(result.output.split())


def test_below_the_floor_a_rate_model_is_registered_and_served(
        young_crm: tuple[GeneratedCRM, Path], tmp_path: Path, store: str) -> None:
    crm, data = young_crm
    out = _train(data, tmp_path / "report")
    assert "cold start:" in out and "fewer than 40 of each that LightGBM needs" in out
    assert re.search(r"LightGBM needs \d+ more (positive|negative)", out)
    assert "as champion" in out and "│ rate model │" in out  # its row in the metrics table
    card = (tmp_path / "report" / "model_card.md").read_text()
    assert "**Rate model** (cold start)" in card and "| rate model (cold start) |" in card
    assert resolve_alias("deal_close", CHAMPION, store) == "1"
    model, _ = load_model_version("deal_close", CHAMPION, store)
    assert model.is_rate_model
    rates = model.metadata["rate_model"]["rates"]

    source = RegistrySource(alias=CHAMPION, tracking_uri=store)
    api = create_app(settings(tasks=("deal_close",), tracking_uri=store), source=source)
    tables = crm.tables
    as_of = tables.opportunities["created_at"].max() - pd.Timedelta(days=30)
    deal_id = open_deals(tables, as_of)[0]

    async def fixed_now() -> datetime:
        return as_of.to_pydatetime()

    api.dependency_overrides[get_now] = fixed_now
    with TestClient(api) as client:
        r = client.post("/v1/deals/score", json=deal_request(tables, deal_id, as_of),
                        headers=auth())
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    stage = [f for f in res["reasons"]["up"] + res["reasons"]["down"] if f["topic"] == "stage"]
    assert stage, res["reasons"]
    reason = stage[0]
    assert re.match(r"deals in [a-z ]+ win \d+ % of the time \(\d+ %-\d+ %", reason["text"])
    value = str(reason["features"]["stage"])
    assert res["probability"] == pytest.approx(rates[value]["rate"], abs=1e-6)
    assert res["grade"] in "ABCD" and 0 <= res["score"] <= 100


def test_static_mode_says_its_figures_are_not_a_backtest(
        young_crm: tuple[GeneratedCRM, Path], tmp_path: Path, store: str) -> None:
    _, data = young_crm
    out = _train(data, tmp_path / "report", "--static", "--folds", "3", "--no-cold-start")
    assert "static mode (--static)" in out and "These figures are not a backtest" in out
    assert "cross-validated, not a backtest" in out
    card = (tmp_path / "report" / "model_card.md").read_text()
    assert "**Not a backtest.**" in card and "3-fold cross-validation" in card
    client = MlflowClient(store, store)
    (run,) = client.search_runs([client.get_experiment_by_name("deal_close").experiment_id])
    assert run.data.tags["evaluation"] == "static_cv"
    assert run.data.params["evaluation"] == "static_cv"
    assert run.data.tags["not_a_backtest"] == "true"
