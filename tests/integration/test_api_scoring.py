"""The scoring API end to end: happy paths, parity with the offline model, auth, metrics."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from fastapi.testclient import TestClient

from features.sets import DEAL_V1, LEAD_V1
from serving.app import create_app
from serving.requests import deal_gaps, deal_tables
from serving.schemas import DealBatch
from serving.scoring import score_tables
from tests.integration.test_api_fixtures import (
    API_KEY,
    AS_OF,
    OTHER_KEY,
    Trained,
    app_at,
    auth,
    deal_request,
    lead_request,
    offline_features,
    open_deals,
    open_leads,
    settings,
    trained,  # noqa: F401  (session fixture)
)


@pytest.fixture()
def client(trained: Trained) -> Iterator[TestClient]:  # noqa: F811
    with TestClient(app_at([trained.lead, trained.deal])) as c:
        yield c


def _offline(trained: Trained, task: str, ids: list[str]) -> np.ndarray:  # noqa: F811
    loaded = trained.lead if task == "lead_qualification" else trained.deal
    X = offline_features(trained.tables, task, ids, AS_OF)
    return np.asarray(loaded.model.predict_proba(X))


def test_lead_score_happy_path(client: TestClient, trained: Trained) -> None:  # noqa: F811
    lead_id = open_leads(trained.tables, AS_OF)[0]
    r = client.post("/v1/leads/score", json=lead_request(trained.tables, lead_id, AS_OF),
                    headers=auth())
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    assert res["lead_id"] == lead_id
    assert 0.0 <= res["probability"] <= 1.0
    assert res["score"] == int(np.floor(res["probability"] * 100 + 0.5))
    assert res["grade"] in "ABCD"
    assert res["model"] == {"name": "lead_qualification", "version": "1",
                            "feature_set": "lead_v1@1"}
    up, down = res["reasons"]["up"], res["reasons"]["down"]
    assert 0 < len(up) + len(down) <= 6 and len(up) <= 3 and len(down) <= 3
    assert all(r["contribution"] > 0 for r in up) and all(r["contribution"] < 0 for r in down)
    assert [r["contribution"] for r in up] == sorted((r["contribution"] for r in up),
                                                     reverse=True)
    for reason in up + down:
        assert set(reason["features"]) <= set(LEAD_V1.names)
        assert isinstance(reason["actionable"], bool)
        assert reason["text"] and "{" not in reason["text"] and "nan" not in reason["text"]
        assert "not known" not in reason["text"]
    assert res["warnings"] == [w for w in res["warnings"]
                               if w.startswith(("not known: ", "the newest event sent is "))]
    assert r.headers["x-request-id"]


def test_deal_score_happy_path_with_risk(client: TestClient, trained: Trained) -> None:  # noqa: F811
    deal_id = open_deals(trained.tables, AS_OF)[0]
    body = deal_request(trained.tables, deal_id, AS_OF)
    r = client.post("/v1/deals/score", json=body, headers={"X-API-Key": API_KEY})
    assert r.status_code == 200, r.text
    (res,) = r.json()["results"]
    assert res["opportunity_id"] == deal_id
    assert res["stage"] in ("prospecting", "qualification", "meeting_demo", "proposal",
                            "negotiation")
    assert res["risk"]["level"] in ("low", "medium", "high")
    for flag in res["risk"]["flags"]:
        assert flag["reason"] and flag["evidence"]
    amount = body["deals"][0]["amount"]
    assert amount is not None
    assert res["expected_value"] == pytest.approx(amount * res["probability"], abs=0.006)


def test_parity_with_offline_model(client: TestClient, trained: Trained) -> None:  # noqa: F811
    """The API's probability equals the offline model's on the same snapshot, to 1e-9."""
    for task, ids, make, route in (
        ("lead_qualification", open_leads(trained.tables, AS_OF)[:8], lead_request,
         "/v1/leads/score"),
        ("deal_close", open_deals(trained.tables, AS_OF)[:8], deal_request, "/v1/deals/score"),
    ):
        assert len(ids) >= 5
        offline = _offline(trained, task, ids)
        served = []
        for entity_id in ids:
            r = client.post(route, json=make(trained.tables, entity_id, AS_OF), headers=auth())
            assert r.status_code == 200, r.text
            served.append(r.json()["results"][0]["probability"])
        np.testing.assert_allclose(served, offline, rtol=0, atol=1e-9)
        assert np.ptp(offline) > 0  # the entities differ, so parity is not vacuous


def test_batch_keeps_request_order(client: TestClient, trained: Trained) -> None:  # noqa: F811
    ids = open_leads(trained.tables, AS_OF)[:12]
    leads = [lead_request(trained.tables, i, AS_OF)["leads"][0] for i in ids]
    shuffled = leads[::-1]
    r = client.post("/v1/leads/score", json={"leads": shuffled}, headers=auth())
    assert r.status_code == 200, r.text
    assert [x["lead_id"] for x in r.json()["results"]] == [x["lead_id"] for x in shuffled]


def test_explain_false_skips_reasons(client: TestClient, trained: Trained) -> None:  # noqa: F811
    lead_id = open_leads(trained.tables, AS_OF)[1]
    body = lead_request(trained.tables, lead_id, AS_OF)
    with_reasons = client.post("/v1/leads/score", json=body, headers=auth()).json()
    without = client.post("/v1/leads/score?explain=false", json=body, headers=auth()).json()
    assert without["results"][0]["reasons"] == {"up": [], "down": []}
    assert without["results"][0]["probability"] == with_reasons["results"][0]["probability"]


def test_models_health_ready_metrics_docs(client: TestClient, trained: Trained) -> None:  # noqa: F811
    models = client.get("/v1/models", headers=auth()).json()["models"]
    assert {m["task"] for m in models} == {"lead_qualification", "deal_close"}
    lead = next(m for m in models if m["task"] == "lead_qualification")
    assert lead["version"] == "1" and lead["alias"] == "champion"
    assert lead["feature_set"] == "lead_v1@1"
    assert lead["test_metrics"] == {"test_roc_auc": 0.8}
    assert set(lead["trained_period"]) == {"trained_from", "trained_to"}
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True
    client.post("/v1/leads/score",
                json=lead_request(trained.tables, open_leads(trained.tables, AS_OF)[0], AS_OF),
                headers=auth())
    text = client.get("/metrics").text
    assert 'leadscore_http_requests_total{method="POST",route="/v1/leads/score",status="200"}' \
        in text
    assert "leadscore_http_request_duration_seconds_bucket" in text
    assert 'leadscore_score_count{task="lead_qualification"} 1.0' in text
    assert 'leadscore_model_info{name="deal_close",task="deal_close",version="1"} 1.0' in text
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/leads/score", "/v1/deals/score", "/v1/models", "/healthz", "/readyz",
            "/metrics"} <= set(spec["paths"])


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, 401),
        ({"X-API-Key": ""}, 401),
        ({"Authorization": "Bearer wrong-key"}, 403),
        ({"X-API-Key": "wrong-key"}, 403),
        ({"X-API-Key": API_KEY[:-1]}, 403),
        ({"Authorization": f"Bearer {API_KEY}"}, 200),
        ({"authorization": f"bearer {API_KEY}"}, 200),
        ({"X-API-Key": API_KEY}, 200),
        ({"X-API-Key": OTHER_KEY}, 200),
        ({"Authorization": "Bearer wrong-key", "X-API-Key": API_KEY}, 403),
    ],
)
def test_auth(client: TestClient, headers: dict[str, str], status: int) -> None:
    r = client.get("/v1/models", headers=headers)
    assert r.status_code == status, r.text
    if status != 200:
        body = r.json()
        assert body["error"] in ("unauthorized", "forbidden") and body["detail"]
    if status == 401:
        assert r.headers["www-authenticate"] == "Bearer"


def test_auth_guards_every_v1_route_and_health_is_open(client: TestClient) -> None:
    assert client.post("/v1/leads/score", json={"leads": []}).status_code == 401
    assert client.post("/v1/deals/score", json={"deals": []},
                       headers={"X-API-Key": "nope"}).status_code == 403
    for path in ("/healthz", "/readyz", "/metrics"):
        assert client.get(path).status_code == 200


def test_refuses_to_start_without_keys() -> None:
    with pytest.raises(ValueError, match="no API keys"):
        settings(api_key_hashes="")


def test_insecure_dev_flag_opens_v1(trained: Trained) -> None:  # noqa: F811
    app = create_app(settings(api_key_hashes="", insecure_no_auth=True),
                     models=[trained.lead, trained.deal])
    with TestClient(app) as c:
        assert c.get("/v1/models").status_code == 200


def test_no_model_is_503_and_not_ready(trained: Trained) -> None:  # noqa: F811
    app = create_app(settings(), models=[trained.lead])
    with TestClient(app) as c:
        ready = c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["tasks"]["deal_close"]["loaded"] is False
        body = deal_request(trained.tables, open_deals(trained.tables, AS_OF)[0], AS_OF)
        r = c.post("/v1/deals/score", json=body, headers=auth())
        assert r.status_code == 503 and r.json()["error"] == "model_unavailable"


def test_deal_without_context_says_what_it_read_as_unknown(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    """Left out, the account and owner features are not known, not zero: no reason quotes
    them, each is named in the warnings with where to send it, and the probability is the
    one LightGBM gives the zeros they read as before (it maps NaN to 0 in a feature that
    had none in training)."""
    deal_id = open_deals(trained.tables, AS_OF)[0]
    body = deal_request(trained.tables, deal_id, AS_OF)
    deal = body["deals"][0]
    full = client.post("/v1/deals/score", json=body, headers=auth()).json()["results"][0]
    bare = {k: v for k, v in body.items() if k != "context"}
    r = client.post("/v1/deals/score", json=bare, headers=auth())
    assert r.status_code == 200, r.text
    alone = r.json()["results"][0]
    account, owner = deal["account_id"], deal["owner_id"]
    assert alone["warnings"][:2] == [
        f"not known without account {account} in context.accounts: industry, country, "
        "company size, contacts across the account, activity across the account, the "
        "account's deal history",
        f"not known without the deals of owner {owner} in context.opportunities: the "
        "owner's win rate",
    ]
    context_features = {"industry", "country", "employees", "account_activities_30d",
                        "account_contacts_engaged", "account_won_deals", "account_lost_deals",
                        "account_open_deals", "owner_win_rate", "owner_closed_deals"}
    for reason in alone["reasons"]["up"] + alone["reasons"]["down"]:
        # Only as not known, in a topic that stays known without it (contacts).
        assert all(reason["features"][f] is None
                   for f in context_features & set(reason["features"])), reason
        assert "account" not in reason["text"] and "owner" not in reason["text"]
    # With the context training had, nothing is missing to warn about.
    assert not any("context" in w for w in full["warnings"])
    # An empty list of other deals says there are none: the owner's record is known.
    empty = {**body, "context": {**body["context"], "opportunities": []}}
    known = client.post("/v1/deals/score", json=empty, headers=auth()).json()["results"][0]
    assert not any("owner" in w for w in known["warnings"])


def test_context_left_out_keeps_the_probability_of_the_zeros(trained: Trained) -> None:  # noqa: F811
    """Reading left-out context as not known changes no number: a bare request scored with
    its gaps (features NaN) gives the probability of the same request without them (the
    zeros the tables without context give), while its values say not known."""
    deals = open_deals(trained.tables, AS_OF)[:6]
    bodies = [deal_request(trained.tables, d, AS_OF) for d in deals]
    batch = DealBatch.model_validate({"deals": [b["deals"][0] for b in bodies]})
    ids = [d.opportunity_id for d in batch.deals]
    gaps = deal_gaps(batch)
    assert all({"account", "account_deals", "owner_deals"} <= set(g.context) for g in gaps)
    tables = deal_tables(batch)
    masked = score_tables(trained.deal, tables, ids, AS_OF, True, gaps)
    zeros = score_tables(trained.deal, tables, ids, AS_OF, True)
    np.testing.assert_array_equal(masked.probabilities, zeros.probabilities)
    assert (zeros.columns["account_activities_30d"] == 0).all()
    assert np.isnan(masked.columns["account_activities_30d"]).all()
    owner = masked.values()[:, DEAL_V1.names.index("owner_closed_deals")]
    assert all(v != v for v in owner)  # NaN: not known


def test_category_values_training_never_saw_are_named_with_their_field(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    body = lead_request(trained.tables, open_leads(trained.tables, AS_OF)[0], AS_OF)
    body["leads"][0].update(source="linkedin_ads", seniority="chief")
    r = client.post("/v1/leads/score", json=body, headers=auth())
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert res["warnings"][:2] == [
        "source 'linkedin_ads' is not a value the model was trained on: read as not known",
        "seniority 'chief' is not a value the model was trained on: read as not known",
    ]
    assert not any("lead source" in w or "seniority" in w for w in res["warnings"][2:])
    topics = {x["topic"] for x in res["reasons"]["up"] + res["reasons"]["down"]}
    assert not {"source", "seniority"} & topics


def test_leads_sent_with_their_field_history_score_as_offline(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    """A lead's BANT and firmographics are read as of now from the changes it sends; a
    lead whose answers came after a snapshot scores there as it did then."""
    changes = trained.tables.lead_field_history
    changed = set(changes.loc[changes["changed_at"] < AS_OF, "lead_id"])
    later = set(changes.loc[changes["changed_at"] >= AS_OF, "lead_id"])
    open_ids = open_leads(trained.tables, AS_OF)
    ids = [i for i in open_ids if i in changed][:4] + [i for i in open_ids if i in later][:4]
    assert len(ids) >= 4
    served = []
    for lead_id in ids:
        body = lead_request(trained.tables, lead_id, AS_OF)
        r = client.post("/v1/leads/score", json=body, headers=auth())
        assert r.status_code == 200, r.text
        served.append(r.json()["results"][0]["probability"])
    np.testing.assert_allclose(served, _offline(trained, "lead_qualification", ids), rtol=0,
                               atol=1e-9)


def test_a_field_change_not_of_its_fields_type_is_a_422(
    client: TestClient, trained: Trained  # noqa: F811
) -> None:
    lead_id = open_leads(trained.tables, AS_OF)[0]
    body = lead_request(trained.tables, lead_id, AS_OF)
    body["leads"][0]["field_history"] = [{"changed_at": "2024-09-01T00:00:00Z",
                                          "field": "budget_confirmed", "new_value": "maybe"}]
    r = client.post("/v1/leads/score", json=body, headers=auth())
    assert r.status_code == 422
    assert "budget_confirmed: expected a yes/no answer, got 'maybe'" in r.text
