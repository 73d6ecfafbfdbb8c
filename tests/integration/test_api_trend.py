"""Each result's trend: the same request scored as of 7 and 28 days earlier, exactly."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from tests.integration.test_api_fixtures import (
    AS_OF,
    Trained,
    app_at,
    auth,
    deal_request,
    lead_request,
    offline_features,
    open_deals,
    open_leads,
    trained,  # noqa: F401  (session fixture)
)

ROUTES = {"lead_qualification": ("/v1/leads/score", lead_request, open_leads),
          "deal_close": ("/v1/deals/score", deal_request, open_deals)}


@pytest.fixture()
def client(trained: Trained) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(app_at([trained.lead, trained.deal], trend_steady_points=3)) as c:
        yield c


def _created(trained: Trained, task: str, entity_id: str) -> pd.Timestamp:  # noqa: F811
    table = trained.tables.leads if task == "lead_qualification" else trained.tables.opportunities
    key = "lead_id" if task == "lead_qualification" else "opportunity_id"
    return table.loc[table[key] == entity_id, "created_at"].iloc[0]


@pytest.mark.parametrize("task", list(ROUTES))
def test_trend_is_the_offline_score_as_of_each_earlier_time(
    client: TestClient, trained: Trained, task: str  # noqa: F811
) -> None:
    route, make, open_ = ROUTES[task]
    ids = open_(trained.tables, AS_OF)
    young = [i for i in ids if _created(trained, task, i) > AS_OF - pd.Timedelta(days=20)]
    old = [i for i in ids if _created(trained, task, i) < AS_OF - pd.Timedelta(days=40)]
    assert young and len(old) >= 5
    loaded = trained.lead if task == "lead_qualification" else trained.deal
    for days in (7, 28):
        then = AS_OF - pd.Timedelta(days=days)
        expected = np.asarray(loaded.model.predict_proba(
            offline_features(trained.tables, task, old[:6], then)))
        served = []
        for entity_id in old[:6]:
            r = client.post(route, json=make(trained.tables, entity_id, AS_OF), headers=auth())
            assert r.status_code == 200, r.text
            trend = r.json()["results"][0]["trend"]
            served.append(trend[f"probability_{days}d_ago"])
            assert trend[f"score_{days}d_ago"] == int(np.floor(served[-1] * 100 + 0.5))
        np.testing.assert_allclose(served, expected, rtol=0, atol=1e-9)
    assert np.ptp(served) > 0

    # Created 20 days ago: scored a week earlier, not four weeks earlier.
    body = make(trained.tables, young[0], AS_OF)
    trend = client.post(route, json=body, headers=auth()).json()["results"][0]["trend"]
    created = _created(trained, task, young[0])
    assert (trend["score_28d_ago"] is None) == (created >= AS_OF - pd.Timedelta(days=28))
    assert (trend["score_7d_ago"] is None) == (created >= AS_OF - pd.Timedelta(days=7))


def test_change_and_direction_follow_the_earliest_score(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    seen = set()
    for entity_id in open_deals(trained.tables, AS_OF)[:40]:
        body = deal_request(trained.tables, entity_id, AS_OF)
        res = client.post("/v1/deals/score", json=body, headers=auth()).json()["results"][0]
        trend = res["trend"]
        first = trend["score_28d_ago"] if trend["score_28d_ago"] is not None else (
            trend["score_7d_ago"])
        if first is None:
            assert trend["change"] is None and trend["direction"] is None
            continue
        assert trend["change"] == res["score"] - first
        want = ("improving" if trend["change"] >= 3 else
                "declining" if trend["change"] <= -3 else "steady")
        assert trend["direction"] == want
        seen.add(want)
    assert len(seen) >= 2  # the deals differ, so the rule is exercised


def test_trend_false_leaves_it_out_and_keeps_the_score(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    lead_id = open_leads(trained.tables, AS_OF)[2]
    body = lead_request(trained.tables, lead_id, AS_OF)
    on = client.post("/v1/leads/score", json=body, headers=auth()).json()["results"][0]
    off = client.post("/v1/leads/score?trend=false", json=body, headers=auth()).json()
    assert on["trend"] is not None and off["results"][0]["trend"] is None
    assert off["results"][0]["probability"] == on["probability"]
    assert off["results"][0]["reasons"] == on["reasons"]
