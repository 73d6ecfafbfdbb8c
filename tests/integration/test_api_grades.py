"""Grades and percentiles served: the model's own cut-offs in the API and the batch scorer,
the same answer from both, and the fixed cut-offs for a model saved without learned ones."""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from leadscore.cli import app as cli
from modeling.artifact import GRADING_FILE, ScoringModel
from modeling.grading import Grading
from serving.app import create_app
from serving.deps import get_now
from serving.models import GRADING_MISSING, LoadedModel, ModelStore, PathSource, load_into
from tests.integration.test_api_fixtures import (
    AS_OF,
    Trained,
    auth,
    deal_request,
    lead_request,
    open_deals,
    open_leads,
    settings,
    trained,  # noqa: F401  (session fixture)
)

TABLE_NAMES = ("accounts", "leads", "opportunities", "opportunity_history", "activities",
               "lead_field_history")


def _client(models: list[LoadedModel], **overrides: object) -> TestClient:
    app = create_app(settings(**overrides), models=models)

    async def fixed_now() -> datetime:
        return AS_OF.to_pydatetime()

    app.dependency_overrides[get_now] = fixed_now
    return TestClient(app)


@pytest.fixture()
def client(trained: Trained) -> Iterator[TestClient]:  # noqa: F811
    with _client([trained.lead, trained.deal]) as c:
        yield c


def _legacy(loaded: LoadedModel) -> LoadedModel:
    """The same model as a save from before grades were learned would load it."""
    model = copy.copy(loaded.model)
    model.grading = None
    return replace(loaded, model=model)


def _grading(loaded: LoadedModel) -> Grading:
    grading = loaded.model.grading
    assert grading is not None
    return grading


@pytest.fixture(scope="module")
def crm_dir(trained: Trained, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("crm")
    for name in TABLE_NAMES:
        trained.tables.get(name).to_parquet(out / f"{name}.parquet", index=False)
    trained.lead.model.save(out / "lead_model")  # type: ignore[attr-defined]
    trained.deal.model.save(out / "deal_model")  # type: ignore[attr-defined]
    legacy = out / "legacy_lead_model"
    trained.lead.model.save(legacy)  # type: ignore[attr-defined]
    (legacy / GRADING_FILE).unlink()
    spec = json.loads((legacy / "model.json").read_text())
    del spec["grading"], spec["sha256"][GRADING_FILE]
    (legacy / "model.json").write_text(json.dumps(spec))
    return out


def _served(client: TestClient, trained: Trained, task: str,  # noqa: F811
            ids: list[str]) -> dict[str, dict[str, object]]:
    make, route = ((lead_request, "/v1/leads/score") if task == "lead_qualification"
                   else (deal_request, "/v1/deals/score"))
    key = "lead_id" if task == "lead_qualification" else "opportunity_id"
    out = {}
    for entity_id in ids:
        r = client.post(route, json=make(trained.tables, entity_id, AS_OF), headers=auth())
        assert r.status_code == 200, r.text
        (res,) = r.json()["results"]
        out[res[key]] = res
    return out


def test_the_api_grades_by_the_models_learned_cutoffs(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    # The newest open leads: the oldest still open are long quiet, all of them D.
    for loaded, ids in ((trained.lead, open_leads(trained.tables, AS_OF)[-25:]),
                        (trained.deal, open_deals(trained.tables, AS_OF)[:25])):
        grading = _grading(loaded)
        assert grading.learned and grading.cutoffs != (75, 50, 25)
        served = _served(client, trained, loaded.task, ids)
        for res in served.values():
            assert res["grade"] == grading.grade(res["score"])  # type: ignore[arg-type]
            assert res["percentile"] == grading.percentile(res["probability"])  # type: ignore[arg-type]
            assert 0 <= res["percentile"] <= 100  # type: ignore[operator]
        assert len({res["grade"] for res in served.values()}) >= 2


def test_models_route_states_the_cutoffs(client: TestClient, trained: Trained) -> None:  # noqa: F811
    models = client.get("/v1/models", headers=auth()).json()["models"]
    lead = next(m for m in models if m["task"] == "lead_qualification")
    grading = _grading(trained.lead)
    assert lead["grading"]["cutoffs"] == {"A": grading.a, "B": grading.b, "C": grading.c}
    assert lead["grading"]["learned"] is True
    assert "validation period" in lead["grading"]["description"]


def test_batch_and_api_give_the_same_grades_and_percentiles(
    client: TestClient, trained: Trained, crm_dir: Path, tmp_path: Path  # noqa: F811
) -> None:
    for task, model_dir, source, ids, key in (
        ("lead_qualification", "lead_model", "leads.parquet",
         open_leads(trained.tables, AS_OF)[:20], "lead_id"),
        ("deal_close", "deal_model", "opportunities.parquet",
         open_deals(trained.tables, AS_OF)[:20], "opportunity_id"),
    ):
        out = tmp_path / f"{task}.csv"
        result = CliRunner().invoke(cli, [
            "score", "--task", task, "--input", str(crm_dir / source), "--output", str(out),
            "--data", str(crm_dir), "--as-of", AS_OF.isoformat(),
            "--model", str(crm_dir / model_dir),
        ])
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output
        batch = pd.read_csv(out, dtype={key: str}).set_index(key)
        assert {"grade", "percentile"} <= set(batch.columns)
        assert batch["percentile"].between(0, 100).all()
        served = _served(client, trained, task, ids)
        for entity_id, res in served.items():
            row = batch.loc[entity_id]
            assert (row["grade"], row["percentile"]) == (res["grade"], res["percentile"])
        grading = _grading(trained.lead if task == "lead_qualification" else trained.deal)
        assert (batch["grade"] == [grading.grade(s) for s in batch["score"]]).all()


def test_a_model_saved_without_cutoffs_gets_the_fixed_ones_and_says_so(
    trained: Trained, crm_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture  # noqa: F811
) -> None:
    legacy = _legacy(trained.lead)
    ids = open_leads(trained.tables, AS_OF)[:25]
    with _client([legacy, trained.deal], grade_cutoffs=(30, 20, 10)) as c:
        served = _served(c, trained, "lead_qualification", ids)
        models = c.get("/v1/models", headers=auth()).json()["models"]
    fixed = Grading(30, 20, 10)
    for res in served.values():
        assert res["grade"] == fixed.grade(res["score"])  # type: ignore[arg-type]
        assert res["percentile"] is None
    lead = next(m for m in models if m["task"] == "lead_qualification")
    assert lead["grading"]["learned"] is False
    assert lead["grading"]["cutoffs"] == {"A": 30, "B": 20, "C": 10}
    assert "saved without learned ones" in lead["grading"]["description"]

    # Loading such a folder logs why its grades are the fixed ones.
    store = ModelStore(("lead_qualification",))
    source = PathSource({"lead_qualification": str(crm_dir / "legacy_lead_model")})
    with caplog.at_level(logging.WARNING, logger="leadscore.serving.models"):
        assert load_into(store, source, "lead_qualification", check=lambda _: None)
    assert GRADING_MISSING in caplog.text
    loaded = store.get("lead_qualification")
    assert loaded is not None and isinstance(loaded.model, ScoringModel)
    assert loaded.model.grading is None

    # The batch scorer grades it the same way and warns.
    out = tmp_path / "legacy.csv"
    result = CliRunner().invoke(cli, [
        "score", "--task", "lead_qualification", "--input", str(crm_dir / "leads.parquet"),
        "--output", str(out), "--data", str(crm_dir), "--as-of", AS_OF.isoformat(),
        "--model", str(crm_dir / "legacy_lead_model"),
    ])
    assert result.exit_code == 0, result.output
    assert f"warning: {GRADING_MISSING}" in " ".join(result.output.split())
    batch = pd.read_csv(out)
    assert batch["percentile"].isna().all()
    assert (batch["grade"] == [Grading().grade(s) for s in batch["score"]]).all()
