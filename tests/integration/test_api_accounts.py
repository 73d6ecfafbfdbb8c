"""POST /v1/accounts/score: renewal and expansion per customer account, end to end."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from features.build import build_features
from features.schema import ACCOUNT_SIGNALS, ACCOUNTS, ACTIVITIES, CRMTables
from features.tasks import TASKS
from features.training_set import build_training_set
from leadscore.generator import generate_crm
from serving.app import create_app
from serving.deps import get_now
from serving.models import LoadedModel
from tests.integration.test_api_fixtures import API_KEY, auth, rows, settings
from training.fit import BoosterParams, fit_scoring_model
from training.split import time_split

ACCOUNT_TASKS = ("account_renewal", "account_expansion")


@dataclass(frozen=True)
class AccountModels:
    tables: CRMTables
    as_of: pd.Timestamp
    models: dict[str, LoadedModel]


@pytest.fixture(scope="session")
def account_models() -> AccountModels:
    """Small renewal and expansion models on a generated CRM long enough to renew."""
    tables = generate_crm(2500, seed=5, months=30).tables
    params = BoosterParams(num_boost_round=30, min_data_in_leaf=20, early_stopping_rounds=30,
                           num_threads=1)
    models = {}
    for task in ACCOUNT_TASKS:
        fs = TASKS[task].feature_set
        frame = build_training_set(tables, task)
        frame = frame.loc[frame["label"].notna()].reset_index(drop=True)
        frame["label"] = frame["label"].astype("int64")
        split = time_split(frame, fs.entity_key)
        fitted = fit_scoring_model(task, fs, split.train, split.validation, params, seed=3)
        models[task] = LoadedModel(task=task, model=fitted.model, name=task, version="1",
                                   alias="champion", metadata=fitted.model.metadata)
    as_of = tables.opportunities["closed_at"].max() - pd.Timedelta(days=20)
    return AccountModels(tables=tables, as_of=as_of, models=models)


@pytest.fixture()
def client(account_models: AccountModels) -> Iterator[TestClient]:
    app = create_app(settings(tasks=ACCOUNT_TASKS), models=list(account_models.models.values()))

    async def fixed_now() -> datetime:
        return account_models.as_of.to_pydatetime()

    app.dependency_overrides[get_now] = fixed_now
    with TestClient(app) as c:
        yield c


def _before(frame: pd.DataFrame, column: str, t: pd.Timestamp) -> pd.DataFrame:
    return frame.loc[frame[column].notna() & (frame[column] < t)]


def _owner_deals(known: pd.DataFrame, owners: set[str], t: pd.Timestamp) -> list[dict[str, Any]]:
    """The owners' deals as the CRM knew them at t: ``context.opportunities``."""
    out = []
    for deal in known.loc[known["owner_id"].isin(owners)].to_dict("records"):
        closed = deal["closed_at"]
        done = not pd.isna(closed) and closed < t
        out.append({
            "opportunity_id": deal["opportunity_id"], "account_id": deal["account_id"],
            "owner_id": deal["owner_id"], "created_at": deal["created_at"].isoformat(),
            "product": deal["product"],
            "closed_at": closed.isoformat() if done else None,
            "is_won": bool(deal["is_won"]) if done else None,
        })
    return out


def account_request(tables: CRMTables, account_id: str, t: pd.Timestamp,
                    owner_context: bool = True) -> dict[str, Any]:
    """One account as a CRM sends it: its row, deals with history, activities, signals,
    and (``owner_context``) its owners' deals, each as the CRM knew it at t."""
    account = tables.accounts.loc[tables.accounts["account_id"] == account_id]
    seen = _before(tables.opportunities, "created_at", t)
    opps = seen.loc[seen["account_id"] == account_id]
    history = _before(tables.opportunity_history, "changed_at", t)
    deals = []
    for deal in opps.to_dict("records"):
        closed = deal["closed_at"]
        known = not pd.isna(closed) and closed < t
        own = history.loc[history["opportunity_id"] == deal["opportunity_id"]]
        deals.append({
            "opportunity_id": deal["opportunity_id"], "owner_id": deal["owner_id"],
            "created_at": deal["created_at"].isoformat(), "product": deal["product"],
            "amount": None if pd.isna(deal["amount"]) else float(deal["amount"]),
            "closed_at": closed.isoformat() if known else None,
            "is_won": bool(deal["is_won"]) if known else None,
            "history": [
                {"changed_at": h["changed_at"].isoformat(), "stage": h["stage"],
                 "amount": None if pd.isna(h["amount"]) else float(h["amount"])}
                for h in own.to_dict("records")
            ],
        })
    acts = _before(tables.activities, "occurred_at", t)
    acts = acts.loc[acts["account_id"] == account_id]
    sig = _before(tables.account_signals, "observed_at", t)
    sig = sig.loc[sig["account_id"] == account_id]
    record = rows(account, ACCOUNTS)[0]
    record["deals"] = deals
    record["activities"] = rows(acts, ACTIVITIES, drop=("account_id",))
    record["signals"] = rows(sig, ACCOUNT_SIGNALS, drop=("account_id",))
    body: dict[str, Any] = {"accounts": [record]}
    if owner_context:
        body["context"] = {"opportunities": _owner_deals(seen, set(opps["owner_id"]), t)}
    return body


def _customers(m: AccountModels, due: bool) -> list[str]:
    snaps = pd.DataFrame({"account_id": m.tables.accounts["account_id"].astype("string"),
                          "as_of": m.as_of})
    f = build_features(m.tables, snaps, TASKS["account_renewal"].feature_set)
    keep = f["active_contracts"] > 0
    if due:
        keep &= f["days_to_renewal"] <= 120
    return f.loc[keep, "account_id"].astype(str).tolist()


def test_accounts_happy_path_with_renewal_risk(client: TestClient,
                                               account_models: AccountModels) -> None:
    account_id = _customers(account_models, due=True)[0]
    r = client.post("/v1/accounts/score", headers=auth(),
                    json=account_request(account_models.tables, account_id, account_models.as_of))
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    assert res["account_id"] == account_id and res["warnings"] == []
    renewal, expansion = res["renewal"], res["expansion"]
    assert 0 < renewal["probability"] < 1 and renewal["grade"] in "ABCD"
    assert renewal["days_to_renewal"] <= 120
    assert renewal["risk"]["level"] in ("low", "medium", "high")
    assert renewal["model"]["name"] == "account_renewal"
    assert expansion["model"]["feature_set"] == "account_expansion_v1@1"
    assert renewal["reasons"]["up"] or renewal["reasons"]["down"]
    for part, task in ((renewal, "account_renewal"), (expansion, "account_expansion")):
        grading = account_models.models[task].model.grading
        assert grading is not None and grading.learned
        assert part["grade"] == grading.grade(part["score"])
        assert part["percentile"] == grading.percentile(part["probability"])


def test_account_without_a_renewal_due_gets_expansion_only_and_says_why(
    client: TestClient, account_models: AccountModels
) -> None:
    due = set(_customers(account_models, due=True))
    later = [a for a in _customers(account_models, due=False) if a not in due]
    assert later
    body = account_request(account_models.tables, later[0], account_models.as_of)
    (res,) = client.post("/v1/accounts/score", headers=auth(), json=body).json()["results"]
    assert res["renewal"] is None and res["expansion"] is not None
    assert res["warnings"][0].startswith("no renewal due within 120 days (the next is due in")


def test_prospect_is_not_scored_and_says_so(client: TestClient) -> None:
    body = {"accounts": [{"account_id": "P1", "created_at": "2024-01-01T00:00:00Z"}]}
    (res,) = client.post("/v1/accounts/score", headers=auth(), json=body).json()["results"]
    assert res["renewal"] is None and res["expansion"] is None
    assert "not a customer" in res["warnings"][0]


def test_parity_with_offline_models(client: TestClient, account_models: AccountModels) -> None:
    """Each probability the API gives equals the offline model's on the full CRM, to 1e-9."""
    ids = _customers(account_models, due=True)[:6]
    assert len(ids) >= 3
    snaps = pd.DataFrame({"account_id": pd.array(ids, dtype="string"),
                          "as_of": [account_models.as_of] * len(ids)})
    for task, part in (("account_renewal", "renewal"), ("account_expansion", "expansion")):
        model = account_models.models[task].model
        X = build_features(account_models.tables, snaps, model.feature_set)
        offline = np.asarray(model.predict_proba(X))
        served = []
        for account_id in ids:
            body = account_request(account_models.tables, account_id, account_models.as_of)
            r = client.post("/v1/accounts/score", headers=auth(), json=body)
            assert r.status_code == 200, r.text
            served.append(r.json()["results"][0][part]["probability"])
        np.testing.assert_allclose(served, offline, rtol=0, atol=1e-9)
        assert np.ptp(offline) > 0


def test_renewal_trend_is_null_where_no_renewal_was_due_then(
    client: TestClient, account_models: AccountModels
) -> None:
    """An earlier renewal score counts only where the contract was due within the window
    then (what the model was trained on); expansion, for a customer then, is scored."""
    ids = _customers(account_models, due=True)
    snaps = pd.DataFrame({"account_id": pd.array(ids, dtype="string"),
                          "as_of": [account_models.as_of - pd.Timedelta(days=28)] * len(ids)})
    then = build_features(account_models.tables, snaps, TASKS["account_renewal"].feature_set)
    due_then = dict(zip(ids, (then["days_to_renewal"] <= 120).fillna(False), strict=True))
    assert set(due_then.values()) == {True, False}
    picked = [next(a for a in ids if due_then[a]), next(a for a in ids if not due_then[a])]
    for account_id in picked:
        body = account_request(account_models.tables, account_id, account_models.as_of)
        (res,) = client.post("/v1/accounts/score", headers=auth(), json=body).json()["results"]
        assert (res["renewal"]["trend"]["score_28d_ago"] is None) == (not due_then[account_id])
        assert res["expansion"]["trend"]["score_7d_ago"] is not None


def test_owner_record_left_out_is_not_known_and_said(client: TestClient,
                                                     account_models: AccountModels) -> None:
    account_id = _customers(account_models, due=True)[0]
    body = account_request(account_models.tables, account_id, account_models.as_of,
                           owner_context=False)
    r = client.post("/v1/accounts/score", headers=auth(), json=body)
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    assert any("context.opportunities" in w and "owner" in w for w in res["warnings"])
    said = [x["text"] for part in ("renewal", "expansion") if res[part]
            for side in ("up", "down") for x in res[part]["reasons"][side]]
    assert not any("owner" in text for text in said)


def test_a_withheld_renewal_model_leaves_expansion_served(account_models: AccountModels) -> None:
    from tests.integration.test_api_reload import WithholdingSource

    source = WithholdingSource(
        {"account_expansion": "1"},
        {("account_expansion", "1"): account_models.models["account_expansion"]},
        {"account_renewal": "no customer account model has passed the promotion gate"})
    app = create_app(settings(tasks=ACCOUNT_TASKS, reload_interval_s=0), source=source)
    account_id = _customers(account_models, due=True)[0]
    body = account_request(account_models.tables, account_id, account_models.as_of)

    async def fixed_now() -> datetime:
        return account_models.as_of.to_pydatetime()

    app.dependency_overrides[get_now] = fixed_now
    with TestClient(app) as c:
        r = c.post("/v1/accounts/score", headers=auth(), json=body)
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    assert res["renewal"] is None and res["expansion"]["probability"] > 0
    assert res["warnings"] == [
        "renewal is not scored: no model of it is served (GET /v1/models says why)"]


def test_accounts_route_needs_a_key(client: TestClient) -> None:
    body = {"accounts": [{"account_id": "P1", "created_at": "2024-01-01T00:00:00Z"}]}
    assert client.post("/v1/accounts/score", json=body).status_code == 401
    bad = {"Authorization": f"Bearer {API_KEY}x"}
    assert client.post("/v1/accounts/score", json=body, headers=bad).status_code == 403


@pytest.mark.parametrize(
    ("signal", "field", "reason"),
    [
        ({"signal": "nps", "value": 11}, "accounts.0.signals.0", "outside nps's range 0 to 10"),
        ({"signal": "csat", "value": 2.5}, "accounts.0.signals.0", "whole numbers"),
        ({"signal": "mood", "value": 1}, "accounts.0.signals.0.signal", "Input should be"),
        ({"signal": "logins", "value": "lots"}, "accounts.0.signals.0.value", "valid number"),
    ],
)
def test_bad_signals_are_422_with_the_field_and_reason(
    client: TestClient, signal: dict[str, Any], field: str, reason: str
) -> None:
    body = {"accounts": [{
        "account_id": "P1", "created_at": "2024-01-01T00:00:00Z",
        "signals": [{"signal_id": "S1", "observed_at": "2024-02-01T00:00:00Z", **signal}],
    }]}
    r = client.post("/v1/accounts/score", headers=auth(), json=body)
    assert r.status_code == 422
    items = r.json()["detail"]
    assert any(i["field"] == field and reason in i["reason"] for i in items), items


def test_repeated_account_ids_are_422(client: TestClient) -> None:
    one = {"account_id": "P1", "created_at": "2024-01-01T00:00:00Z"}
    r = client.post("/v1/accounts/score", headers=auth(), json={"accounts": [one, one]})
    assert r.status_code == 422
    assert r.json()["detail"][0]["field"] == "accounts.1.account_id"


def test_no_account_model_is_503(account_models: AccountModels) -> None:
    app = create_app(settings(tasks=ACCOUNT_TASKS),
                     models=[account_models.models["account_renewal"]])
    body = {"accounts": [{"account_id": "P1", "created_at": "2024-01-01T00:00:00Z"}]}
    with TestClient(app) as c:
        r = c.post("/v1/accounts/score", headers=auth(), json=body)
        assert r.status_code == 503
        assert "account_expansion" in r.json()["detail"]
        assert c.get("/readyz").status_code == 503


def test_an_account_whose_newest_event_is_old_says_so(account_models: AccountModels) -> None:
    """The newest of its deals, activities and signals is what counts: scored 45 days
    after it, the account's warnings say the score reads those days as silence."""
    account_id = _customers(account_models, due=True)[0]
    body = account_request(account_models.tables, account_id, account_models.as_of)
    (record,) = body["accounts"]
    times = [record["created_at"]] + [a["occurred_at"] for a in record["activities"]]
    times += [s["observed_at"] for s in record["signals"]]
    for deal in record["deals"]:
        times += [deal["created_at"], deal["closed_at"]] + [h["changed_at"]
                                                           for h in deal["history"]]
    newest = max(pd.Timestamp(t) for t in times if t is not None)
    app = create_app(settings(tasks=ACCOUNT_TASKS), models=list(account_models.models.values()))

    async def later() -> datetime:
        return (newest + pd.Timedelta(days=45, hours=2)).to_pydatetime()

    app.dependency_overrides[get_now] = later
    with TestClient(app) as c:
        r = c.post("/v1/accounts/score", headers=auth(), json=body)
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    assert res["warnings"][-1].startswith(
        f"the newest event sent is 45 days old ({newest:%Y-%m-%d}): ")
