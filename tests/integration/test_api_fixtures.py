"""Shared fixtures of the API tests: a tiny generated CRM and small models trained on it.

Kept in one module so every API test file scores with the same models; the models are
trained once per session in about a second (few trees, a small CRM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
import pytest
from fastapi import FastAPI

from features.build import build_features
from features.field_history import record_as_of
from features.schema import (
    ACCOUNTS,
    ACTIVITIES,
    LEAD_FIELD_HISTORY,
    LEADS,
    OPPORTUNITIES,
    OPPORTUNITY_HISTORY,
    CRMTables,
    Table,
)
from features.sets import DEAL_V1, LEAD_V1
from features.tasks import task_spec
from features.training_set import build_training_set
from leadscore.generator import generate_crm
from serving.app import create_app
from serving.auth import hash_api_key
from serving.deps import get_now
from serving.models import LoadedModel
from serving.settings import ServingSettings, get_serving_settings
from tests.data.entity_rows import entity_tables
from training.evaluate import stage_win_rates, won_stage_days_p75_from_history
from training.fit import BoosterParams, fit_scoring_model
from training.split import time_split

API_KEY = "test-key-7f3a"
OTHER_KEY = "another-key-2b9c"
AS_OF = pd.Timestamp("2024-10-01T12:00:00Z")
"""Snapshot time used by the tests (the generated CRM runs through 2024)."""


@dataclass(frozen=True)
class Trained:
    tables: CRMTables
    lead: LoadedModel
    deal: LoadedModel


def train_models(seed: int = 3, rounds: int = 30, version: str = "1") -> Trained:
    """Small lead and deal models on a small generated CRM (about a second)."""
    tables = generate_crm(1500, seed=3, months=12).tables
    params = BoosterParams(
        num_boost_round=rounds, min_data_in_leaf=20, early_stopping_rounds=rounds, num_threads=1
    )
    out: dict[str, LoadedModel] = {}
    for task, fs in (("lead_qualification", LEAD_V1), ("deal_close", DEAL_V1)):
        frame = build_training_set(tables, task)
        frame = frame.loc[frame["label"].notna()].reset_index(drop=True)
        split = time_split(frame, fs.entity_key)
        metadata: dict[str, Any] = {
            "trained_from": split.train["as_of"].min().isoformat(),
            "trained_to": split.validation["as_of"].max().isoformat(),
            "test_metrics": {"test_roc_auc": 0.8},
        }
        if task == "deal_close":
            metadata["stage_win_rates"] = stage_win_rates(split.train, fs.entity_key)
            metadata["won_stage_days_p75"] = won_stage_days_p75_from_history(
                tables, split.validation_start
            )
        fitted = fit_scoring_model(
            task, fs, split.train, split.validation, params, seed=seed, metadata=metadata
        )
        out[task] = LoadedModel(
            task=task, model=fitted.model, name=task, version=version, alias="champion",
            metadata=fitted.model.metadata,
        )
    return Trained(tables=tables, lead=out["lead_qualification"], deal=out["deal_close"])


def settings(**overrides: Any) -> ServingSettings:
    base: dict[str, Any] = {
        "api_key_hashes": f"{hash_api_key(API_KEY)},{hash_api_key(OTHER_KEY)}",
        "reload_interval_s": 0,
        "startup_wait_s": 120,  # the tests read the models as loaded once the app starts
        "tasks": ("lead_qualification", "deal_close"),
    }
    base.update(overrides)
    return get_serving_settings(**base)


def app_at(models: list[LoadedModel], now: pd.Timestamp | None = None,
           **overrides: Any) -> FastAPI:
    """The scoring app serving ``models``, its clock fixed at ``now`` (default ``AS_OF``)."""
    app = create_app(settings(**overrides), models=models)
    at = (AS_OF if now is None else now).to_pydatetime()

    async def fixed_now() -> datetime:
        return at

    app.dependency_overrides[get_now] = fixed_now
    return app


def _json_value(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    return value


def rows(frame: pd.DataFrame, table: Table, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """A contract table's rows as the JSON objects a CRM would send."""
    cols = [c for c in table.column_names if c not in drop]
    return [
        {c: _json_value(v) for c, v in zip(cols, rec, strict=True)}
        for rec in frame[cols].astype(object).itertuples(index=False, name=None)
    ]


def entity_rows(tables: CRMTables, task: str, entity_id: str) -> CRMTables:
    """The rows a request for one entity carries: the rows its features read."""
    return entity_tables(tables, task_spec(task).feature_set, entity_id)


def offline_features(
    tables: CRMTables, task: str, ids: list[str], as_of: pd.Timestamp
) -> pd.DataFrame:
    """The batch (training) path: build_features on the full tables."""
    fs = LEAD_V1 if task == "lead_qualification" else DEAL_V1
    snaps = pd.DataFrame(
        {
            fs.entity_key: pd.array(ids, dtype="string"),
            "as_of": pd.DatetimeIndex([as_of] * len(ids)).astype("datetime64[ns, UTC]"),
        }
    )
    return build_features(tables, snaps, fs)[fs.names]


def lead_request(tables: CRMTables, lead_id: str, as_of: pd.Timestamp) -> dict[str, Any]:
    """A /v1/leads/score body for one lead as of ``as_of``: its row then, its field changes
    and activities before, and account context."""
    own = entity_rows(tables, "lead_qualification", lead_id)
    before = own.activities.loc[own.activities["occurred_at"] < as_of]
    mine = before["lead_id"] == lead_id
    # The lead as the CRM held it then: its fields and the changes that led there.
    changes = own.lead_field_history
    lead = rows(record_as_of(own.leads, changes, LEADS, as_of), LEADS)[0]
    lead["activities"] = rows(before.loc[mine.fillna(False)], ACTIVITIES)
    lead["field_history"] = rows(changes.loc[changes["changed_at"] < as_of],
                                 LEAD_FIELD_HISTORY, drop=("lead_id",))
    context = {
        "accounts": rows(own.accounts, ACCOUNTS),
        "opportunities": rows(own.opportunities, OPPORTUNITIES),
        "activities": rows(before.loc[~mine.fillna(False)], ACTIVITIES),
    }
    return {"leads": [lead], "context": context}


def deal_request(tables: CRMTables, deal_id: str, as_of: pd.Timestamp) -> dict[str, Any]:
    """A /v1/deals/score body for one deal: its row, history, activities and context."""
    own = entity_rows(tables, "deal_close", deal_id)
    opps = own.opportunities
    deal = rows(opps.loc[opps["opportunity_id"] == deal_id], OPPORTUNITIES)[0]
    hist = own.opportunity_history
    deal["history"] = rows(hist.loc[hist["changed_at"] < as_of], OPPORTUNITY_HISTORY)
    acts = own.activities.loc[own.activities["occurred_at"] < as_of]
    mine = (acts["opportunity_id"] == deal_id).fillna(False)
    deal["activities"] = rows(acts.loc[mine], ACTIVITIES)
    context = {
        "accounts": rows(own.accounts, ACCOUNTS),
        "leads": rows(own.leads, LEADS),
        "opportunities": rows(opps.loc[opps["opportunity_id"] != deal_id], OPPORTUNITIES),
        "activities": rows(acts.loc[~mine], ACTIVITIES),
    }
    return {"deals": [deal], "context": context}


def open_leads(tables: CRMTables, as_of: pd.Timestamp) -> list[str]:
    leads = tables.leads
    open_ = (
        (leads["created_at"] < as_of - pd.Timedelta(days=1))
        & ~(leads["qualified_at"] <= as_of).fillna(False)
        & ~(leads["disqualified_at"] <= as_of).fillna(False)
    )
    return leads.loc[open_, "lead_id"].astype(str).tolist()


def open_deals(tables: CRMTables, as_of: pd.Timestamp) -> list[str]:
    opps = tables.opportunities
    open_ = (opps["created_at"] < as_of - pd.Timedelta(days=1)) & ~(
        opps["closed_at"] <= as_of
    ).fillna(False)
    return opps.loc[open_, "opportunity_id"].astype(str).tolist()


@pytest.fixture(scope="session")
def trained() -> Trained:
    return train_models()


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
