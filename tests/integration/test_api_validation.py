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


@pytest.mark.parametrize(("route", "body", "field"), [
    ("deals", _deal(history=[{"changed_at": "2024-08-01T00:00:00Z", "stage": "closed_won"}]),
     "deals.0"),
    ("leads", _lead(employees=-3), "leads.0.employees"),
])
def test_a_request_of_one_bad_record_names_that_record_only(
    client: TestClient, route: str, body: dict[str, Any], field: str
) -> None:
    """Records are validated one at a time, then the list: the list rule (at least one)
    counts the records sent, so a lone bad record is not also "an empty list"."""
    r = client.post(f"/v1/{route}/score", json=body, headers=auth())
    assert list(_errors(r)) == [field]


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


def test_a_body_not_sent_as_json_is_415(client: TestClient) -> None:
    body = json.dumps(_lead()).encode()
    for ctype in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {**auth(), **({"content-type": ctype} if ctype else {})}
        r = client.post("/v1/leads/score", content=body, headers=headers)
        assert r.status_code == 415, (ctype, r.text)
        assert "send the body as application/json" in r.json()["detail"]
    ok = client.post("/v1/leads/score", content=body,
                     headers={**auth(), "content-type": "application/json; charset=utf-8"})
    assert ok.status_code == 200, ok.text


def test_json_errors_name_a_position_not_a_field(client: TestClient) -> None:
    text = json.dumps(_lead())[:30]  # truncated mid-body
    r = client.post("/v1/leads/score", content=text.encode(),
                    headers={**auth(), "content-type": "application/json"})
    errors = _errors(r)
    assert list(errors) == ["body"]
    assert "body is not valid JSON" in errors["body"]
    assert "line 1 column 30 (character 29)" in errors["body"]
    huge = b'{"leads": [{"lead_id": "L1", "employees": ' + b"9" * 5000 + b"}]}"
    r = client.post("/v1/leads/score", content=huge,
                    headers={**auth(), "content-type": "application/json"})
    assert "digits" in _errors(r)["body"]


def test_a_repeated_json_key_is_422(client: TestClient) -> None:
    text = json.dumps(_lead()).replace('"lead_id": "L1"', '"lead_id": "L1", "lead_id": "L2"', 1)
    assert text.count('"lead_id"') == 2
    r = client.post("/v1/leads/score", content=text.encode(),
                    headers={**auth(), "content-type": "application/json"})
    errors = _errors(r)
    assert "repeats the key 'lead_id'" in errors["body"]


def test_big_requests_are_parsed_and_scored_off_the_event_loop(
        trained: Trained, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    """16 leads with 300 activities each are a big request: parsing and scoring both leave
    the event loop (so /healthz is not held), where one small lead stays on it."""
    import serving.routes as routes

    calls: list[str] = []
    real = routes.run_in_threadpool

    async def spy(fn: Any, *args: Any) -> Any:
        calls.append(getattr(fn, "__name__", "work"))
        return await real(fn, *args)

    monkeypatch.setattr(routes, "run_in_threadpool", spy)
    app = create_app(settings(), models=[trained.lead, trained.deal])
    base = _lead()["leads"][0]
    acts = [{"activity_id": f"A{j}", "occurred_at": "2024-09-02T00:00:00Z",
             "type": "web_visit", "direction": "inbound"} for j in range(300)]
    big = {"leads": [{**base, "lead_id": f"L{i}", "activities": acts} for i in range(16)]}
    with TestClient(app) as c:
        small = c.post("/v1/leads/score", json=_lead(), headers=auth())
        assert small.status_code == 200 and calls == []
        r = c.post("/v1/leads/score", json=big, headers=auth())
        assert r.status_code == 200, r.text[:300]
    assert calls == ["validate_body", "work"]


def test_a_timestamp_is_iso_text_not_a_number(client: TestClient) -> None:
    for value in (0, 1725148800, 1.5e9):
        r = client.post("/v1/leads/score", json=_lead(created_at=value), headers=auth())
        errors = _errors(r)
        assert "ISO 8601 text" in errors["leads.0.created_at"], errors


def test_numbers_and_yes_no_answers_are_json_s_own_not_text(client: TestClient) -> None:
    cases = [("leads", _lead(employees="250"), "leads.0.employees", "valid integer, not text"),
             ("leads", _lead(budget_confirmed="true"), "leads.0.budget_confirmed",
              "valid boolean (true or false), not text"),
             ("deals", _deal(amount="1000"), "deals.0.amount", "valid number, not text")]
    for route, body, field, reason in cases:
        r = client.post(f"/v1/{route}/score", json=body, headers=auth())
        errors = _errors(r)
        assert reason in errors[field], errors
    ok = client.post("/v1/leads/score", json=_lead(employees=250, budget_confirmed=True),
                     headers=auth())
    assert ok.status_code == 200, ok.text
