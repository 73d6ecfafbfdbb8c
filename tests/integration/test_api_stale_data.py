"""The API says so when a request's newest event is older than ``stale_data_days``: the
score reads the time since as silence (a deal stalled, a lead gone quiet)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.deps import get_now
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

STALE = "the newest event sent is "


def _client(trained: Trained, now: pd.Timestamp, **overrides: Any) -> TestClient:  # noqa: F811
    app = create_app(settings(**overrides), models=[trained.lead, trained.deal])

    async def fixed_now() -> datetime:
        return now.to_pydatetime()

    app.dependency_overrides[get_now] = fixed_now
    return TestClient(app)


def _newest(body: dict[str, Any], name: str) -> pd.Timestamp:
    """The newest event of the body's one entity, read straight off the JSON."""
    (entity,) = body[name]
    times = [entity["created_at"]]
    times += [a["occurred_at"] for a in entity.get("activities", [])]
    times += [h["changed_at"] for h in entity.get("history", [])]
    return max(pd.Timestamp(t) for t in times)


def _open(body: dict[str, Any], name: str, outcomes: tuple[str, ...]) -> dict[str, Any]:
    """The body as a CRM sends an open entity: its outcome (later than AS_OF) not known."""
    for entity in body[name]:
        for field in outcomes:
            entity.pop(field, None)
    return body


@pytest.fixture()
def lead_body(trained: Trained) -> dict[str, Any]:  # noqa: F811
    body = lead_request(trained.tables, open_leads(trained.tables, AS_OF)[0], AS_OF)
    return _open(body, "leads", ("qualified_at", "disqualified_at", "opportunity_id"))


@pytest.fixture()
def deal_body(trained: Trained) -> dict[str, Any]:  # noqa: F811
    body = deal_request(trained.tables, open_deals(trained.tables, AS_OF)[0], AS_OF)
    return _open(body, "deals", ("closed_at", "is_won"))


@pytest.mark.parametrize(("route", "name"), [("/v1/leads/score", "leads"),
                                              ("/v1/deals/score", "deals")])
def test_an_old_newest_event_is_named_in_warnings(
    trained: Trained, lead_body: dict[str, Any], deal_body: dict[str, Any],  # noqa: F811
    route: str, name: str,
) -> None:
    body = lead_body if name == "leads" else deal_body
    newest = _newest(body, name)
    for days, stale in ((29, False), (31, True), (412, True)):
        with _client(trained, newest + pd.Timedelta(days=days, hours=1)) as client:
            r = client.post(route, json=body, headers=auth())
        assert r.status_code == 200, r.text
        (res,) = r.json()["results"]
        said = [w for w in res["warnings"] if w.startswith(STALE)]
        if not stale:
            assert said == []
            continue
        assert said == [res["warnings"][-1]]  # after what the model read as not known
        assert said[0].startswith(f"{STALE}{days} days old ({newest:%Y-%m-%d}): the score reads "
                                  f"the {days} days since as silence")


def test_the_threshold_is_a_setting(trained: Trained, lead_body: dict[str, Any]) -> None:  # noqa: F811
    late = _newest(lead_body, "leads") + pd.Timedelta(days=45)
    for overrides, stale in (({}, True), ({"stale_data_days": 60}, False),
                             ({"stale_data_days": 0}, False)):
        with _client(trained, late, **overrides) as client:
            (res,) = client.post("/v1/leads/score", json=lead_body, headers=auth()).json()[
                "results"]
        assert any(w.startswith(STALE) for w in res["warnings"]) == stale, overrides


def test_each_entity_of_a_batch_is_judged_on_its_own_events(trained: Trained) -> None:  # noqa: F811
    now = AS_OF
    fresh = {"lead_id": "L-new", "account_id": "A-x", "created_at": (now - timedelta(days=2))
             .isoformat(), "activities": []}
    old = {"lead_id": "L-old", "account_id": "A-x", "created_at": (now - timedelta(days=90))
           .isoformat(), "activities": [{
               "activity_id": "act-1", "occurred_at": (now - timedelta(days=50)).isoformat(),
               "type": "web_visit", "direction": "inbound"}]}
    with _client(trained, now) as client:
        r = client.post("/v1/leads/score", json={"leads": [fresh, old]}, headers=auth())
    assert r.status_code == 200, r.text
    first, second = r.json()["results"]
    assert not any(w.startswith(STALE) for w in first["warnings"])
    assert second["warnings"][-1].startswith(f"{STALE}50 days old")

