"""Property-based run of schemathesis against the app's own OpenAPI spec, every check it
has, over every operation: no 5xx, answers that match their documented schema, status and
headers, schema-breaking input rejected and schema-valid input accepted.

Each operation of the spec gets schema-valid (positive) and schema-breaking (negative)
requests generated from the spec itself. Bounded to a few dozen examples per operation
and mode so it stays a fast test; raise ``SCHEMATHESIS_EXAMPLES`` for a longer hunt.

Four rules no JSON Schema can state are the only 422s a schema-valid request may get:
an id repeated in one request (``duplicate_id``), a record created after now
(``future_timestamp``), an own attribute sent as another kind than the served model
reads (``attribute_kind``), and a deal whose latest stage (by time) is closed
(``closed_deal``). Every other 422 to a schema-valid request is a mismatch.
"""


from __future__ import annotations

import os
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks, positive_data_acceptance

from serving.app import create_app
from tests.integration.test_api_accounts import (
    AccountModels,
    account_models,  # noqa: F401  (session fixture)
)
from tests.integration.test_api_fixtures import (
    Trained,
    auth,
    trained,  # noqa: F401  (session fixture)
)
from tests.integration.test_api_fixtures import settings as api_settings

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
OPERATIONS = [
    ("POST", "/v1/leads/score"),
    ("POST", "/v1/deals/score"),
    ("POST", "/v1/accounts/score"),
    ("GET", "/v1/models"),
    ("GET", "/v1/monitoring"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
]


DYNAMIC_RULES = frozenset({"duplicate_id", "future_timestamp", "attribute_kind", "closed_deal"})


@pytest.fixture(scope="module")
def api_schema(trained: Trained, account_models: AccountModels) -> Any:  # noqa: F811
    models = [trained.lead, trained.deal, *account_models.models.values()]
    app = create_app(api_settings(tasks=tuple(m.task for m in models)), models=models)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def test_spec_lists_every_operation(api_schema: Any) -> None:
    found = {(op.ok().method.upper(), op.ok().path) for op in api_schema.get_all_operations()}
    assert found == set(OPERATIONS)


def _checks() -> list[Any]:
    """Every check schemathesis has, but its own positive-data acceptance, which is
    replaced by one that knows the rules a schema cannot state (``DYNAMIC_RULES``)."""
    load_all_checks()
    return [c for c in CHECKS.get_all() if c is not positive_data_acceptance]


CASES = [(m, p, GenerationMode.POSITIVE) for m, p in OPERATIONS] + [
    # Operations without parameters or body have nothing to break: positive only.
    (m, p, GenerationMode.NEGATIVE) for m, p in OPERATIONS if p.startswith("/v1/")
]


@pytest.mark.parametrize(("method", "path", "mode"), CASES,
                         ids=[f"{p}-{mode.value}" for _, p, mode in CASES])
def test_no_server_errors(api_schema: Any, method: str, path: str,
                          mode: GenerationMode) -> None:
    operation = api_schema[path][method]
    statuses: list[int] = []

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None, phases=[Phase.explicit, Phase.generate])
    def run(case: Any) -> None:  # no shrinking: a failure prints its case, and stays bounded
        headers = {**(case.headers or {}), **auth()}
        response = case.call(headers=headers)
        statuses.append(response.status_code)
        assert response.status_code < 500, (repr(case.body)[:2000], response.text[:500])
        case.validate_response(response, checks=_checks(), headers=headers)
        if path != "/metrics":
            response.json()  # every answer, errors included, is JSON
        if response.status_code == 422:
            detail = response.json()["detail"]
            assert all(item["field"] and item["reason"] for item in detail), detail
            if mode is GenerationMode.POSITIVE:  # schema-valid: only a dynamic rule may fail
                assert {item["type"] for item in detail} <= DYNAMIC_RULES, (
                    repr(case.body)[:2000], detail)

    run()
    assert statuses  # the operation was exercised
    if mode is GenerationMode.POSITIVE:
        # Schema-valid input must reach the handler and succeed at least sometimes; a run
        # of nothing but 422s would never have exercised the scoring code.
        assert any(200 <= s < 300 for s in statuses), sorted(set(statuses))


@pytest.mark.parametrize(("method", "path"), OPERATIONS[:3], ids=[p for _, p in OPERATIONS[:3]])
def test_v1_without_keys_is_401(api_schema: Any, method: str, path: str) -> None:
    operation = api_schema[path][method]

    @given(case=operation.as_strategy())
    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck),
              derandomize=True, database=None, phases=[Phase.explicit, Phase.generate])
    def run(case: Any) -> None:
        case.headers = {k: v for k, v in (case.headers or {}).items()
                        if k.lower() not in ("authorization", "x-api-key")}
        assert case.call().status_code == 401

    run()
