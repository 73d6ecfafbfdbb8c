"""A model trained with an export's own columns, served: a request's ``attributes`` score
exactly as the offline model does on the imported columns, through the levels it learned
(kept across a save and load); an unseen level and an unread attribute are warnings, a
value of the wrong kind a 422 naming its field."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from features.build import build_features
from features.own import OwnFeature, OwnFeatures, write_own
from features.schema import CRMTables
from features.training_set import build_training_set_with_own
from leadscore.cli import app as cli
from leadscore.generator import generate_crm
from modeling.artifact import ScoringModel
from serving.models import LoadedModel
from tests.integration.test_api_fixtures import (
    API_KEY,
    AS_OF,
    app_at,
    lead_request,
    open_leads,
)
from training.fit import BoosterParams, fit_scoring_model
from training.split import time_split

REGIONS = ("north", "south", "east", "west")


def _own(tables: CRMTables) -> OwnFeatures:
    """Two own columns of the generated leads: a region (random) and minutes on the
    website, higher for the leads that qualify (so the model reads it)."""
    leads = tables.leads
    rng = np.random.default_rng(5)
    qualified = leads["qualified_at"].notna().to_numpy()
    minutes = rng.gamma(2.0, 200.0, len(leads)) * np.where(qualified, 2.5, 1.0)
    minutes[rng.random(len(leads)) < 0.1] = np.nan
    values = pd.DataFrame({"lead_id": leads["lead_id"].astype(object).to_numpy(),
                           "region": rng.choice(REGIONS, len(leads)).astype(object),
                           "web_minutes": minutes})
    return OwnFeatures(
        (OwnFeature("region", "leads", "category", "creation", "Region"),
         OwnFeature("web_minutes", "leads", "number", "creation", "Minutes on site")),
        {"leads": values})


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> tuple[CRMTables, LoadedModel]:
    tables = generate_crm(1500, seed=3, months=12).tables
    own = _own(tables)
    frame, derived = build_training_set_with_own(tables, "lead_qualification", own)
    frame = frame.loc[frame["label"].notna()].reset_index(drop=True)
    fs = derived.feature_set
    split = time_split(frame, fs.entity_key)
    params = BoosterParams(num_boost_round=30, min_data_in_leaf=20, early_stopping_rounds=30,
                           num_threads=1)
    fitted = fit_scoring_model("lead_qualification", fs, split.train, split.validation,
                               params, seed=3, metadata={})
    path = tmp_path_factory.mktemp("own") / "model"
    fitted.model.save(path)
    model = ScoringModel.load(path)  # the levels must survive the round trip
    assert model.feature_set.spec("region").levels == fs.spec("region").levels
    loaded = LoadedModel(task="lead_qualification", model=model, name="lead_qualification",
                         version="1", alias="champion", metadata=model.metadata)
    return replace(tables, own=own), loaded


def _body(tables: CRMTables, lead_id: str, **attributes: Any) -> dict[str, Any]:
    body = lead_request(tables, lead_id, AS_OF)
    assert tables.own is not None
    row = tables.own.values["leads"].set_index("lead_id").loc[lead_id]
    sent = {"region": row["region"],
            "web_minutes": None if np.isnan(row["web_minutes"]) else float(row["web_minutes"])}
    body["leads"][0]["attributes"] = {**sent, **attributes}
    return body


def _post(client: TestClient, body: dict[str, Any]) -> Any:
    return client.post("/v1/leads/score", json=body,
                       headers={"Authorization": f"Bearer {API_KEY}"})


def test_attributes_score_as_the_offline_model_reads_the_imported_columns(
        served: tuple[CRMTables, LoadedModel]) -> None:
    tables, model = served
    fs = model.model.feature_set
    assert fs.name == "lead_v1+own" and "web_minutes" in fs.names
    ids = open_leads(tables, AS_OF)[:8]
    snaps = pd.DataFrame({"lead_id": pd.array(ids, dtype="string"),
                          "as_of": pd.DatetimeIndex([AS_OF] * len(ids))})
    offline = np.asarray(model.model.predict_proba(build_features(tables, snaps, fs)[fs.names]))
    with TestClient(app_at([model], tasks=("lead_qualification",))) as client:
        served_p = []
        for lead_id in ids:
            r = _post(client, _body(tables, lead_id))
            assert r.status_code == 200, r.text
            (res,) = r.json()["results"]
            assert res["model"]["feature_set"] == "lead_v1+own@1"
            served_p.append(res["probability"])
    np.testing.assert_allclose(served_p, offline, rtol=0, atol=1e-9)
    assert np.ptp(offline) > 0


def test_an_unseen_level_and_an_unread_attribute_are_warnings_a_wrong_kind_a_422(
        served: tuple[CRMTables, LoadedModel]) -> None:
    tables, model = served
    lead_id = open_leads(tables, AS_OF)[0]
    with TestClient(app_at([model], tasks=("lead_qualification",))) as client:
        unseen = _post(client, _body(tables, lead_id, region="atlantis", colour="red"))
        missing = _post(client, _body(tables, lead_id, region=None))
        wrong = _post(client, _body(tables, lead_id, web_minutes="a lot"))
        wrong_cat = _post(client, _body(tables, lead_id, region=3))
    assert unseen.status_code == 200, unseen.text
    (res,) = unseen.json()["results"]
    text = " ".join(res["warnings"])
    assert "region 'atlantis' is not a value the model was trained on" in text
    assert "attributes the model does not read (not features of lead_v1+own): colour" in text
    assert res["probability"] == pytest.approx(
        missing.json()["results"][0]["probability"], abs=1e-12)
    assert wrong.status_code == 422
    (err,) = wrong.json()["detail"]
    assert err["field"] == "leads.0.attributes.web_minutes"
    assert "web_minutes is a number for the model" in err["reason"]
    assert wrong_cat.status_code == 422
    assert "region is text (a category)" in wrong_cat.json()["detail"][0]["reason"]


def test_own_columns_are_reasons_with_the_export_s_own_words(
        served: tuple[CRMTables, LoadedModel]) -> None:
    tables, model = served
    lead_id = open_leads(tables, AS_OF)[0]
    with TestClient(app_at([model], tasks=("lead_qualification",))) as client:
        r = _post(client, _body(tables, lead_id, web_minutes=2500.0))
    (res,) = r.json()["results"]
    texts = [x["text"] for x in res["reasons"]["up"] + res["reasons"]["down"]]
    assert "Minutes on site: 2,500" in texts, texts


def test_the_models_route_lists_the_attributes_a_record_sends(
        served: tuple[CRMTables, LoadedModel]) -> None:
    _, model = served
    with TestClient(app_at([model], tasks=("lead_qualification",))) as client:
        r = client.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200, r.text
    (desc,) = r.json()["models"]
    by_name = {a["name"]: a for a in desc["attributes"]}
    assert list(by_name) == ["region", "web_minutes"]
    assert by_name["region"]["kind"] == "category" and by_name["region"]["column"] == "Region"
    assert sorted(by_name["region"]["levels"]) == sorted(REGIONS)
    assert by_name["web_minutes"] == {"name": "web_minutes", "kind": "number",
                                      "column": "Minutes on site", "levels": [],
                                      "leak_risk": False}


def test_batch_scoring_reads_the_folder_s_own_columns_as_the_api_reads_attributes(
        served: tuple[CRMTables, LoadedModel], tmp_path: Path) -> None:
    tables, model = served
    assert tables.own is not None
    data = tmp_path / "crm"
    data.mkdir()
    for name in ("accounts", "leads", "opportunities", "opportunity_history", "activities"):
        tables.get(name).to_parquet(data / f"{name}.parquet", index=False)
    write_own(data, tables.own)
    model.model.save(tmp_path / "model")  # type: ignore[attr-defined]
    out = tmp_path / "scores.parquet"
    result = CliRunner().invoke(cli, [
        "score", "--task", "lead_qualification", "--input", str(data / "leads.parquet"),
        "--output", str(out), "--data", str(data), "--as-of", AS_OF.isoformat(),
        "--model", str(tmp_path / "model"), "--no-trend"])
    assert result.exit_code == 0, result.output
    scores = pd.read_parquet(out).set_index("lead_id")
    ids = open_leads(tables, AS_OF)[:5]
    with TestClient(app_at([model], tasks=("lead_qualification",))) as client:
        api = [_post(client, _body(tables, i)).json()["results"][0]["probability"]
               for i in ids]
    np.testing.assert_allclose(scores.loc[ids, "probability"], api, rtol=0, atol=1e-9)
