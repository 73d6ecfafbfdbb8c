"""Hot reload: a new champion swaps in under load without losing a request; a broken one
never replaces the model being served; the registry path works end to end."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import numpy as np
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from features.declarations import FeatureSet, FeatureSpec
from serving.app import create_app
from serving.models import LoadedModel, RegistrySource
from tests.integration.test_api_fixtures import (
    AS_OF,
    Trained,
    auth,
    lead_request,
    offline_features,
    open_leads,
    settings,
    train_models,
    trained,  # noqa: F401  (session fixture)
)


class FakeSource:
    """A registry stand-in: the version the alias points at, and what loading it gives."""

    def __init__(self, versions: dict[str, str], models: dict[tuple[str, str], Any]) -> None:
        self.versions = dict(versions)
        self.models = models
        self.loads: list[tuple[str, str | None]] = []

    def current_version(self, task: str) -> str | None:
        return self.versions.get(task)

    def load(self, task: str, version: str | None = None) -> LoadedModel:
        version = version or self.versions[task]
        self.loads.append((task, version))
        found = self.models[(task, version)]
        if isinstance(found, Exception):
            raise found
        loaded: LoadedModel = found
        return loaded


@pytest.fixture(scope="module")
def second(trained: Trained) -> Trained:  # noqa: F811
    """Version 2: more trees and another seed, so its scores differ from version 1's."""
    return train_models(seed=11, rounds=60, version="2")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def live() -> Iterator[Any]:
    """Run an app under a real uvicorn on 127.0.0.1 in a thread; yields a starter."""
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: FastAPI) -> str:
        port = _free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None,
                                access_log=False)
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert time.monotonic() < deadline, "server did not start"
            time.sleep(0.02)
        servers.append((server, thread))
        return f"http://127.0.0.1:{port}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


def _probability(loaded: LoadedModel, trained: Trained, lead_id: str) -> float:  # noqa: F811
    X = offline_features(trained.tables, "lead_qualification", [lead_id], AS_OF)
    return float(loaded.model.predict_proba(X)[0])


def test_hot_swap_under_concurrent_requests_loses_none(
    trained: Trained, second: Trained, live: Any  # noqa: F811
) -> None:
    source = FakeSource(
        {"lead_qualification": "1", "deal_close": "1"},
        {
            ("lead_qualification", "1"): trained.lead,
            ("deal_close", "1"): trained.deal,
            ("lead_qualification", "2"): second.lead,
        },
    )
    app = create_app(settings(reload_interval_s=0.05), source=source)
    from serving.deps import get_now

    async def fixed_now() -> Any:
        return AS_OF.to_pydatetime()

    app.dependency_overrides[get_now] = fixed_now
    base = live(app)
    lead_id = open_leads(trained.tables, AS_OF)[0]
    body = lead_request(trained.tables, lead_id, AS_OF)
    expected = {"1": _probability(trained.lead, trained, lead_id),
                "2": _probability(second.lead, trained, lead_id)}
    assert abs(expected["1"] - expected["2"]) > 1e-6

    results: list[list[tuple[int, str, float]]] = [[] for _ in range(4)]
    stop = threading.Event()

    def hammer(slot: int) -> None:
        with httpx.Client(base_url=base, headers=auth(), timeout=30) as http:
            while not stop.is_set():
                r = http.post("/v1/leads/score", json=body)
                res = r.json()["results"][0] if r.status_code == 200 else {}
                results[slot].append(
                    (r.status_code, res.get("model", {}).get("version", ""),
                     res.get("probability", float("nan")))
                )

    threads = [threading.Thread(target=hammer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    # Swap only once every client has been answered a few times by the old version: on a
    # loaded machine a fixed sleep could swap before some client got any answer.
    deadline = time.monotonic() + 30
    while not all(len(r) >= 5 for r in results):
        assert time.monotonic() < deadline, "clients were not answered before the swap"
        time.sleep(0.02)
    source.versions["lead_qualification"] = "2"
    deadline = time.monotonic() + 20
    while not all(any(v == "2" for _, v, _ in r[-3:]) for r in results):
        assert time.monotonic() < deadline, "the new version was never served"
        time.sleep(0.05)
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(timeout=30)

    flat = [x for r in results for x in r]
    assert len(flat) > 20
    assert all(status == 200 for status, _, _ in flat), {s for s, _, _ in flat}
    for per_thread in results:
        versions = [v for _, v, _ in per_thread]
        first_new = versions.index("2")
        assert set(versions[:first_new]) == {"1"} and set(versions[first_new:]) == {"2"}
    for _, version, p in flat:  # each answer came whole from the version it names
        assert p == pytest.approx(expected[version], abs=1e-9)
    with httpx.Client(base_url=base, headers=auth()) as http:
        assert http.get("/readyz").json()["tasks"]["lead_qualification"]["version"] == "2"


def _broken_feature_set(model: LoadedModel) -> LoadedModel:
    fs: FeatureSet = model.model.feature_set
    extra = FeatureSpec("mystery_signal", "lead", "float", "{value} mystery")
    wrong = FeatureSet(fs.name, fs.version, fs.task, fs.entity_key, (*fs.features, extra))

    class Wrapped:
        task = model.model.task
        feature_set = wrong
        metadata: dict[str, Any] = {}

        def predict_proba(self, X: Any) -> np.ndarray:
            return np.asarray(model.model.predict_proba(X))

        def contributions(self, X: Any) -> Any:
            return model.model.contributions(X)

    return replace(model, model=Wrapped(), version="4")


@pytest.mark.parametrize("failure", ["corrupt", "missing_feature"])
def test_broken_new_version_keeps_the_old_one_serving(
    trained: Trained, failure: str  # noqa: F811
) -> None:
    bad: Any = (
        OSError("model.json: unexpected end of data")
        if failure == "corrupt"
        else _broken_feature_set(trained.lead)
    )
    source = FakeSource(
        {"lead_qualification": "1", "deal_close": "1"},
        {
            ("lead_qualification", "1"): trained.lead,
            ("deal_close", "1"): trained.deal,
            ("lead_qualification", "4"): bad,
        },
    )
    app = create_app(settings(reload_interval_s=0), source=source)
    lead_id = open_leads(trained.tables, AS_OF)[0]
    body = lead_request(trained.tables, lead_id, AS_OF)
    with TestClient(app) as client:
        assert client.get("/readyz").status_code == 200
        source.versions["lead_qualification"] = "4"
        reloader = app.state.reloader
        assert reloader is None  # polling off: drive one poll by hand
        from serving.app import check_model
        from serving.models import Reloader

        poll = Reloader(app.state.store, source, check_model, interval_s=1.0)
        assert poll.poll_once() == []
        assert poll.poll_once() == []  # a failed version is not retried every poll
        assert source.loads.count(("lead_qualification", "4")) == 1
        ready = client.get("/readyz")
        assert ready.status_code == 200
        state = ready.json()["tasks"]["lead_qualification"]
        assert state["version"] == "1" and state["failed_version"] == "4"
        assert state["last_error"]
        r = client.post("/v1/leads/score", json=body, headers=auth())
        assert r.status_code == 200
        assert r.json()["results"][0]["model"]["version"] == "1"
        assert 'leadscore_model_load_failures_total{task="lead_qualification"} 1.0' in \
            client.get("/metrics").text


def test_failed_first_load_is_not_ready_then_recovers(trained: Trained) -> None:  # noqa: F811
    source = FakeSource(
        {"lead_qualification": "1"},
        {("lead_qualification", "1"): OSError("artifact store unreachable")},
    )
    app = create_app(settings(reload_interval_s=0), source=source)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 503
        task = ready.json()["tasks"]["lead_qualification"]
        # A short reason; the exception's text is for the log only.
        assert task["last_error"] == "the model failed to load or to score its probe"
        assert "artifact store" not in ready.text
        source.models[("lead_qualification", "2")] = trained.lead
        source.models[("deal_close", "1")] = trained.deal
        source.versions.update({"lead_qualification": "2", "deal_close": "1"})
        from serving.app import check_model
        from serving.models import Reloader

        changed = Reloader(app.state.store, source, check_model, 1.0).poll_once()
        assert sorted(changed) == ["deal_close", "lead_qualification"]
        assert client.get("/readyz").status_code == 200


def test_registry_champion_loads_and_reloads(trained: Trained, second: Trained,  # noqa: F811
                                             tmp_path: Any) -> None:
    """Through MLflow itself: log two versions, serve the champion, move the alias."""
    import mlflow

    from training.registry import log_scoring_model, set_alias, tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    example = offline_features(
        trained.tables, "lead_qualification", open_leads(trained.tables, AS_OF)[:5], AS_OF
    )
    versions = []
    with tracking(uri):
        from training.registry import ensure_experiment

        exp = ensure_experiment("serving-test", uri)
        for loaded in (trained.lead, second.lead):
            with mlflow.start_run(experiment_id=exp):
                versions.append(log_scoring_model(loaded.model, example, "lead_qualification"))
    assert versions == ["1", "2"]
    set_alias("lead_qualification", "1", "champion", uri)
    source = RegistrySource(alias="champion", tracking_uri=uri)
    assert source.current_version("lead_qualification") == "1"
    assert source.current_version("deal_close") is None
    app = create_app(settings(reload_interval_s=0, tracking_uri=uri), source=source)
    with TestClient(app) as client:
        models = client.get("/v1/models", headers=auth()).json()["models"]
        assert [(m["task"], m["version"], m["alias"]) for m in models] == [
            ("lead_qualification", "1", "champion")
        ]
        assert client.get("/readyz").status_code == 503  # no deal model registered
        set_alias("lead_qualification", "2", "champion", uri)
        from serving.app import check_model
        from serving.models import Reloader

        assert Reloader(app.state.store, source, check_model, 1.0).poll_once() == [
            "lead_qualification"
        ]
        models = client.get("/v1/models", headers=auth()).json()["models"]
        assert models[0]["version"] == "2"
    pinned = create_app(settings(reload_interval_s=0, tracking_uri=uri,
                                 lead_model_uri="models:/lead_qualification/1"))
    with TestClient(pinned) as client:
        (model,) = client.get("/v1/models", headers=auth()).json()["models"]
        assert (model["version"], model["alias"]) == ("1", None)


def test_truncated_artifact_of_a_new_champion_keeps_the_old_one(
    trained: Trained, second: Trained, tmp_path: Any  # noqa: F811
) -> None:
    """A real corrupt version: its booster file cut in half inside the registry's store."""
    import mlflow

    from serving.app import check_model
    from serving.models import Reloader
    from training.registry import ensure_experiment, log_scoring_model, set_alias, tracking

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    example = offline_features(
        trained.tables, "lead_qualification", open_leads(trained.tables, AS_OF)[:5], AS_OF
    )
    with tracking(uri):
        exp = ensure_experiment("serving-corrupt", uri)
        for loaded in (trained.lead, second.lead):
            with mlflow.start_run(experiment_id=exp):
                log_scoring_model(loaded.model, example, "lead_qualification")
    set_alias("lead_qualification", "1", "champion", uri)
    # The second logged model's booster is the newest booster file in the store.
    boosters = sorted(tmp_path.rglob("booster_*.txt"), key=lambda p: p.stat().st_mtime_ns)
    assert len(boosters) >= 2
    newest = boosters[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])

    source = RegistrySource(alias="champion", tracking_uri=uri)
    app = create_app(settings(reload_interval_s=0, tracking_uri=uri), source=source)
    with TestClient(app) as client:
        set_alias("lead_qualification", "2", "champion", uri)
        assert Reloader(app.state.store, source, check_model, 1.0).poll_once() == []
        (model,) = client.get("/v1/models", headers=auth()).json()["models"]
        assert model["version"] == "1"
        lead = client.get("/readyz").json()["tasks"]["lead_qualification"]
        assert lead["version"] == "1" and lead["failed_version"] == "2" and lead["last_error"]
        body = lead_request(trained.tables, open_leads(trained.tables, AS_OF)[0], AS_OF)
        r = client.post("/v1/leads/score", json=body, headers=auth())
        assert r.status_code == 200 and r.json()["results"][0]["model"]["version"] == "1"


class WithholdingSource(FakeSource):
    """A registry stand-in whose gate withheld some tasks, with the reason it recorded."""

    def __init__(self, versions: dict[str, str], models: dict[tuple[str, str], Any],
                 withheld: dict[str, str]) -> None:
        super().__init__(versions, models)
        self.reasons = dict(withheld)

    def withheld(self, task: str) -> str | None:
        return self.reasons.get(task)


def test_a_task_the_gate_withheld_says_why_and_does_not_block_readiness(
    trained: Trained,  # noqa: F811
) -> None:
    why = ("no deal model has passed the promotion gate, so none is served: version 1 lost "
           "to the stage win rate: log loss not better (log loss 0.6090 vs 0.5930, ...)")
    source = WithholdingSource(
        {"lead_qualification": "1"}, {("lead_qualification", "1"): trained.lead},
        {"deal_close": why},
    )
    app = create_app(settings(reload_interval_s=0), source=source)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.json()
        deal = ready.json()["tasks"]["deal_close"]
        assert deal["loaded"] is False and deal["withheld"] == why
        models = client.get("/v1/models", headers=auth()).json()
        assert [m["task"] for m in models["models"]] == ["lead_qualification"]
        assert models["withheld"] == [{"task": "deal_close", "reason": why}]
        answer = client.post("/v1/deals/score", headers=auth(), json={"deals": []})
        if answer.status_code != 422:  # an empty batch may be refused before the model
            assert answer.status_code == 503
            assert answer.json()["error"] == "model_withheld" and why in answer.json()["detail"]

        # A version passes the gate later: the poller serves it and the task is no longer
        # withheld.
        source.models[("deal_close", "2")] = trained.deal
        source.versions["deal_close"] = "2"
        source.reasons.pop("deal_close")
        from serving.app import check_model
        from serving.models import Reloader

        assert Reloader(app.state.store, source, check_model, 1.0).poll_once() == ["deal_close"]
        assert client.get("/readyz").json()["tasks"]["deal_close"]["withheld"] is None
        assert client.get("/v1/models", headers=auth()).json()["withheld"] == []


def test_registry_source_reads_the_withheld_reason(tmp_path: Any) -> None:
    from modeling.registry import _client
    from training.registry import clear_withheld, withhold

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _client(uri).create_registered_model("deal_close")
    source = RegistrySource(alias="champion", tracking_uri=uri)
    assert source.withheld("deal_close") is None
    withhold("deal_close", "lost to the stage win rate", uri)
    assert source.withheld("deal_close") == "lost to the stage win rate"
    assert RegistrySource(tracking_uri=uri, pinned="1").withheld("deal_close") is None
    clear_withheld("deal_close", uri)
    assert source.withheld("deal_close") is None
