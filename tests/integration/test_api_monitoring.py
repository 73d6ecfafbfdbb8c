"""GET /v1/monitoring and the PSI gauges of /metrics, fed by the scoring routes."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient

from features.training_set import build_training_set
from modeling.profile import build_profile, expected_psi, feature_drift
from serving.models import LoadedModel
from tests.integration.test_api_fixtures import (
    AS_OF,
    Trained,
    app_at,
    auth,
    lead_request,
    open_leads,
    trained,  # noqa: F401  (the fixture)
)


@pytest.fixture(scope="module")
def profiled(trained: Trained) -> LoadedModel:  # noqa: F811
    """The lead model with the profile of its own snapshots (what training stores)."""
    frame = build_training_set(trained.tables, "lead_qualification")
    fs = trained.lead.model.feature_set
    recent = frame.loc[frame["as_of"] >= frame["as_of"].quantile(0.8)].reset_index(drop=True)
    profile = build_profile(recent, fs.names, trained.lead.model.predict_proba(recent),
                            entity_key=fs.entity_key)
    return replace(trained.lead, profile=profile)


def test_monitoring_fills_from_scoring(trained: Trained, profiled: LoadedModel) -> None:  # noqa: F811
    app = app_at([profiled, trained.deal], monitor_min_rows=20)
    with TestClient(app) as client:
        assert client.get("/v1/monitoring").status_code == 401
        empty = client.get("/v1/monitoring", headers=auth()).json()
        by_task = {t["task"]: t for t in empty["tasks"]}
        assert by_task["lead_qualification"]["status"] == "too few rows"
        assert by_task["lead_qualification"]["window_rows"] == 0
        # the deal model was saved without a profile: it serves, and says so
        assert by_task["deal_close"]["status"] == "no reference profile"
        assert "leadscore_score_psi{" not in client.get("/metrics").text

        ids = open_leads(trained.tables, AS_OF)[:30]
        for lead_id in ids:
            r = client.post("/v1/leads/score?what_if=true",
                            json=lead_request(trained.tables, lead_id, AS_OF), headers=auth())
            assert r.status_code == 200, r.text
        report = client.get("/v1/monitoring", headers=auth()).json()
        lead = {t["task"]: t for t in report["tasks"]}["lead_qualification"]
        # one row a request: what-if re-scores are not counted
        assert lead["window_rows"] == len(ids) == lead["seen_rows"]
        assert lead["status"] in ("ok", "warn", "alert")
        assert lead["version"] == profiled.version
        psis = [f["psi"] for f in lead["features"]]
        assert len(psis) == len(profiled.model.feature_set.names)
        assert psis == sorted(psis, reverse=True)  # the worst first
        assert lead["score"]["name"] == "score" and lead["score"]["psi"] >= 0
        assert report["warn_psi"] == 0.1 and report["alert_psi"] == 0.25

        text = client.get("/metrics").text
        assert 'leadscore_monitoring_window_rows{task="lead_qualification"} 30.0' in text
        assert f'leadscore_score_psi{{task="lead_qualification"}} {lead["score"]["psi"]}' in text
        worst = lead["features"][0]
        assert (f'leadscore_feature_psi{{feature="{worst["name"]}",task="lead_qualification"}}'
                in text)
        assert 'leadscore_feature_psi{feature="source",task="deal_close"}' not in text


def test_window_off_and_bounded(trained: Trained, profiled: LoadedModel) -> None:  # noqa: F811
    app = app_at([profiled, trained.deal], monitor_window_rows=4, monitor_min_rows=1)
    with TestClient(app) as client:
        for lead_id in open_leads(trained.tables, AS_OF)[:6]:
            client.post("/v1/leads/score", json=lead_request(trained.tables, lead_id, AS_OF),
                        headers=auth())
        lead = client.get("/v1/monitoring", headers=auth()).json()["tasks"][0]
        assert (lead["window_rows"], lead["seen_rows"]) == (4, 6)
        assert np.isfinite(lead["score"]["psi"])
    off = app_at([profiled, trained.deal], monitor_window_rows=0)
    with TestClient(off) as client:
        client.post("/v1/leads/score", json=lead_request(
            trained.tables, open_leads(trained.tables, AS_OF)[0], AS_OF), headers=auth())
        lead = client.get("/v1/monitoring", headers=auth()).json()["tasks"][0]
        assert lead["window_rows"] == 0 and lead["status"] == "too few rows"


def test_the_window_allows_for_its_number_of_leads(
    trained: Trained, profiled: LoadedModel  # noqa: F811
) -> None:
    """Ten leads scored three times each: the PSI is read above what sampling gives for
    ten leads against the profile's, by the rule `leadscore monitor` applies; a count
    over all history stops at warn."""
    profile = profiled.profile
    assert profile is not None and profile.entities > 0
    app = app_at([profiled, trained.deal], monitor_min_rows=20)
    ids = open_leads(trained.tables, AS_OF)[:10]
    with TestClient(app) as client:
        for _ in range(3):
            for lead_id in ids:
                r = client.post("/v1/leads/score",
                                json=lead_request(trained.tables, lead_id, AS_OF),
                                headers=auth())
                assert r.status_code == 200, r.text
        lead = client.get("/v1/monitoring", headers=auth()).json()["tasks"][0]
    assert lead["window_rows"] == 30
    assert lead["score"]["expected_psi"] == pytest.approx(
        expected_psi(profile.score.shares, 10, profile.entities))
    to_date = profiled.model.feature_set.to_date
    for f in lead["features"]:
        bins = profile.features[f["name"]]
        want = feature_drift(bins, f["psi"], expected=expected_psi(bins.shares, 10,
                                                                   profile.entities),
                             to_date=f["name"] in to_date)
        assert (f["status"], f["trending"]) == (want.status, want.trending), f
        assert f["expected_psi"] == pytest.approx(want.expected)
    assert any(f["trending"] for f in lead["features"] if f["name"] in to_date)
