"""Suite-wide guard: tests write only under their tmp dirs, never into the project."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WATCHED = ("mlflow.db", "mlruns", "artifacts", "mlartifacts", "models/mlflow.db",
           "models/artifacts", "models/server-artifacts")


@pytest.fixture(scope="session", autouse=True)
def _no_stray_files_in_the_project() -> Iterator[None]:
    before = {p for p in WATCHED if (ROOT / p).exists()}
    yield
    new = sorted(p for p in WATCHED if (ROOT / p).exists() and p not in before)
    assert not new, f"tests wrote into the project: {new} (use tmp_path and a tmp MLflow URI)"
