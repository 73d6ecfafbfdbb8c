"""Malformed input of every kind answers 4xx naming the field and the reason, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient

from serving.app import create_app
from serving.deps import get_now
from tests.integration.test_api_fixtures import (
    AS_OF,
    Trained,
    auth,
    settings,
    trained,  # noqa: F401  (session fixture)
)

LEAD: dict[str, Any] = {"lead_id": "L1", "created_at": "2024-09-01T00:00:00Z"}
DEAL: dict[str, Any] = {
    "opportunity_id": "O1",
    "account_id": "A1",
    "owner_id": "U1",
    "created_at": "2024-08-01T00:00:00Z",
    "amount": 1000.0,
    "history": [{"changed_at": "2024-08-01T00:00:00Z", "stage": "prospecting"}],
}


@pytest.fixture(scope="module")
def client(trained: Trained) -> Iterator[TestClient]:  # noqa: F811
    app = create_app(settings(max_body_bytes=1024 * 1024), models=[trained.lead, trained.deal])

    async def fixed_now() -> datetime:
        return AS_OF.to_pydatetime()

    app.dependency_overrides[get_now] = fixed_now
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def _errors(r: Any) -> dict[str, str]:
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] == "validation_error" and body["request_id"]
    for item in body["detail"]:
        assert item["reason"]
    return {item["field"]: item["reason"] for item in body["detail"]}


def _lead(**changes: Any) -> dict[str, Any]:
    return {"leads": [{**LEAD, **changes}]}


def _deal(**changes: Any) -> dict[str, Any]:
    return {"deals": [{**DEAL, **changes}]}


@pytest.mark.parametrize(
    ("route", "body", "field", "reason"),
    [
        ("leads", _lead(created_at="yesterday"), "leads.0.created_at", "datetime"),
        ("leads", _lead(employees="many"), "leads.0.employees", "integer"),
        ("leads", _lead(employees=-3), "leads.0.employees", "greater than or equal"),
        ("leads", _lead(budget_confirmed="perhaps"), "leads.0.budget_confirmed", "boolean"),
        ("leads", {"leads": "L1"}, "leads", "list"),
        ("leads", {"leads": [["L1"]]}, "leads.0", "object"),
        ("leads", {"leads": []}, "leads", "at least 1"),
        ("leads", {}, "leads", "required"),
        ("leads", {"leads": [{"created_at": "2024-09-01T00:00:00Z"}]}, "leads.0.lead_id",
         "required"),
        ("leads", {"leads": [{"lead_id": "L1"}]}, "leads.0.created_at", "required"),
        ("leads", _lead(lead_id=""), "leads.0.lead_id", "at least 1"),
        ("leads", _lead(favourite_colour="blue"), "leads.0.favourite_colour", "not permitted"),
        ("leads", {"leads": [LEAD], "": 1}, '""', "not permitted"),
        ("leads", _lead(created_at="9999-01-01T00:00:00Z"), "leads.0.created_at", "between"),
        ("leads", _lead(created_at="0001-01-01T00:00:00+05:00"), "leads.0.created_at",
         "between"),
        ("leads", _lead(created_at="9999-12-31T23:59:59-05:00"), "leads.0.created_at",
         "between"),
        ("leads", _lead(created_at="2031-01-01T00:00:00Z"), "leads.0.created_at", "future"),
        ("leads", _lead(activities=[{"activity_id": "a", "occurred_at": "2024-09-02T00:00:00Z",
                                     "type": "carrier_pigeon", "direction": "inbound"}]),
         "leads.0.activities.0.type", "email_sent"),
        ("leads", {"leads": [LEAD, LEAD]}, "leads.1.lead_id", "duplicate"),
        ("deals", _deal(history=[{"changed_at": "2024-08-01T00:00:00Z", "stage": "won_maybe"}]),
         "deals.0.history.0.stage", "prospecting"),
        ("deals", _deal(history=[]), "deals.0.history", "at least 1"),
        ("deals", {"deals": [{k: v for k, v in DEAL.items() if k != "history"}]},
         "deals.0.history", "required"),
        ("deals", _deal(history=[{"changed_at": "2024-08-01T00:00:00Z", "stage": "closed_won"}]),
         "deals.0", "only open deals"),
        ("deals", _deal(amount=-5), "deals.0.amount", "greater than or equal"),
        ("deals", _deal(amount="a lot"), "deals.0.amount", "number"),
        ("deals", _deal(lead_id="\ud800"), "deals.0.lead_id", "unicode"),
        ("deals", _deal(owner_id="x\u0000y"), "deals.0.owner_id", "NUL"),
    ],
)
def test_bad_fields_are_422_with_path_and_reason(
    client: TestClient, route: str, body: dict[str, Any], field: str, reason: str
) -> None:
    # json.dumps escapes to ASCII, so even a lone surrogate travels as the CRM sent it.
    r = client.post(f"/v1/{route}/score", content=json.dumps(body).encode(),
                    headers={**auth(), "content-type": "application/json"})
    errors = _errors(r)
    assert field in errors, errors
    assert reason.lower() in errors[field].lower(), errors[field]


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_rejected(client: TestClient, token: str) -> None:
    raw = json.dumps(_deal()).replace('"amount": 1000.0', f'"amount": {token}')
    assert token in raw
    r = client.post("/v1/deals/score", content=raw.encode(),
                    headers={**auth(), "content-type": "application/json"})
    errors = _errors(r)
    assert "deals.0.amount" in errors and "finite" in errors["deals.0.amount"]


def test_too_many_leads_is_422(client: TestClient) -> None:
    leads = [{"lead_id": f"L{i}", "created_at": "2024-09-01T00:00:00Z"} for i in range(10_001)]
    r = client.post("/v1/leads/score", json={"leads": leads}, headers=auth())
    errors = _errors(r)
    assert "leads" in errors and "at most 1000" in errors["leads"]


def test_twenty_megabyte_body_is_413(client: TestClient) -> None:
    blob = b'{"leads": [{"lead_id": "' + b"x" * (20 * 1024 * 1024) + b'"}]}'
    r = client.post("/v1/leads/score", content=blob,
                    headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"


def test_streamed_body_over_limit_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"leads": [{"lead_id": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}]}'

    r = client.post("/v1/leads/score", content=chunks(),
                    headers={**auth(), "content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b"not json at all",
        b"\xff\xfe\xfa garbage \x00",
        '{"leads": [{"lead_id": "caf\u00e9 \u2603 \U0001f4a5", "created_at": [5]}]}'.encode(),
        b"[" * 100_000 + b"]" * 100_000,
        b'{"leads": null}',
        b"123",
    ],
)
def test_junk_bodies_are_4xx_never_500(client: TestClient, raw: bytes) -> None:
    r = client.post("/v1/leads/score", content=raw,
                    headers={**auth(), "content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    body = r.json()
    assert body["error"] and body["detail"]
    if r.status_code == 422:
        assert all(item["field"] and item["reason"] for item in body["detail"])


def test_unicode_ids_round_trip(client: TestClient) -> None:
    body = _lead(lead_id="lead-\u00e9\u2603\U0001f4a5", title="Directeur g\u00e9n\u00e9ral")
    r = client.post("/v1/leads/score", json=body, headers=auth())
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["lead_id"] == "lead-\u00e9\u2603\U0001f4a5"


def test_errors_never_echo_the_input(client: TestClient) -> None:
    secret = "s3cr3t-" + "z" * 200
    r = client.post("/v1/leads/score", json=_lead(employees=secret), headers=auth())
    assert r.status_code == 422
    assert secret not in r.text
