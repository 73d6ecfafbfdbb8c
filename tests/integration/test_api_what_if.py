"""?what_if=true: each suggested action, applied to the request, re-scores to what it said."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from features.actions import ACTIONS
from tests.integration.test_api_fixtures import (
    AS_OF,
    Trained,
    app_at,
    auth,
    deal_request,
    lead_request,
    open_deals,
    open_leads,
    trained,  # noqa: F401  (session fixture)
)

CASES = {"leads": ("/v1/leads/score", lead_request, open_leads),
         "deals": ("/v1/deals/score", deal_request, open_deals)}


@pytest.fixture()
def client(trained: Trained) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(app_at([trained.lead, trained.deal])) as c:
        yield c


def _applied(body: dict[str, Any], entities: str, add: dict[str, list[dict[str, Any]]]
             ) -> dict[str, Any]:
    changed = copy.deepcopy(body)
    entity = changed[entities][0]
    for field, rows in add.items():
        entity[field] = [*entity.get(field, []), *rows]
    return changed


@pytest.mark.parametrize("entities", list(CASES))
def test_each_suggestion_rescores_to_its_stated_probability(
    client: TestClient, trained: Trained, entities: str  # noqa: F811
) -> None:
    route, make, open_ = CASES[entities]
    catalogue = {a.name: a for a in ACTIONS}
    checked: set[str] = set()
    for entity_id in open_(trained.tables, AS_OF)[:12]:
        body = make(trained.tables, entity_id, AS_OF)
        r = client.post(f"{route}?what_if=true", json=body, headers=auth())
        assert r.status_code == 200, r.text
        res = r.json()["results"][0]
        suggestions = res["what_if"]
        assert suggestions is not None and len(suggestions) <= 3
        gains = [s["gain"] for s in suggestions]
        assert gains == sorted(gains, reverse=True)
        for s in suggestions:
            assert s["action"] in catalogue and s["text"] == catalogue[s["action"]].text
            assert s["score"] > res["score"] and s["gain"] > 0
            assert s["probability"] == pytest.approx(res["probability"] + s["gain"], abs=1e-12)
            assert set(s["add"]) <= {"activities", "history"}
            again = client.post(f"{route}?trend=false", json=_applied(body, entities, s["add"]),
                                headers=auth())
            assert again.status_code == 200, again.text
            (after,) = again.json()["results"]
            np.testing.assert_allclose(after["probability"], s["probability"], rtol=0, atol=1e-9)
            assert after["grade"] == s["grade"] and after["score"] == s["score"]
            checked.add(s["action"])
    assert checked  # some action raised some score, so the check was not vacuous


def test_what_if_is_off_by_default_and_changes_nothing_else(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    deal_id = open_deals(trained.tables, AS_OF)[0]
    body = deal_request(trained.tables, deal_id, AS_OF)
    plain = client.post("/v1/deals/score", json=body, headers=auth()).json()["results"][0]
    asked = client.post("/v1/deals/score?what_if=true", json=body,
                        headers=auth()).json()["results"][0]
    assert plain["what_if"] is None and isinstance(asked["what_if"], list)
    assert {k: v for k, v in asked.items() if k != "what_if"} == {
        k: v for k, v in plain.items() if k != "what_if"}


def test_proposal_is_suggested_only_before_the_proposal_stage(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    for deal_id in open_deals(trained.tables, AS_OF)[:30]:
        body = deal_request(trained.tables, deal_id, AS_OF)
        res = client.post("/v1/deals/score?what_if=true", json=body,
                          headers=auth()).json()["results"][0]
        said = {s["action"] for s in res["what_if"]}
        if res["stage"] in ("proposal", "negotiation"):
            assert not said & {"send_proposal", "run_demo"}
        if res["stage"] != "meeting_demo":
            assert "send_proposal" not in said
