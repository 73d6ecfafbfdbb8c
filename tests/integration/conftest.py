"""Fixtures shared by the integration tests."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture()
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh MLflow store of the test's own, with small, single-threaded training."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("LEADSCORE_TRAIN_MIN_DATA_IN_LEAF", "20")
    monkeypatch.setenv("LEADSCORE_TRAIN_NUM_THREADS", "1")
    return uri
