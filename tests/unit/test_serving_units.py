"""Unit tests of the scoring API's parts: settings, keys, reasons, risk, tables, schemas."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any, get_args

import numpy as np
import pandas as pd
import pytest

from features.columns import first_per_key, table_from_frame, table_from_rows
from features.schema import (
    ACCOUNTS,
    ACTIVITIES,
    ACTIVITY_TYPES,
    DIRECTIONS,
    LEADS,
    OPPORTUNITIES,
    OPPORTUNITY_HISTORY,
    STAGES,
    coerce_dtypes,
)
from serving.auth import check_key, hash_api_key, key_matches
from serving.errors import field_path, validation_items
from serving.explain import plain_value
from serving.logs import JsonFormatter, request_id_var
from serving.metrics import create_metrics
from serving.requests import lead_tables, rows_to_table
from serving.results import Grading, to_score
from serving.risk import RiskRules, risk_flags, risk_level
from serving.schemas import (
    AccountIn,
    ActivityIn,
    ActivityType,
    DealIn,
    Direction,
    HistoryRow,
    LeadBatch,
    LeadIn,
    OpportunityIn,
    Stage,
)
from serving.settings import get_scoring_settings, get_serving_settings

DIGEST = hashlib.sha256(b"k1").hexdigest()


# -- settings -------------------------------------------------------------------------


def test_settings_read_comma_separated_digests_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    other = hash_api_key("k2")
    monkeypatch.setenv("LEADSCORE_API_KEY_HASHES", f" {DIGEST.upper()} ,{other},")
    monkeypatch.setenv("LEADSCORE_PORT", "9001")
    s = get_serving_settings()
    assert s.api_key_hashes == [DIGEST, other]
    assert s.port == 9001 and s.host == "127.0.0.1"


def test_settings_refuse_no_keys_unless_insecure_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEADSCORE_API_KEY_HASHES", raising=False)
    with pytest.raises(ValueError, match="no API keys"):
        get_serving_settings()
    monkeypatch.setenv("LEADSCORE_INSECURE_NO_AUTH", "true")
    assert get_serving_settings().insecure_no_auth is True


def test_settings_reject_plain_keys_and_bad_cutoffs() -> None:
    with pytest.raises(ValueError, match="SHA-256"):
        get_serving_settings(api_key_hashes="my-secret-key")
    with pytest.raises(ValueError, match="cut-offs"):
        get_scoring_settings(grade_cutoffs=(50, 75, 25))


def test_model_uris_choose_a_source() -> None:
    from serving.models import PathSource, RegistrySource, source_for_uri

    followed = source_for_uri("deal_close", "models:/deal_close@challenger", None)
    assert isinstance(followed, RegistrySource) and followed.alias == "challenger"
    assert followed.pinned is None
    pinned = source_for_uri("deal_close", "models:/deal_close/7", None)
    assert isinstance(pinned, RegistrySource) and pinned.current_version("deal_close") == "7"
    assert isinstance(source_for_uri("deal_close", "models/deal_model", None), PathSource)
    with pytest.raises(ValueError, match="task name"):
        source_for_uri("deal_close", "models:/lead_qualification@champion", None)
    with pytest.raises(ValueError, match="expected"):
        source_for_uri("deal_close", "models:/deal_close", None)


# -- keys -----------------------------------------------------------------------------


def test_key_hashing_and_matching() -> None:
    assert hash_api_key("k1") == DIGEST
    assert key_matches("k1", [hash_api_key("x"), DIGEST])
    assert not key_matches("k1 ", [DIGEST])
    assert not key_matches("k1", [])


def test_check_key_statuses() -> None:
    from fastapi import HTTPException

    with pytest.raises(HTTPException) as missing:
        check_key(None, [DIGEST], enabled=True)
    assert missing.value.status_code == 401
    with pytest.raises(HTTPException) as wrong:
        check_key("k2", [DIGEST], enabled=True)
    assert wrong.value.status_code == 403
    check_key("k1", [DIGEST], enabled=True)
    check_key(None, [], enabled=False)


# -- reasons ----------------------------------------------------------------------------


def test_plain_value_unwraps_numpy_and_missing() -> None:
    assert plain_value(np.float64(1.5)) == 1.5 and isinstance(plain_value(np.int64(2)), int)
    assert plain_value(float("inf")) is None and plain_value(pd.NaT) is None


# -- risk --------------------------------------------------------------------------------


META = {"stage_win_rates": {"proposal": 0.4}, "won_stage_days_p75": {"proposal": 20.0}}


def test_every_risk_flag_with_evidence() -> None:
    row = {
        "stage": "proposal", "days_in_stage": 45.0, "days_since_last_activity": 30.0,
        "close_date_pushes": 3, "close_date_push_days": 70.0, "amount_change_pct": -0.4,
        "amount": 6000.0, "contacts_engaged": 1, "days_since_created": 90.0,
    }
    flags = risk_flags(row, 0.1, META, RiskRules())
    names = [f.flag for f in flags]
    assert names == ["stalled", "no_activity", "close_date_pushed", "amount_cut",
                     "single_threaded", "low_probability"]
    by = {f.flag: f for f in flags}
    assert by["stalled"].evidence["won_deals_p75_days"] == 20.0
    assert "45 days in proposal" in by["stalled"].reason
    assert by["close_date_pushed"].evidence == {"pushes": 3, "total_days": 70.0}
    assert "40%" in by["amount_cut"].reason
    assert by["low_probability"].evidence["stage_win_rate"] == 0.4
    assert risk_level(flags) == "high"


def test_healthy_deal_has_no_flags() -> None:
    row = {
        "stage": "proposal", "days_in_stage": 5.0, "days_since_last_activity": 2.0,
        "close_date_pushes": 0, "close_date_push_days": 0.0, "amount_change_pct": 0.1,
        "contacts_engaged": 4,
    }
    assert risk_flags(row, 0.5, META, RiskRules()) == []
    assert risk_level([]) == "low"


def test_risk_without_training_stats_or_features_raises_nothing_unknown() -> None:
    assert risk_flags({"stage": "proposal", "days_in_stage": 400.0}, 0.01, {}, RiskRules()) == []


def test_no_activity_ever_is_flagged_by_deal_age() -> None:
    row = {"stage": "proposal", "days_since_last_activity": None, "days_since_created": 30.0}
    (flag,) = risk_flags(row, 0.5, {}, RiskRules(no_activity_days=14))
    assert flag.flag == "no_activity" and "since the deal opened 30 days ago" in flag.reason


# -- scores -------------------------------------------------------------------------------


def test_score_and_grades() -> None:
    assert [to_score(p) for p in (0.0, 0.004, 0.005, 0.745, 1.0)] == [0, 0, 1, 75, 100]
    g = Grading(75, 50, 25)
    assert [g.grade(s) for s in (100, 75, 74, 50, 25, 24, 0)] == list("AABBCDD")


# -- tables -------------------------------------------------------------------------------


def test_rows_to_table_types_like_the_contract() -> None:
    now = datetime(2024, 5, 1, tzinfo=UTC)
    rows: list[dict[str, Any]] = [
        {"lead_id": "L1", "created_at": now, "employees": 40, "budget_confirmed": True,
         "timeline_days": None, "qualified_at": None, "source": "web_form"},
        {"lead_id": "L2", "created_at": now, "employees": None, "budget_confirmed": None,
         "timeline_days": 30, "qualified_at": now, "source": None},
    ]
    fast = rows_to_table(rows, LEADS)
    slow = coerce_dtypes(pd.DataFrame.from_records(rows).reindex(columns=LEADS.column_names),
                         LEADS)
    pd.testing.assert_frame_equal(fast, slow)
    # Timestamps are converted through integer nanoseconds: keep them exact in every form.
    stamps = [
        datetime(2024, 5, 1, 12, 30, 1, 123456, tzinfo=UTC),
        datetime.fromisoformat("2024-05-01T14:30:01.5+02:00"),
        datetime(2024, 5, 1, 12, 30),  # naive: UTC
        pd.Timestamp("2024-05-01 12:30:00.000000001", tz="UTC"),
        None,
    ]
    got = rows_to_table([{"lead_id": f"L{i}", "created_at": t} for i, t in enumerate(stamps)],
                        LEADS)["created_at"]
    want = pd.Series(
        [pd.NaT if t is None else pd.Timestamp(t) for t in stamps]
    ).map(lambda t: t if t is pd.NaT or t.tzinfo else t.tz_localize("UTC"))
    want = pd.to_datetime(want, utc=True).astype("datetime64[ns, UTC]")
    pd.testing.assert_series_equal(got, want, check_names=False)
    empty = rows_to_table([], ACTIVITIES)
    assert list(empty.columns) == ACTIVITIES.column_names and empty.empty
    # Requests become numpy column tables holding the same values as the DataFrame.
    rows += [{"lead_id": f"L{i}", "created_at": t} for i, t in enumerate(stamps) if t]
    columns = table_from_rows(rows, LEADS)
    frame = table_from_frame(rows_to_table(rows, LEADS), LEADS)
    assert columns.columns == frame.columns == LEADS.column_names
    for name in LEADS.column_names:
        np.testing.assert_array_equal(columns[name], frame[name])
        assert columns[name].dtype == frame[name].dtype
    yes, unknown = columns["budget_confirmed"][:2]
    assert yes == 1.0 and np.isnan(unknown)
    assert table_from_rows([], ACTIVITIES).empty


def test_first_per_key_keeps_the_first_row_of_each_key() -> None:
    rows = [{"account_id": a, "name": n, "created_at": datetime(2024, 1, 1, tzinfo=UTC)}
            for a, n in (("A1", "request"), ("A2", "x"), ("A1", "context"), ("A3", "y"))]
    kept = first_per_key(table_from_rows(rows, ACCOUNTS), "account_id")
    assert kept["account_id"].tolist() == ["A1", "A2", "A3"]
    assert kept["name"].tolist() == ["request", "x", "y"] and len(kept) == 3


# -- schemas -------------------------------------------------------------------------------


def test_schemas_cover_the_data_contract() -> None:
    assert get_args(ActivityType) == ACTIVITY_TYPES
    assert get_args(Direction) == DIRECTIONS
    assert get_args(Stage) == STAGES
    for model, table, extra in (
        (LeadIn, LEADS, {"activities", "field_history", "attributes"}),
        (OpportunityIn, OPPORTUNITIES, {"attributes"}),
        (DealIn, OPPORTUNITIES, {"history", "activities", "field_history", "attributes"}),
        (AccountIn, ACCOUNTS, {"attributes"}),
        (ActivityIn, ACTIVITIES, set()),
        (HistoryRow, OPPORTUNITY_HISTORY, set()),
    ):
        assert set(model.model_fields) == set(table.column_names) | extra, model.__name__
        for column in table.columns:
            if not column.nullable and column.name in model.model_fields:
                assert model.model_fields[column.name].is_required() or column.name in (
                    "account_id",  # activities inherit the enclosing entity's account
                ), (model.__name__, column.name)


def test_field_changes_mirror_the_contract_s_field_history() -> None:
    from features.schema import (
        LEAD_CHANGEABLE,
        LEAD_FIELD_HISTORY,
        OPPORTUNITY_CHANGEABLE,
        OPPORTUNITY_FIELD_HISTORY,
    )
    from serving.schemas import DealField, DealFieldChange, LeadField, LeadFieldChange

    assert get_args(LeadField) == LEAD_CHANGEABLE
    assert get_args(DealField) == OPPORTUNITY_CHANGEABLE
    for model, table, key in ((LeadFieldChange, LEAD_FIELD_HISTORY, "lead_id"),
                              (DealFieldChange, OPPORTUNITY_FIELD_HISTORY, "opportunity_id")):
        assert set(model.model_fields) == set(table.column_names) - {key}


def test_naive_timestamps_are_utc_and_bounded() -> None:
    lead = LeadIn(lead_id="L", created_at=datetime(2024, 1, 1, 12))  # type: ignore[arg-type]
    assert lead.created_at.tzinfo is UTC
    with pytest.raises(ValueError, match="between"):
        LeadIn(lead_id="L", created_at=datetime(1900, 1, 1))  # type: ignore[arg-type]


# -- errors, logs, metrics -------------------------------------------------------------------


def test_field_paths_and_items() -> None:
    assert field_path(("body", "leads", 0, "created_at")) == "leads.0.created_at"
    assert field_path(("body",)) == "body"
    assert field_path(("body", "leads", 0, "")) == 'leads.0.""'
    assert field_path(()) == "body"
    items = validation_items([
        {"loc": ("body", "x"), "msg": "Value error, bad \ud800 thing", "type": "value_error",
         "input": "secret"},
        {"loc": ("body", 3), "msg": "JSON decode error", "type": "json_invalid",
         "ctx": {"error": "Expecting value"}},
    ])
    assert items[0] == {"field": "x", "reason": "bad ? thing", "type": "value_error"}
    assert "Expecting value" in items[1]["reason"]
    json.dumps(items).encode("utf-8")


def test_json_log_line_carries_request_id() -> None:
    token = request_id_var.set("req-123")
    try:
        record = logging.LogRecord("leadscore.x", logging.INFO, __file__, 1, "hello %s",
                                   ("world",), None)
        record.task = "lead_qualification"
        line = json.loads(JsonFormatter().format(record))
    finally:
        request_id_var.reset(token)
    assert line["message"] == "hello world" and line["request_id"] == "req-123"
    assert line["task"] == "lead_qualification" and line["level"] == "info"


def test_metrics_registries_are_per_app() -> None:
    a, b = create_metrics(), create_metrics()
    a.requests.labels("/v1/leads/score", "POST", "200").inc()
    assert b"leadscore_http_requests_total" in a.render()
    assert b'route="/v1/leads/score"' not in b.render()


def test_shared_socket_lets_asyncio_disable_nagle() -> None:
    """Accepted sockets must say TCP, or asyncio leaves Nagle on (~45 ms per response)."""
    import asyncio
    import socket

    from serving.server import bind_socket

    listener = bind_socket("127.0.0.1", 0)
    try:
        client = socket.create_connection(listener.getsockname()[:2])
        accepted, _ = listener.accept()
        with client, accepted:
            assert accepted.proto == socket.IPPROTO_TCP
            asyncio.base_events._set_nodelay(accepted)  # what asyncio does on accept
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        listener.close()



def test_a_repeated_activity_id_counts_once_with_or_without_context() -> None:
    """As the loader keeps the first row of a repeated id, so do a request's tables,
    whether or not context rows came with it (they used to differ)."""
    now = datetime(2025, 3, 1, tzinfo=UTC)
    acts = [{"activity_id": "X1", "occurred_at": now.replace(day=d), "type": "demo",
             "direction": "inbound"} for d in (1, 2)]
    lead = {"lead_id": "L1", "account_id": "A1", "created_at": now.replace(month=1),
            "activities": acts}
    other = {"activity_id": "Z9", "occurred_at": now, "account_id": "A2", "type": "call",
             "direction": "outbound"}
    alone = lead_tables(LeadBatch.model_validate({"leads": [lead]})).activities
    with_context = lead_tables(
        LeadBatch.model_validate({"leads": [lead], "context": {"activities": [other]}})
    ).activities
    assert alone["activity_id"].tolist() == ["X1"]
    assert with_context["activity_id"].tolist() == ["X1", "Z9"]
    assert alone["occurred_at"][0] == with_context["occurred_at"][0]


def test_a_request_s_rows_count_every_record_nested_or_in_context() -> None:
    from serving.body import rows_of
    from serving.schemas import LeadBatch

    act = {"occurred_at": "2024-09-02T00:00:00Z", "type": "web_visit", "direction": "inbound"}
    batch = LeadBatch.model_validate({
        "leads": [{"lead_id": f"L{i}", "created_at": "2024-09-01T00:00:00Z",
                   "activities": [{**act, "activity_id": f"A{i}{j}"} for j in range(i)]}
                  for i in range(4)],
        "context": {"accounts": [{"account_id": "A1", "created_at": "2024-01-01T00:00:00Z"}],
                    "activities": [{**act, "activity_id": "C1"}]},
    })
    assert rows_of(batch) == 4 + (0 + 1 + 2 + 3) + 1 + 1
