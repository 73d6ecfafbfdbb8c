"""Where the registry lives: the embedded default, the environment override, and no leaks."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeling.registry import DEFAULT_TRACKING_URI, artifact_root, resolve_tracking_uri
from training.registry import tracking


def test_default_is_the_embedded_sqlite_store_under_models(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    assert DEFAULT_TRACKING_URI == "sqlite:///models/mlflow.db"
    uri = resolve_tracking_uri()
    assert uri == f"sqlite:///{tmp_path.resolve() / 'models' / 'mlflow.db'}"
    assert artifact_root(uri) == (tmp_path.resolve() / "models" / "artifacts").as_uri()


def test_environment_and_argument_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert resolve_tracking_uri() == "http://127.0.0.1:5000"
    assert artifact_root("http://127.0.0.1:5000") is None
    assert resolve_tracking_uri("sqlite:////x/y.db") == "sqlite:////x/y.db"


def test_tracking_block_leaves_the_environment_as_it_found_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import mlflow

    outer = f"sqlite:///{tmp_path / 'outer.db'}"
    inner = f"sqlite:///{tmp_path / 'inner' / 'inner.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", outer)
    monkeypatch.delenv("MLFLOW_REGISTRY_URI", raising=False)
    with tracking(inner) as uri:
        assert uri == inner and mlflow.get_tracking_uri() == inner
    # MLflow's setters write the environment; the block must undo that.
    import os

    assert os.environ["MLFLOW_TRACKING_URI"] == outer
    assert "MLFLOW_REGISTRY_URI" not in os.environ
    assert mlflow.get_tracking_uri() == outer
