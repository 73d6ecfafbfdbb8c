"""Every scoring route's OpenAPI schema carries working examples, which /docs shows: each
one posted as it stands scores, with nothing read as not known nor stale."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.tasks import TASKS
from serving.app import create_app
from serving.examples import install_examples
from tests.integration.test_api_accounts import (
    AccountModels,
    account_models,  # noqa: F401  (module fixture)
)
from tests.integration.test_api_fixtures import (
    Trained,
    auth,
    settings,
    trained,  # noqa: F401  (session fixture)
)

ROUTES = sorted({spec.route for spec in TASKS.values()})


@pytest.fixture(scope="module")
def client(trained: Trained, account_models: AccountModels) -> Iterator[TestClient]:  # noqa: F811
    models = [trained.lead, trained.deal, *account_models.models.values()]
    app = create_app(settings(tasks=tuple(TASKS)), models=models)
    with TestClient(app) as c:
        yield c


def _examples(spec: dict[str, Any], route: str) -> dict[str, Any]:
    examples: dict[str, Any] = spec["paths"][route]["post"]["requestBody"]["content"][
        "application/json"]["examples"]
    return examples


def test_every_scoring_route_has_examples_in_the_schema_docs_read(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert spec == client.app.openapi()  # type: ignore[attr-defined]
    assert "/openapi.json" in client.get("/docs").text  # Swagger UI renders this schema
    for route in ROUTES:
        examples = _examples(spec, route)
        assert examples, route
        assert all(e["summary"] and e["description"] and e["value"] for e in examples.values())


@pytest.mark.parametrize("route", ROUTES)
def test_each_example_posted_as_it_stands_scores(client: TestClient, route: str) -> None:
    for name, example in _examples(client.app.openapi(), route).items():  # type: ignore[attr-defined]
        r = client.post(route, json=example["value"], headers=auth())
        assert r.status_code == 200, (name, r.text)
        results = r.json()["results"]
        assert len(results) == len(next(iter(example["value"].values())))
        for res in results:
            assert not any(w.startswith("the newest event sent is") for w in res["warnings"])
            if name != "minimal_lead":  # the others send their context
                assert not any("not known without" in w for w in res["warnings"]), res
        if route == "/v1/accounts/score":
            (res,) = results
            assert res["renewal"] is not None and res["expansion"] is not None


def test_examples_are_dated_relative_to_the_day_the_schema_is_read(client: TestClient) -> None:
    app = create_app(settings(tasks=tuple(TASKS)), models=[])
    days = iter([datetime(2031, 5, 2, 8, tzinfo=UTC), datetime(2031, 5, 2, 20, tzinfo=UTC),
                 datetime(2031, 7, 1, 8, tzinfo=UTC)])
    install_examples(app, clock=lambda: next(days))
    first, same_day, later = (app.openapi() for _ in range(3))
    assert first is same_day  # one schema a day
    for schema, day in ((first, datetime(2031, 5, 2, tzinfo=UTC)),
                        (later, datetime(2031, 7, 1, tzinfo=UTC))):
        lead = _examples(schema, "/v1/leads/score")["lead_with_activities"]["value"]["leads"][0]
        times = [pd.Timestamp(a["occurred_at"]) for a in lead["activities"]]
        assert day - timedelta(days=30) < max(times) < day


def test_the_schema_states_the_rules_the_server_enforces() -> None:
    from serving.app import create_app
    from tests.integration.test_api_fixtures import settings

    schema = create_app(settings(), models=[]).openapi()
    parts = schema["components"]["schemas"]
    leads = parts["LeadBatch"]["properties"]["leads"]
    assert leads["minItems"] == 1 and leads["maxItems"] == 1000
    assert "a repeated lead_id is a 422" in leads["description"]
    lead = parts["LeadIn"]["properties"]
    assert lead["employees"]["anyOf"][0]["maximum"] == 10_000_000
    created = lead["created_at"]
    assert created["type"] == "string" and created["format"] == "date-time"
    assert "between 1970-01-01 and 2200-01-01" in created["description"]


def _patterns(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {v for k, v in node.items() if k == "pattern" and isinstance(v, str)}
        return found.union(*(_patterns(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_patterns(v) for v in node))
    return set()


def test_the_schemas_rules_hold_in_a_validator_other_than_the_servers() -> None:
    """Every pattern compiles in a regex engine of Unicode scalar values (Rust's, through
    jsonschema-rs, the validator schemathesis uses), which refuses a range of lone
    surrogates: a pattern it cannot compile is dropped, and a client would then draw what
    the server refuses (text with NUL). A signal's value range, per signal, is stated."""
    import jsonschema_rs

    from serving.app import create_app
    from tests.integration.test_api_fixtures import settings

    schema = create_app(settings(), models=[]).openapi()
    patterns = _patterns(schema)
    assert patterns
    for pattern in patterns:
        jsonschema_rs.validator_for({"type": "string", "pattern": pattern})
    ids = jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/AccountIn/properties/account_id",
         "components": schema["components"]})
    assert ids.is_valid("ACC-1") and not ids.is_valid("ACC\x001")

    signal = jsonschema_rs.validator_for({"$ref": "#/components/schemas/SignalIn",
                                          "components": schema["components"]})

    def ok(name: str, value: float) -> bool:
        return bool(signal.is_valid({"signal_id": "s1", "observed_at": "2024-05-01T00:00:00Z",
                                     "signal": name, "value": value}))

    assert ok("ticket_opened", 2) and not ok("ticket_opened", 0)
    assert not ok("ticket_opened", 2.5)  # a severity is a whole number
    assert ok("nps", 10) and not ok("nps", 11) and ok("logins", 1e6) and not ok("logins", -1)
    assert ok("csat", 5) and not ok("csat", 0)
