"""The task registry: every declaration is whole, and every layer reads it."""

from __future__ import annotations

import pandas as pd
import pytest

from features.schema import TABLES
from features.tasks import TASKS, Label, TaskSpec, task_spec
from serving.endpoints import Endpoint
from serving.settings import TASKS as SERVED
from tests.unit.test_features_crafted import crm, day, lead


@pytest.mark.parametrize("spec", list(TASKS.values()), ids=list(TASKS))
def test_each_declaration_is_whole(spec: TaskSpec) -> None:
    assert spec.feature_set.task == spec.name
    table = TABLES[spec.table]
    assert table.key == spec.entity_key
    assert set(spec.closed_by) <= set(table.column_names)
    assert spec.route.startswith("/v1/") and spec.route.endswith("/score")
    assert isinstance(spec.endpoint.load(), Endpoint)
    assert spec.oracle is None or callable(spec.oracle.load())
    assert spec.baselines.rate_column in spec.feature_set.names
    assert spec.stage_column is None or spec.stage_column in spec.feature_set.names
    assert "{" not in spec.describe_label()


def test_tasks_of_one_route_score_one_entity() -> None:
    by_route: dict[str, set[str]] = {}
    for spec in TASKS.values():
        by_route.setdefault(spec.route, set()).add(spec.entity_key)
    assert all(len(keys) == 1 for keys in by_route.values()), by_route


def test_serving_serves_every_registered_task_and_routes_them() -> None:
    from serving.app import create_app
    from serving.settings import get_serving_settings

    assert tuple(TASKS) == SERVED
    app = create_app(get_serving_settings(insecure_no_auth=True), models=[])
    paths = app.openapi()["paths"]
    for spec in TASKS.values():
        body = paths[spec.route]["post"]["requestBody"]["content"]["application/json"]
        endpoint = spec.endpoint.load()
        assert body["schema"]["$ref"].endswith(f"/{endpoint.batch.__name__}")


def test_unknown_task_names_the_known_ones() -> None:
    with pytest.raises(ValueError, match="lead_qualification, deal_close"):
        task_spec("churn")


def test_label_gap_follows_the_horizon_or_a_fixed_number() -> None:
    assert Label("x", horizon_days=30, gap="horizon").gap_days(None) == 30
    assert Label("x", horizon_days=30, gap="horizon").gap_days(45) == 45
    assert Label("x").gap_days(None) == 0
    assert Label("x", gap=14).gap_days(30) == 14


def test_snapshots_come_from_the_declaration() -> None:
    tables = crm([lead("L1", created_at=day(1))])
    spec = task_spec("lead_qualification")
    snaps = spec.take_snapshots(tables, data_end=day(60))
    # At creation (+1 minute), then weekly while open, never past the data's end.
    assert len(snaps) == 9
    assert snaps["as_of"].iloc[0] == day(1) + pd.Timedelta(minutes=1)
    # The horizon is the task's unless given: 30 days, so the last labels are not known.
    assert snaps["label"].isna().sum() == 4
    assert spec.take_snapshots(tables, data_end=day(60), horizon_days=7)["label"].isna().sum() == 1
