"""Registry faults survived: a registry that does not answer never keeps the port closed,
every failed poll is logged and counted while the loaded models serve, a champion that
fails to load gives way to the newest version that loads, and nothing internal reaches an
answer."""

from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from modeling.registry import (
    RegistryError,
    redact,
    require_store,
    resolve_alias,
    withheld_reason,
)
from serving.app import check_model, create_app
from serving.models import LoadedModel, Reloader
from serving.settings import get_serving_settings
from tests.integration.test_api_fixtures import (
    API_KEY,
    Trained,
    settings,
    trained,  # noqa: F401  (session fixture)
)


class Registry:
    """A registry stand-in whose answers, failures and delay the test sets."""

    def __init__(self, models: dict[tuple[str, str], Any], versions: dict[str, str]) -> None:
        self.models = models
        self.versions = versions
        self.down = False
        self.hang = threading.Event()
        self.hang.set()

    def current_version(self, task: str) -> str | None:
        self.hang.wait()
        if self.down:
            raise RegistryError("MlflowException: API request to "
                                "http://user:s3cret@registry.internal:5000 failed")
        return self.versions.get(task)

    def fallback_versions(self, task: str) -> list[str]:
        return sorted({v for t, v in self.models if t == task}, key=int, reverse=True)

    def load(self, task: str, version: str | None = None) -> LoadedModel:
        found = self.models[(task, version or self.versions[task])]
        if isinstance(found, Exception):
            raise found
        loaded: LoadedModel = found
        return loaded


def test_a_registry_that_does_not_answer_keeps_neither_the_port_nor_startup_waiting(
        trained: Trained) -> None:  # noqa: F811
    source = Registry({("lead_qualification", "1"): trained.lead,
                       ("deal_close", "1"): trained.deal},
                      {"lead_qualification": "1", "deal_close": "1"})
    source.hang.clear()  # every registry call blocks until released
    app = create_app(settings(startup_wait_s=0.2), source=source)
    started = time.monotonic()
    with TestClient(app) as client:
        assert time.monotonic() - started < 30  # not the registry's timeout
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json()["loading"] is True
        source.hang.set()
        for _ in range(200):
            if client.get("/readyz").status_code == 200:
                break
            time.sleep(0.05)
        body = client.get("/readyz").json()
        assert body["ready"] and body["loading"] is False


def test_failed_polls_are_counted_and_said_while_the_models_serve(
        trained: Trained, caplog: pytest.LogCaptureFixture) -> None:  # noqa: F811
    source = Registry({("lead_qualification", "1"): trained.lead,
                       ("deal_close", "1"): trained.deal},
                      {"lead_qualification": "1", "deal_close": "1"})
    app = create_app(settings(registry_warn_polls=2), source=source)
    with TestClient(app) as client:
        reloader = Reloader(app.state.store, source, check_model, 1.0)
        reloader.on_registry_failure = (
            lambda task: app.state.metrics.registry_failures.labels(task).inc())
        source.down = True
        reloader.poll_once()
        first = client.get("/readyz").json()
        assert first["ready"] and first["registry"]["reachable"] is True
        assert first["registry"]["failed_polls"] == 1
        reloader.poll_once()
        second = client.get("/readyz")
        assert second.status_code == 200  # the loaded models go on serving
        registry = second.json()["registry"]
        assert registry["reachable"] is False and registry["failed_polls"] == 2
        assert registry["unreachable_since"] is not None
        assert "s3cret" not in second.text and "registry.internal" not in second.text
        metrics = client.get("/metrics").text
        assert 'leadscore_registry_poll_failures_total{task="lead_qualification"} 2.0' in metrics
        logged = " ".join(r.getMessage() + str(getattr(r, "error", "")) for r in caplog.records)
        assert "registry poll failed" in logged
        assert "s3cret" not in logged and "http://***@registry.internal" in logged
        source.down = False
        reloader.poll_once()
        assert client.get("/readyz").json()["registry"]["failed_polls"] == 0


def test_a_champion_that_fails_to_load_gives_way_to_the_newest_that_loads(
        trained: Trained) -> None:  # noqa: F811
    source = Registry({("lead_qualification", "3"): ValueError("booster file is damaged"),
                       ("lead_qualification", "2"): replace(trained.lead, version="2"),
                       ("lead_qualification", "1"): trained.lead,
                       ("deal_close", "1"): trained.deal},
                      {"lead_qualification": "3", "deal_close": "1"})
    app = create_app(settings(), source=source)
    with TestClient(app) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        lead = ready.json()["tasks"]["lead_qualification"]
        assert lead["loaded"] and lead["fallback_from"] == "3"
        assert lead["failed_version"] == "3"
        assert lead["last_error"] == "the model failed to load or to score its probe"
        assert "damaged" not in ready.text
        r = client.get("/v1/models", headers={"Authorization": f"Bearer {API_KEY}"})
        versions = {m["task"]: m["version"] for m in r.json()["models"]}
        assert versions["lead_qualification"] == "2"  # the newest that loads, not v1


def test_insecure_mode_binds_only_to_loopback() -> None:
    with pytest.raises(ValueError, match="binds only to a loopback host"):
        get_serving_settings(api_key_hashes="", insecure_no_auth=True, host="0.0.0.0")
    for host in ("127.0.0.1", "::1", "localhost"):
        assert get_serving_settings(api_key_hashes="", insecure_no_auth=True, host=host)


def test_a_missing_sqlite_store_is_an_error_not_a_new_store(tmp_path: Path) -> None:
    typo = tmp_path / "modles" / "mlflow.db"
    with pytest.raises(FileNotFoundError, match="no MLflow store at"):
        require_store(f"sqlite:///{typo}")
    assert not typo.parent.exists()


def test_a_broken_store_is_a_registry_error_not_no_model(tmp_path: Path) -> None:
    broken = tmp_path / "mlflow.db"
    broken.write_bytes(b"this is not a database" * 100)
    uri = f"sqlite:///{broken}"
    with pytest.raises(RegistryError):
        resolve_alias("lead_qualification", tracking_uri=uri)
    with pytest.raises(RegistryError):
        withheld_reason("lead_qualification", tracking_uri=uri)


def test_credentials_in_uris_are_redacted() -> None:
    text = "failed: https://alice:pa55@mlflow.example.com/api and postgresql://u:p@db/x"
    assert redact(text) == "failed: https://***@mlflow.example.com/api and postgresql://***@db/x"
